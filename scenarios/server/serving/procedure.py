"""Starting the server: a relative model base path stops it at once; an absolute one serves."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.models import ModelSpec
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import probe_diff, serve_spec

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    # `tensorflow_model_server --model_base_path=models/model`, as one would type it next to the
    # exported directory: the flag given last overrides the image's absolute default.
    run.target.require_container("the image's /models mount layout")
    server = serve_spec(run, SPEC, args=["--model_base_path=models/model"], wait="started")
    server.raise_from_log(r"Failed to start server")


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import time

    run.target.require_container("the image's /models mount layout")
    started = time.perf_counter()
    server = serve_spec(run, SPEC, args=["--model_base_path=/models/model"])
    run.figure("start_to_available_seconds", time.perf_counter() - started)
    status = server.status().body or {}
    run.observe(f"GET {server.model_path()}: {status}")
    available = [v for v in status.get("model_version_status", []) if v.get("state") == "AVAILABLE"]
    return {"available_versions": len(available), "max_abs_diff": probe_diff(server, run.cache, SPEC)}


SCENARIO = Scenario(
    title="Server started with a relative --model_base_path exits; an absolute path serves",
    targets=("tfserving",),
    figures={"available_versions": "exact", "max_abs_diff": "parity", "start_to_available_seconds": "seconds"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Failed to start server\. Error: INVALID_ARGUMENT: Expected model model to have an "
                   r"absolute path or URI; got base_path\(\)=models/model", runtime="tfserving"),
    remedy=succeeds(Figure("available_versions", ">=", 1), Figure("max_abs_diff", "<=", 1e-5)),
    cause="tensorflow_model_server validates its model configuration before it loads anything: every "
          "base path must be absolute (or a URI such as gs://). A relative path, natural when one "
          "starts the server next to the export directory, makes it print 'Failed to start server. "
          "Error: INVALID_ARGUMENT: Expected model ... to have an absolute path or URI' and exit; "
          "no port ever opens, so clients only see connection errors.",
    fix="Pass an absolute base path (in the Docker image, mount the export directory at "
        "/models/<MODEL_NAME> and let the entrypoint build --model_base_path), start the server, and "
        "wait until GET /v1/models/<name> reports a version AVAILABLE before sending requests.",
    references=("https://www.tensorflow.org/tfx/serving/docker",
                "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/model_servers/server_core.cc",
                "https://www.tensorflow.org/tfx/serving/serving_config"),
)
