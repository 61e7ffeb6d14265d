"""REST API conformance: URL forms, JSON shapes, error bodies and HTTP status codes.

Expected texts are TF Serving's (json_tensor.cc, http_rest_api_handler.cc, predict_util.cc, ...)
or TensorFlow's kernel texts; the tests assert stable parts of them.
"""

from __future__ import annotations

import base64
import math
from typing import Any

import numpy as np
import pytest

from .conftest import Endpoint
from .support import http

pytestmark = pytest.mark.slow  # starts TensorFlow server processes


def _signature(endpoint: Endpoint, model: str, name: str = "serving_default") -> dict[str, Any]:
    reply = http("GET", f"{endpoint.rest_url()}/v1/models/{model}/metadata")
    assert reply.status == 200, reply.text
    return dict(reply.json()["metadata"]["signature_def"]["signature_def"][name])


def _input(endpoint: Endpoint) -> tuple[str, int]:
    """(input alias, feature count) of the tiny model's serving_default signature."""
    inputs = _signature(endpoint, endpoint.model)["inputs"]
    (alias, info), = inputs.items()
    return alias, int(info["tensor_shape"]["dim"][1]["size"])


def _rows(count: int, features: int) -> list[list[float]]:
    return np.round(np.random.RandomState(1).rand(count, features), 3).tolist()


def _post(endpoint: Endpoint, path: str, body: Any) -> Any:
    return http("POST", f"{endpoint.rest_url()}{path}", body)


# ------------------------------------------------------------------ status / metadata


def test_status_lists_available_version(endpoint: Endpoint) -> None:
    reply = http("GET", f"{endpoint.rest_url()}/v1/models/{endpoint.model}")
    assert reply.status == 200, reply.text
    (entry,) = reply.json()["model_version_status"]
    assert entry["state"] == "AVAILABLE"
    assert entry["status"] == {"error_code": "OK", "error_message": ""}
    assert int(entry["version"]) >= 1


def test_status_of_specific_version(endpoint: Endpoint) -> None:
    version = http("GET", f"{endpoint.rest_url()}/v1/models/{endpoint.model}").json()[
        "model_version_status"][0]["version"]
    reply = http("GET", f"{endpoint.rest_url()}/v1/models/{endpoint.model}/versions/{version}")
    assert reply.status == 200
    assert reply.json()["model_version_status"][0]["version"] == version


def test_status_unknown_model_is_404(endpoint: Endpoint) -> None:
    reply = http("GET", f"{endpoint.rest_url()}/v1/models/no_such_model")
    assert reply.status == 404
    assert reply.json() == {"error": "Could not find any versions of model no_such_model"}


def test_status_unknown_version_is_404(endpoint: Endpoint) -> None:
    reply = http("GET", f"{endpoint.rest_url()}/v1/models/{endpoint.model}/versions/987")
    assert reply.status == 404
    assert reply.json() == {"error": f"Could not find version 987 of model {endpoint.model}"}


def test_status_without_model_name_is_400(endpoint: Endpoint) -> None:
    reply = http("GET", f"{endpoint.rest_url()}/v1/models")
    assert reply.status == 400
    assert reply.json() == {"error": "Missing model name in request."}


def test_metadata_has_model_spec_and_signatures(endpoint: Endpoint) -> None:
    reply = http("GET", f"{endpoint.rest_url()}/v1/models/{endpoint.model}/metadata")
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["model_spec"]["name"] == endpoint.model
    assert body["model_spec"]["signature_name"] == ""
    signature = body["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert signature["method_name"] == "tensorflow/serving/predict"
    (info,) = signature["inputs"].values()
    assert info["dtype"] == "DT_FLOAT"


def test_malformed_path_is_400(endpoint: Endpoint) -> None:
    reply = http("GET", f"{endpoint.rest_url()}/v1/foo")
    assert reply.status == 400
    assert reply.json() == {"error": "Malformed request: GET /v1/foo"}


# ------------------------------------------------------------------ predict


def test_predict_row_format(endpoint: Endpoint) -> None:
    _, features = _input(endpoint)
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"instances": _rows(3, features)})
    assert reply.status == 200, reply.text
    predictions = reply.json()["predictions"]
    assert np.asarray(predictions).shape == (3, 1)


def test_predict_columnar_format_matches_row_format(endpoint: Endpoint) -> None:
    _, features = _input(endpoint)
    rows = _rows(2, features)
    by_row = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"instances": rows}).json()
    by_column = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"inputs": rows}).json()
    np.testing.assert_allclose(by_row["predictions"], by_column["outputs"], rtol=1e-6)


def test_predict_named_instances_and_version_url(endpoint: Endpoint) -> None:
    alias, features = _input(endpoint)
    version = http("GET", f"{endpoint.rest_url()}/v1/models/{endpoint.model}").json()[
        "model_version_status"][0]["version"]
    reply = _post(endpoint, f"/v1/models/{endpoint.model}/versions/{version}:predict",
                  {"signature_name": "serving_default", "instances": [{alias: row} for row in _rows(2, features)]})
    assert reply.status == 200, reply.text
    assert len(reply.json()["predictions"]) == 2


