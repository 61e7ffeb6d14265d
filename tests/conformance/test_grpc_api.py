"""gRPC conformance with the official ``tensorflow_serving.apis`` stubs, unchanged."""

from __future__ import annotations

from typing import Any, Iterator

import grpc
import numpy as np
import pytest

from .conftest import Endpoint
from .support import grpc_stubs, http

pytestmark = pytest.mark.slow  # starts TensorFlow server processes


@pytest.fixture(scope="module")
def stubs(endpoint: Endpoint) -> Iterator[tuple[Any, Any]]:
    channel, prediction, model = grpc_stubs(endpoint.grpc_address())
    yield prediction, model
    channel.close()


def _signature(stubs: tuple[Any, Any], model: str) -> Any:
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = model
    response = stubs[0].GetModelMetadata(request, timeout=30)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    return signatures.signature_def["serving_default"]


def _predict_request(model: str, alias: str, rows: np.ndarray, **spec: Any) -> Any:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    for key, value in spec.items():
        if key == "version":
            request.model_spec.version.value = value
        else:
            setattr(request.model_spec, key, value)
    request.inputs[alias].CopyFrom(tf.make_tensor_proto(rows))
    return request


def _call_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_get_model_status(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = endpoint.model
    response = stubs[1].GetModelStatus(request, timeout=30)
    (entry,) = response.model_version_status
    assert entry.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert entry.status.error_code == 0


def test_get_model_status_unknown_model(stubs: tuple[Any, Any]) -> None:
    from tensorflow_serving.apis import get_model_status_pb2

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "no_such_model"
    error = _call_error(lambda: stubs[1].GetModelStatus(request, timeout=30))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == "Could not find any versions of model no_such_model"


def test_metadata_requires_signature_def_field(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    from tensorflow_serving.apis import get_model_metadata_pb2

    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["graph"])
    request.model_spec.name = endpoint.model
    error = _call_error(lambda: stubs[0].GetModelMetadata(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Metadata field graph is not supported"


def test_predict_matches_rest(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    import tensorflow as tf

    signature = _signature(stubs, endpoint.model)
    (alias, info), = signature.inputs.items()
    rows = np.random.RandomState(2).rand(3, info.tensor_shape.dim[1].size).astype(np.float32)
    response = stubs[0].Predict(_predict_request(endpoint.model, alias, rows), timeout=30)
    assert response.model_spec.name == endpoint.model
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value >= 1
    (output,) = response.outputs.values()
    by_grpc = tf.make_ndarray(output)
    by_rest = http("POST", f"{endpoint.rest_url()}/v1/models/{endpoint.model}:predict",
                   {"inputs": rows.tolist()}).json()["outputs"]
    np.testing.assert_allclose(by_grpc, by_rest, rtol=1e-5, atol=1e-6)


def test_predict_wrong_alias(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    """TF's saved_model::GetInputValues (2.19): the signature's input is looked up in the request."""
    signature = _signature(stubs, endpoint.model)
    (alias, info), = signature.inputs.items()
    rows = np.ones((1, info.tensor_shape.dim[1].size), np.float32)
    error = _call_error(lambda: stubs[0].Predict(_predict_request(endpoint.model, "wrong", rows), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == (f"Signature input alias: {alias}(feed name: {info.name}) not found in request and "
                               "no default value provided. Inputs expected to be in the request {wrong}, or "
                               "default input alias set: ")


def test_predict_extra_input(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    request = _predict_request(endpoint.examples(), "x", np.ones((1, 1), np.float32))
    request.inputs["extra"].CopyFrom(request.inputs["x"])
    error = _call_error(lambda: stubs[0].Predict(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == ("input size does not match signature: 2!=1 len({extra,x}) != len({x}). "
                               "Sent extra: {extra}. Missing but required: {}.")


def _without_model_spec(kind: str) -> Any:
    from tensorflow_serving.apis import (
        classification_pb2,
        get_model_metadata_pb2,
        get_model_status_pb2,
        predict_pb2,
        regression_pb2,
    )

    return {"Predict": predict_pb2.PredictRequest(), "Classify": classification_pb2.ClassificationRequest(),
            "Regress": regression_pb2.RegressionRequest(),
            "GetModelMetadata": get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"]),
            "GetModelStatus": get_model_status_pb2.GetModelStatusRequest()}[kind]


@pytest.mark.parametrize("kind", ["Predict", "Classify", "Regress", "GetModelMetadata", "GetModelStatus"])
def test_request_without_model_spec(stubs: tuple[Any, Any], kind: str) -> None:
    """predict_impl.cc, classification_service.cc, regression_service.cc, get_model_*_impl.cc."""
    stub = stubs[1] if kind == "GetModelStatus" else stubs[0]
    error = _call_error(lambda: getattr(stub, kind)(_without_model_spec(kind), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Missing ModelSpec"


def test_model_spec_without_name(stubs: tuple[Any, Any]) -> None:
    """ServerCore::ServableRequestFromModelSpec, when the spec is there but names no model."""
    request = _without_model_spec("Predict")
    request.model_spec.signature_name = "serving_default"
    error = _call_error(lambda: stubs[0].Predict(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "ModelSpec has no name specified."


def test_long_error_message_is_truncated(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    """grpc_status_util.cc ToGRPCStatus: 1024 bytes of the message, then '...TRUNCATED'."""
    model = endpoint.examples()
    request = _predict_request(model, "x", np.array([[2.0]], np.float32), signature_name="batch_probe")
    alias = "a" * 1100
    request.output_filter.append(alias)
    error = _call_error(lambda: stubs[0].Predict(request, timeout=30))
    full = (f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
            "{batch_size,y}.")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == full[:1024] + "...TRUNCATED"


def test_predict_wrong_dtype_is_tensorflow_text(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    signature = _signature(stubs, endpoint.model)
    (alias, info), = signature.inputs.items()
    rows = np.ones((1, info.tensor_shape.dim[1].size), np.int32)
    error = _call_error(lambda: stubs[0].Predict(_predict_request(endpoint.model, alias, rows), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Expects arg[0] to be float but int32 is provided"


def test_predict_wrong_shape_is_kernel_text(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    signature = _signature(stubs, endpoint.model)
    (alias, info), = signature.inputs.items()
    features = info.tensor_shape.dim[1].size
    rows = np.ones((2, features + 1), np.float32)
    error = _call_error(lambda: stubs[0].Predict(_predict_request(endpoint.model, alias, rows), timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"Matrix size-incompatible: In[0]: [2,{features + 1}]")


def test_predict_unknown_signature(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    rows = np.ones((1, 1), np.float32)
    request = _predict_request(endpoint.model, "x", rows, signature_name="nope")
    error = _call_error(lambda: stubs[0].Predict(request, timeout=30))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == 'Serving signature key "nope" not found.'


def test_predict_unknown_version(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    request = _predict_request(endpoint.model, "x", np.ones((1, 1), np.float32), version=987)
    error = _call_error(lambda: stubs[0].Predict(request, timeout=30))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"Servable not found for request: Specific({endpoint.model}, 987)"


def test_predict_output_filter(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    model = endpoint.examples()
    request = _predict_request(model, "x", np.array([[2.0]], np.float32), signature_name="batch_probe")
    request.output_filter.append("y")
    response = stubs[0].Predict(request, timeout=30)
    assert list(response.outputs) == ["y"]
    assert list(response.outputs["y"].float_val) == [3.0]
    request.output_filter[:] = ["nope"]
    error = _call_error(lambda: stubs[0].Predict(request, timeout=30))
    assert error.details() == ("output tensor alias not found in signature: nope Outputs expected to be in the "
                               "set {batch_size,y}.")


def _examples(values: list[float]) -> Any:
    from tensorflow_serving.apis import input_pb2

    model_input = input_pb2.Input()
    for value in values:
        example = model_input.example_list.examples.add()
        example.features.feature["x"].float_list.value.append(value)
    return model_input


def test_classify_and_regress(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    model = endpoint.examples()
    classify = classification_pb2.ClassificationRequest(input=_examples([1.0, 4.0]))
    classify.model_spec.name, classify.model_spec.signature_name = model, "classify_x_to_y"
    result = stubs[0].Classify(classify, timeout=30).result
    assert [[c.score for c in row.classes] for row in result.classifications] == [[2.5], [4.0]]
    regress = regression_pb2.RegressionRequest(input=_examples([2.0]))
    regress.model_spec.name, regress.model_spec.signature_name = model, "regress_x_to_y"
    response = stubs[0].Regress(regress, timeout=30)
    assert [r.value for r in response.result.regressions] == [3.0]
    assert response.model_spec.signature_name == "regress_x_to_y"


def test_regress_empty_input(endpoint: Endpoint, stubs: tuple[Any, Any]) -> None:
    from tensorflow_serving.apis import regression_pb2

    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = endpoint.examples(), "regress_x_to_y"
    error = _call_error(lambda: stubs[0].Regress(request, timeout=30))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "Input is empty."
