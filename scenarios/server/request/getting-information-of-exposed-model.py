"""Guessing the signature's input name vs reading it from the metadata endpoint."""

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
    # "input_1" is what Keras 2 named the first input; Keras 3 exports name it otherwise.
    server.predict({"inputs": {"input_1": x.tolist()}})


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    signature = signature_defs(server)["serving_default"]
    (input_name, info), = signature["inputs"].items()
    (output_name,) = signature["outputs"]
    dims = [int(d["size"]) for d in info["tensor_shape"]["dim"]]
    run.note("signature", {"input": input_name, "dtype": info["dtype"], "shape": dims, "output": output_name})
    rows = x[:, : dims[1]].astype({"DT_FLOAT": "float32", "DT_DOUBLE": "float64"}[info["dtype"]])
    got = server.predict({"inputs": {input_name: rows.tolist()}})["outputs"]
    return {"max_abs_diff": max_abs_diff(got, expected), "features_from_metadata": float(dims[1])}


SCENARIO = Scenario(
    title="Input name guessed (input_1) instead of read from /metadata: error body",
    targets=("tfserving",),
    figures={"features_from_metadata": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"^Missing named input: input_layer in 'inputs' object\.$", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5), Figure("features_from_metadata", ">=", 8)),
    cause="With the columnar `inputs` format every input is named, and the names are the "
          "signature's, set when the model was exported. Keras 2 called the first input "
          "`input_1`, Keras 3 names it after the Input layer (here `input_layer`), other exports "
          "say `inputs` or whatever the tf.function argument was called. A client written against "
          "a guessed name gets HTTP 400 \"Missing named input: input_layer in 'inputs' object.\" "
          "naming the input the server expected.",
    fix="Ask the server: GET /v1/models/model/metadata returns the signature_def map, with each "
        "input's name, dtype and shape and each output's name. Build the request from it (name, "
        "dtype, feature count); the reply then equals Keras's outputs.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://www.tensorflow.org/tfx/serving/signature_defs",
                "https://github.com/tensorflow/serving/issues/719"),
)
