"""The request body: `signature_name` must name a signature of the export; `instances` or `inputs`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import serve_versions, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    x, _ = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    # The body of an Estimator-era tutorial, whose exports had a "predict" signature.
    server.predict({"signature_name": "predict", "instances": x.tolist()})


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    signatures = signature_defs(server)
    run.note("signatures", sorted(signatures))
    (input_name,) = signatures["serving_default"]["inputs"]
    # Row format: a list of instances; the reply holds "predictions", one entry per instance.
    rows = server.predict({"signature_name": "serving_default", "instances": x.tolist()})
    # Columnar format: named input tensors; the reply holds "outputs".
    columns = server.predict({"signature_name": "serving_default", "inputs": {input_name: x.tolist()}})
    run.note("reply_keys", {"instances": sorted(rows), "inputs": sorted(columns)})
    return {"row_max_abs_diff": max_abs_diff(rows["predictions"], expected),
            "columnar_max_abs_diff": max_abs_diff(columns["outputs"], expected)}


SCENARIO = Scenario(
    title="signature_name \"predict\" sent to a Keras export (only serving_default): error body",
    targets=("tfserving",),
    figures={"columnar_max_abs_diff": "parity", "row_max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r'^Serving signature name: "predict" not found in signature def$', runtime="tfserving"),
    remedy=succeeds(Figure("row_max_abs_diff", "<=", 1e-5), Figure("columnar_max_abs_diff", "<=", 1e-5)),
    cause="The REST body picks a signature with `signature_name` (default \"serving_default\"). "
          "Bodies copied from Estimator-era examples say \"predict\"; a Keras `model.export` "
          "SavedModel has only `serving_default` (and `serve`), so the server rejects the request "
          "with HTTP 400 before running anything. The same body keys trip people in other ways: "
          "`instances` (row format) and `inputs` (columnar format) cannot both be given, and the "
          "reply key follows the request (`predictions` for `instances`, `outputs` for `inputs`).",
    fix="Read the signature names from GET /v1/models/model/metadata and send one that exists (or "
        "leave `signature_name` out for serving_default). Send either `instances`, a list with one "
        "entry per example, or `inputs`, the named tensors with the batch as their first "
        "dimension, and read `predictions` or `outputs` accordingly; both give Keras's outputs.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://www.tensorflow.org/tfx/serving/signature_defs",
                "https://keras.io/api/models/model_saving_apis/export/"),
)
