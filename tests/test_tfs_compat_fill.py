"""The stand-in server's REST request filling: the numpy step for float tensors of plain numbers
gives what the element walk of ``json_tensor.cc``'s ``FillTensorProto`` gives, value for value and
error for error, and is taken only where it may be.

The stand-in reads an image batch (8x224x224x3 floats) in one numpy step instead of one Python call
per value (``tfs_compat.json_codec._fill_values``); these tests feed both the bodies where the step
must not change anything the server answers (booleans, strings, nulls, ragged lists, numbers beyond
int64 or float32) and check the stored tensor bytes and the error texts are the walk's.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from harness.paths import CONTAINERS_DIR

SERVER_DIR = CONTAINERS_DIR / "tfserving-compat"

BODIES = [
    '{"inputs": [[1.5, 2], [3, 4.25]]}',
    '{"inputs": [[1.5, true], [3, 4.25]]}',  # a boolean where a float is expected: TF Serving refuses it
    '{"inputs": [[false, 2.0], [3, 4.25]]}',
    '{"inputs": [[1.5, 2], [3]]}',  # ragged
    '{"inputs": [[[1.5], 2], [3, 4]]}',  # a list where a number is expected
    '{"inputs": [[1.5, "a"], [3, 4]]}',
    '{"inputs": [[1.5, "2.5"], [3, 4]]}',  # a number in a string: numpy would read it, TF Serving does not
    '{"inputs": [[1.5, null], [3, 4]]}',
    '{"inputs": [[1, {"b64": "eA=="}], [3, 4]]}',
    '{"inputs": [[1e39, -1e39], [NaN, Infinity]]}',  # beyond float32; NaN and Infinity tokens
    '{"inputs": [[1.5, 123456789012345678901234567890], [3, 4]]}',  # beyond int64
    '{"inputs": [18446744073709551615, 1]}',  # uint64
    '{"inputs": [[9007199254740993, 2], [3, 4]]}',  # an int a double cannot hold exactly
    '{"inputs": [[], []]}',
    '{"inputs": 1.5}',
    '{"inputs": {"x": [[0.1, 0.2], [0.3, 1e-45]]}}',
    '{"instances": [[1.5, 2], [3, 4.25]]}',
    '{"instances": [[1.5, 2], [3]]}',
    '{"instances": [[1.5, 2], [3, "x"]]}',
    '{"instances": [[1.5, 2], [3, false]]}',
]


@pytest.fixture(scope="module")
def codec() -> Any:
    pytest.importorskip("tensorflow_serving")
    sys.path.insert(0, str(SERVER_DIR))
    try:
        from tfs_compat import json_codec
    finally:
        sys.path.remove(str(SERVER_DIR))
    return json_codec


def _filled(codec: Any, body: str, dtype: int, literals: bool) -> str | bytes:
    """The request tensor's bytes (or ``ERROR: <the server's text>``) for ``body`` on a one-input signature."""
    from tensorflow_serving.apis import predict_pb2

    from tfs_compat.status import ServingError

    class Info:
        def __init__(self, dtype: int) -> None:
            self.dtype = dtype

    request = predict_pb2.PredictRequest()
    try:
        document = codec.parse_json(body.encode())
        codec.fill_predict_request(document, "", lambda _name: {"x": Info(dtype)}, request, literals=literals)
    except ServingError as error:
        return f"ERROR: {error.message}"
    return bytes(request.inputs["x"].SerializeToString())


@pytest.mark.parametrize("body", BODIES)
def test_numpy_step_fills_what_the_element_walk_fills(codec: Any, body: str) -> None:
    from tensorflow.core.framework import types_pb2

    literals = codec.may_hold_booleans(body.encode())
    for dtype in (types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE):
        walked = _filled(codec, body, dtype, literals=True)
        assert _filled(codec, body, dtype, literals=literals) == walked, (body, dtype)
    if "true" in body or "false" in body:
        assert literals
        assert "is not of expected type: float" in str(_filled(codec, body, types_pb2.DT_FLOAT, literals))


def test_numpy_step_is_taken_for_plain_numbers_only(codec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image batch of plain numbers never reaches the element walk; a body with a boolean does."""
    import json

    import numpy as np
    from tensorflow.core.framework import types_pb2

    walked: list[int] = []
    walk = codec._fill

    def counted(*args: Any) -> int:
        walked.append(1)
        return int(walk(*args))

    monkeypatch.setattr(codec, "_fill", counted)
    batch = np.random.default_rng(0).normal(0, 10, (2, 8, 8, 3)).astype("float32")
    body = json.dumps({"inputs": batch.tolist()})
    filled = _filled(codec, body, types_pb2.DT_FLOAT, literals=codec.may_hold_booleans(body.encode()))
    assert walked == []
    from tensorflow.core.framework import tensor_pb2

    tensor = tensor_pb2.TensorProto.FromString(filled)
    np.testing.assert_array_equal(np.asarray(tensor.float_val, dtype="float32").reshape(batch.shape), batch)
    _filled(codec, '{"inputs": [[1.0, true]]}', types_pb2.DT_FLOAT, literals=True)
    assert walked