def test_predict_matches_keras_model(endpoint: Endpoint, model_store: Any) -> None:
    if endpoint.external:
        pytest.skip("reference values come from the locally exported model")
    import tensorflow as tf

    _, features = _input(endpoint)
    rows = _rows(4, features)
    served = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"instances": rows}).json()["predictions"]
    loaded = tf.saved_model.load(str(model_store.keras_base / "1"))
    expected = loaded.signatures["serving_default"](tf.constant(rows, tf.float32))
    np.testing.assert_allclose(served, next(iter(expected.values())).numpy(), rtol=1e-5, atol=1e-6)


def test_predict_unknown_model_is_404(endpoint: Endpoint) -> None:
    reply = _post(endpoint, "/v1/models/half_missing:predict", {"instances": [1.0]})
    assert reply.status == 404
    assert reply.json() == {"error": "Servable not found for request: Latest(half_missing)"}


def test_predict_unknown_version_is_404(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}/versions/987:predict", {"instances": [[1.0]]})
    assert reply.status == 404
    assert reply.json() == {"error": f"Servable not found for request: Specific({endpoint.model}, 987)"}


def test_predict_unknown_label_is_400(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}/labels/nope:predict", {"instances": [[1.0]]})
    assert reply.status == 400
    assert reply.json() == {"error": "Unrecognized servable version label: nope"}


def test_predict_wrong_feature_count_returns_kernel_error(endpoint: Endpoint) -> None:
    _, features = _input(endpoint)
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"instances": _rows(1, features - 1)})
    assert reply.status == 400
    error = reply.json()["error"]
    assert error.startswith(f"Matrix size-incompatible: In[0]: [1,{features - 1}], In[1]: [{features},")
    assert "{{node " in error


