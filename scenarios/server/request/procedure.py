"""Calling the served model: the REST path needs the `:predict` verb; gRPC takes a PredictRequest."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import grpc_predict, serve_versions, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    x, _ = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    # The verb written as a path segment, as in many REST APIs: /predict instead of :predict.
    server.checked_request("POST", "/v1/models/model/predict", {"instances": x.tolist()})


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    rest = server.checked_request("POST", "/v1/models/model:predict", {"instances": x.tolist()})["predictions"]
    signature = signature_defs(server)["serving_default"]
    (input_name,), (output_name,) = signature["inputs"], signature["outputs"]
    grpc = grpc_predict(server, {input_name: x}, signature="serving_default").outputs[output_name]
    return {"rest_max_abs_diff": max_abs_diff(rest, expected), "grpc_max_abs_diff": max_abs_diff(grpc, expected)}


SCENARIO = Scenario(
    title="POST to /v1/models/model/predict (no ':predict' verb) vs working REST and gRPC calls",
    targets=("tfserving",),
    figures={"grpc_max_abs_diff": "parity", "rest_max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"^Malformed request: POST /v1/models/model/predict$", runtime="tfserving"),
    remedy=succeeds(Figure("rest_max_abs_diff", "<=", 1e-5), Figure("grpc_max_abs_diff", "<=", 1e-5)),
    cause="TF Serving's REST API puts the method after a colon: POST "
          "/v1/models/<name>[/versions/<v>]:predict (or :classify, :regress). A path written as "
          "/v1/models/model/predict matches none of its URL patterns, and the server answers HTTP "
          "400 with {\"error\": \"Malformed request: POST /v1/models/model/predict\"}; a GET on the "
          ":predict URL is just as malformed, since predict is POST only.",
    fix="POST a JSON body to /v1/models/model:predict (port 8501), or call "
        "PredictionService/Predict over gRPC (port 8500) with a PredictRequest whose model_spec "
        "names the model and signature and whose inputs are TensorProtos keyed by the signature's "
        "input names (tf.make_tensor_proto). Both return the Keras model's outputs.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/apis/prediction_service.proto",
                "https://github.com/lyhue1991/eat_tensorflow2_in_30_days/issues/46"),
)
