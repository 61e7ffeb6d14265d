"""Servable, version, signature: what the server actually serves, read from its own status and metadata."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, model_base_path

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

OLD, NEW = ModelSpec("dense", "keras3", seed=0), ModelSpec("dense", "keras3", seed=1)


def _serve_two_versions(run: "Run[TfservingTarget]") -> Server:
    base = model_base_path(run.workdir, {1: saved_model(run.cache, OLD), 2: saved_model(run.cache, NEW)})
    server = run.enter(run.target.serve(model_dir=base))
    run.note("implementation", server.implementation)
    return server


def faulty(run: "Run[TfservingTarget]") -> None:
    # Misconception: "every version directory under the base path is served".
    server = _serve_two_versions(run)
    x, _ = trained_model(run.cache, OLD).probe()
    server.predict({"instances": x.tolist()}, version=1)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    server = _serve_two_versions(run)
    # A servable is one version of one model; the status lists the versions the server manages.
    status = server.status().body or {}
    run.observe(f"GET /v1/models/model: {status}")
    available = sorted(int(v["version"]) for v in status.get("model_version_status", []) if v["state"] == "AVAILABLE")
    run.note("available_versions", available)
    # The signature says what to send: input names, dtypes and shapes, and the outputs.
    meta = server.metadata()
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    run.observe(f"serving_default: inputs {signature['inputs']} outputs {signature['outputs']}")
    (name, spec), = signature["inputs"].items()
    width = int(spec["tensor_shape"]["dim"][-1]["size"])
    x, expected = trained_model(run.cache, NEW).probe()
    body = {"inputs": {name: x.tolist()}}  # columnar request, keyed by the signature's input name
    got = server.predict(body, version=available[-1])["outputs"]
    return {"available_version_count": len(available), "latest_available": available[-1],
            "signature_input_width": width, "max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Two version directories, one servable: version 1 is not loaded under the default policy",
    targets=("tfserving",),
    figures={"available_version_count": "exact", "latest_available": "exact", "max_abs_diff": "parity",
             "signature_input_width": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Servable not found for request: Specific\(model, 1\)", runtime="tfserving"),
    remedy=succeeds(Figure("available_version_count", "<=", 1), Figure("latest_available", ">=", 2),
                    Figure("signature_input_width", ">=", 8), Figure("max_abs_diff", "<=", 1e-5)),
    cause="In TF Serving a *model* is a name and a base path; each numbered subdirectory is a *version*; "
          "a loaded version is a *servable*; a SavedModel holds *signatures* (named functions with typed "
          "inputs and outputs, `serving_default` unless told otherwise). The default version policy "
          "serves only the latest version, so with directories 1 and 2 only version 2 is loaded: a "
          "request pinned to version 1 gets 'Servable not found for request: Specific(model, 1)'.",
    fix="Ask the server instead of assuming: GET /v1/models/<m> lists the versions and their states, "
        "GET /v1/models/<m>/metadata gives the signature (input name, dtype, shape) to build the "
        "request from. Query the version that is AVAILABLE, or serve several versions on purpose with a "
        "`model_version_policy` (`all` or `specific`) in a model config file.",
    references=("https://www.tensorflow.org/tfx/serving/architecture",
                "https://www.tensorflow.org/tfx/serving/api_rest#model_status_api",
                "https://www.tensorflow.org/tfx/serving/serving_config#serving_a_specific_version_of_a_model",
                "https://github.com/amiyapatanaik/tensorflow-serving-docker-image/issues/6"),
)