def test_predict_string_for_float_is_400(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"instances": [["a"]]})
    assert reply.status == 400
    assert reply.json()["error"] == (
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "a" Type: String is not of expected type: float')


def test_predict_ragged_instances_is_400(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"instances": [[1.0, 2.0], [1.0]]})
    assert reply.status == 400
    assert reply.json()["error"] == (
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 2 but got: 1")


@pytest.mark.parametrize(("body", "error"), [
    ("{bad", "JSON Parse error: Missing a name for object member. at offset: 1"),
    ("[1]", "JSON Value: [1] Is not object"),
    # JsonValueToDebugString: rapidjson's PrettyWriter, 4-space indents, arrays on one line.
    ('{"signature_name": 1, "instances": [1]}',
     'JSON Value: {\n    "signature_name": 1,\n    "instances": [1]\n} not formatted correctly. '
     "'signature_name' key must be a string value."),
    ('{"foo": 1}', "Missing 'inputs' or 'instances' key"),
    ('{"instances": [], "inputs": []}',
     'JSON Value: {\n    "instances": [],\n    "inputs": []\n} Not formatted correctly expecting only one of '
     "'inputs' or 'instances' keys to exist "),
    ('{"instances": 1}', "JSON Value: {\n    \"instances\": 1\n} Expecting 'instances' to be an list/array"),
    ('{"instances": []}', "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array"),
    ('{"instances": [[1.0, 2.0', "JSON Parse error: Missing a comma or ']' after an array element. at offset: 24"),
])
def test_predict_request_format_errors(endpoint: Endpoint, body: str, error: str) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", body)
    assert reply.status == 400
    assert reply.json() == {"error": error}


def test_predict_unknown_signature_is_400(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", {"signature_name": "nope", "instances": [[1.0]]})
    assert reply.status == 400
    assert reply.json() == {"error": 'Serving signature name: "nope" not found in signature def'}


def test_predict_nan_and_infinity_round_trip(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:predict", '{"instances": [[NaN], [Infinity], [1.5]]}')
    assert reply.status == 200, reply.text
    assert '"predictions": [[NaN], [Infinity], [2.75]]' in reply.text
    values = reply.json()["predictions"]
    assert math.isnan(values[0][0]) and values[1][0] == math.inf


def test_predict_multiple_outputs_row_and_columnar(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    rows = _post(endpoint, f"/v1/models/{model}:predict",
                 {"signature_name": "batch_probe", "instances": [[1.0], [2.0]]}).json()
    assert rows == {"predictions": [{"batch_size": 2, "y": [2.5]}, {"batch_size": 2, "y": [3.0]}]}
    columns = _post(endpoint, f"/v1/models/{model}:predict",
                    {"signature_name": "batch_probe", "inputs": {"x": [[1.0], [2.0]]}}).json()
    assert columns == {"outputs": {"batch_size": [2, 2], "y": [[2.5], [3.0]]}}


def test_predict_b64_for_non_string_input_is_400(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    payload = {"instances": [[{"b64": base64.b64encode(b"x").decode()}]]}
    reply = _post(endpoint, f"/v1/models/{model}:predict", payload)
    assert reply.status == 400
    assert reply.json()["error"].endswith(
        'JSON Value: {\n    "b64": "eA=="\n} Type: Object is not of expected type: float')


def test_predict_ignores_what_follows_the_json_root(endpoint: Endpoint) -> None:
    """ParseJson uses rapidjson's kParseStopWhenDoneFlag: trailing data after the object is not read."""
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:predict", '{"instances": [[1.5]]} trailing, not JSON')
    assert reply.status == 200, reply.text
    assert reply.json() == {"predictions": [[2.75]]}


def test_debug_string_of_a_large_value_is_cut_after_256_bytes(endpoint: Endpoint) -> None:
    """JsonWriterWithLimit stops writing once 256 bytes are written (here mid-array)."""
    values = ", ".join(str(1000 + i) for i in range(100))
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:predict", '{"instances": 1, "pad": [' + values + "]}")
    assert reply.status == 400
    error = reply.json()["error"]
    assert error.endswith(" Expecting 'instances' to be an list/array")
    shown = error[len("JSON Value: "):-len(" Expecting 'instances' to be an list/array")]
    expected = '{\n    "instances": 1,\n    "pad": [' + values
    assert expected.startswith(shown) and 256 <= len(shown.encode()) < 262, shown


def test_cors_preflight_has_no_body(endpoint: Endpoint) -> None:
    """http_server.cc answers OPTIONS itself: the status only, never an error JSON."""
    url = f"{endpoint.rest_url()}/v1/models/{endpoint.model}:predict"
    allowed = http("OPTIONS", url, headers={"Origin": "http://example.com"})
    assert (allowed.status, allowed.text) == (200, "")
    refused = http("OPTIONS", url)
    assert (refused.status, refused.text) == (400, "")


def test_unparsable_version_in_path_is_400_without_body(endpoint: Endpoint) -> None:
    """ParseModelInfo fails before ProcessRequest writes the error JSON: 400 and an empty body."""
    reply = _post(endpoint, f"/v1/models/{endpoint.model}/versions/99999999999999999999:predict",
                  {"instances": [[1.0]]})
    assert (reply.status, reply.text) == (400, "")


# ------------------------------------------------------------------ classify / regress


def test_classify(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:classify",
                  {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}, {"x": 4.0}]})
    assert reply.status == 200, reply.text
    assert reply.json() == {"results": [[["", 2.5]], [["", 4.0]]]}  # json_tensor.cc kClassifyRegressResponseKey


def test_regress_with_context(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:regress",
                  {"signature_name": "regress_x_to_y", "context": {"unused": "c"},
                   "examples": [{"x": 2.0}, {"x": [6.0]}]})
    assert reply.status == 200, reply.text
    assert reply.json() == {"results": [3.0, 5.0]}


def test_classify_on_predict_signature_is_400(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:classify", {"examples": [{"x": 1.0}]})
    assert reply.status == 400
    assert reply.json()["error"].startswith("No classification inputs found in SignatureDef: inputs {")


def test_regress_on_predict_signature_is_400(endpoint: Endpoint) -> None:
    reply = _post(endpoint, f"/v1/models/{endpoint.model}:regress", {"examples": [{"x": 1.0}]})
    assert reply.status == 400
    assert reply.json()["error"].startswith("No regression inputs found in SignatureDef: inputs {")


def test_regress_without_examples_is_400(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:regress", {"signature_name": "regress_x_to_y"})
    assert reply.status == 400
    assert reply.json()["error"].endswith("When method is classify, key 'examples' is expected and was not found")


def test_classify_unknown_signature_is_400(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:classify", {"signature_name": "nope", "examples": [{"x": 1.0}]})
    assert reply.status == 400
    assert reply.json() == {"error": "No signature was found with the name: nope"}


def test_mixed_feature_types_is_400(endpoint: Endpoint) -> None:
    model = endpoint.examples()
    reply = _post(endpoint, f"/v1/models/{model}:regress",
                  {"signature_name": "regress_x_to_y", "examples": [{"x": [1.0, "a"]}]})
    assert reply.status == 400
    assert reply.json() == {"error": "Unexpected element type in feature: x expecting type: float"}


def test_predict_b64_string_input_on_classify_signature(endpoint: Endpoint) -> None:
    """Predict may run any signature; DT_STRING inputs take {"b64": ...} (here a tf.Example)."""
    from tensorflow.core.example import example_pb2

    model = endpoint.examples()
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(3.0)
    encoded = base64.b64encode(example.SerializeToString()).decode()
    reply = _post(endpoint, f"/v1/models/{model}:predict",
                  {"signature_name": "classify_x_to_y", "instances": [{"b64": encoded}]})
    assert reply.status == 200, reply.text
    assert reply.json() == {"predictions": [[3.5]]}
    bad = _post(endpoint, f"/v1/models/{model}:predict",
                {"signature_name": "classify_x_to_y", "instances": [{"b64": "%%%"}]})
    assert bad.status == 400
    assert bad.json() == {"error": "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
                                   "Unable to base64 decode"}
