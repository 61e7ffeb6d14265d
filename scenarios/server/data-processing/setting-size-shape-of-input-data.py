"""Rows of 7 features sent to a served model whose signature takes [None, 8]."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, serve_versions, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def _serve(run: "Run[TfservingTarget]") -> Server:
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    run.note("signature_inputs", signature_defs(server)["serving_default"]["inputs"])
    return server


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    server = _serve(run)
    # The client dropped one column (say an id it thought unused): each instance has 7 values.
    got = server.predict({"instances": x[:, :7].tolist()})["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected)}


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    server = _serve(run)
    # Every instance holds the 8 features the signature's shape [-1, 8] asks for, in training order.
    got = server.predict({"instances": x[:, :8].tolist()})["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Request rows with 7 values sent to a [None, 8] signature: TF's MatMul shape error",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Matrix size-incompatible: In\[0\]: \[16,7\], In\[1\]: \[8,16\]", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="TF Serving does not check a request's tensor shape against the signature: the REST "
          "layer only checks that all instances have the same shape, builds a [16, 7] tensor and "
          "feeds it to the graph. The first Dense layer's MatMul then fails inside TensorFlow, and "
          "the client gets the kernel's text (\"Matrix size-incompatible: In[0]: [16,7], In[1]: "
          "[8,16]\" plus the node name) in the `error` field of an HTTP 400 reply. The shape the "
          "model expects is in the signature (GET /v1/models/model/metadata: "
          "tensor_shape dims -1 and 8).",
    fix="Build each instance with exactly the features the signature lists, in the training "
        "order (read the shape from the metadata endpoint), here 8 values per row; the served "
        "predictions then equal Keras's on the same rows.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://github.com/tensorflow/serving/issues/2104",
                "https://github.com/aws-samples/amazon-sagemaker-custom-recommender-system/issues/2"),
)
