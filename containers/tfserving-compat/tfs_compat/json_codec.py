"""The REST JSON mapping of TF Serving (``tensorflow_serving/util/json_tensor.cc``).

Requests: ``instances`` (row) and ``inputs`` (columnar) to TensorProtos typed by the signature,
``{"b64": ...}`` for DT_STRING, ``examples``/``context`` to tf.Example protos.  Responses:
``predictions``/``outputs``/``result`` with TF Serving's float formatting.  Error texts follow
json_tensor.cc; see the fidelity table in the README.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any, Callable

import numpy as np

from .status import Code, ServingError, invalid_argument

INSTANCES, INPUTS, SIGNATURE, EXAMPLES, CONTEXT, B64 = (
    "instances", "inputs", "signature_name", "examples", "context", "b64")
MAX_DEBUG_BYTES = 256

# rapidjson/error/en.h wording for the parse errors Python's decoder reports.
_RAPIDJSON_WORDING: list[tuple[str, str]] = [
    ("Expecting value", "Invalid value."),
    ("Expecting property name enclosed in double quotes", "Missing a name for object member."),
    ("Expecting ':' delimiter", "Missing a colon after a name of object member."),
    ("Expecting ',' delimiter", "Missing a comma or ']' after an array element."),
    ("Extra data", "The document root must not be followed by other values."),
    ("Unterminated string", "Missing a closing quotation mark in string."),
    ("Invalid control character", "Invalid encoding in string."),
    ("Invalid \\escape", "Invalid escape character in string."),
]


# ------------------------------------------------------------------ JSON values


def json_type(value: Any) -> str:
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def debug_string(value: Any) -> str:
    """``JsonValueToDebugString``: compact JSON, cut near 256 bytes."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return text[:MAX_DEBUG_BYTES + 16] if len(text.encode("utf-8")) > MAX_DEBUG_BYTES else text


def parse_json(body: bytes) -> dict[str, Any]:
    """``ParseJson``: rapidjson accepts NaN/Infinity; the document must be an object."""
    if not body:
        raise invalid_argument("JSON Parse error: The document is empty")
    text = body.decode("utf-8", "replace")
    if not text.strip():
        raise invalid_argument(f"JSON Parse error: The document is empty. at offset: {len(text)}")
    try:
        document = json.loads(text, parse_constant=_parse_constant)
    except json.JSONDecodeError as error:
        wording = next((rj for py, rj in _RAPIDJSON_WORDING if error.msg.startswith(py)), "Invalid value.")
        raise invalid_argument(f"JSON Parse error: {wording} at offset: {error.pos}") from error
    if not isinstance(document, dict):
        raise invalid_argument(f"JSON Value: {debug_string(document)} Is not object")
    return document


def _parse_constant(token: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[token]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def is_b64_object(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(B64), str)


def decode_b64(value: Any) -> bytes:
    if not is_b64_object(value):
        raise invalid_argument(f"JSON Value: {debug_string(value)} not formatted correctly for base64 data")
    text = value[B64]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_argument("Unable to base64 decode") from error


# --------------------------------------------------------------- tensors in


def _types() -> Any:
    from tensorflow.core.framework import types_pb2

    return types_pb2


def _dtype_name(dtype: int) -> str:
    from .tensors import dtype_name

    return dtype_name(dtype)


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(f"JSON Value: {debug_string(value)} Type: {json_type(value)} is not of "
                            f"expected type: {_dtype_name(dtype)}")


def _add_value(value: Any, dtype: int, tensor: Any) -> None:
    """``AddValueToTensor``."""
    t = _types()
    if dtype in (t.DT_FLOAT, t.DT_DOUBLE):
        if not _is_number(value):
            raise _type_error(value, dtype)
        (tensor.float_val if dtype == t.DT_FLOAT else tensor.double_val).append(float(value))
    elif dtype in (t.DT_INT32, t.DT_INT16, t.DT_INT8, t.DT_UINT8):
        if not _is_int_in(value, -(2**31), 2**31 - 1):
            raise _type_error(value, dtype)
        tensor.int_val.append(value)
    elif dtype == t.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        tensor.string_val.append(value.encode("utf-8"))
    elif dtype == t.DT_INT64:
        if not _is_int_in(value, -(2**63), 2**63 - 1):
            raise _type_error(value, dtype)
        tensor.int64_val.append(value)
    elif dtype == t.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        tensor.bool_val.append(value)
    elif dtype == t.DT_UINT32:
        if not _is_int_in(value, 0, 2**32 - 1):
            raise _type_error(value, dtype)
        tensor.uint32_val.append(value)
    elif dtype == t.DT_UINT64:
        if not _is_int_in(value, 0, 2**64 - 1):
            raise _type_error(value, dtype)
        tensor.uint64_val.append(value)
    else:
        raise ServingError(Code.UNIMPLEMENTED,
                           f"Conversion of JSON Value: {debug_string(value)} to type: {_dtype_name(dtype)}")


def dense_shape(value: Any) -> list[int]:
    """``GetDenseTensorShape``: follow the first element of each nested list."""
    shape: list[int] = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value: Any, level: int, shape: list[int], dtype: int, tensor: Any) -> int:
    """``FillTensorProto``; returns the number of values added."""
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(f"JSON Value: {debug_string(value)} found at incorrect level: "
                                   f"{level + 1} in the JSON DOM. Expected at level: {rank}")
        if isinstance(value, dict):
            if dtype != _types().DT_STRING:
                raise _type_error(value, dtype)
            tensor.string_val.append(decode_b64(value))
        else:
            _add_value(value, dtype, tensor)
        return 1
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(f"Encountered list at unexpected size: {len(value)} at level: {level} "
                               f"expected size: {shape[level]}")
    return sum(_fill(item, level + 1, shape, dtype, tensor) for item in value)


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


class _RowBuilder:
    """Accumulates ``instances`` items into one batched TensorProto per input."""

    def __init__(self, infos: Any, tensors: Any) -> None:
        self.infos = infos
        self.tensors = tensors
        self.sizes: dict[str, int] = {}
        self.shapes: dict[str, list[int]] = {}

    def add(self, item: Any, name: str) -> None:
        if name not in self.infos:
            raise invalid_argument(f"JSON object: does not have named input: {name}")
        shape = dense_shape(item)
        size = _fill(item, 0, shape, self.infos[name].dtype, self.tensors[name])
        if name not in self.sizes:
            self.sizes[name], self.shapes[name] = size, shape
        elif self.sizes[name] != size:
            raise invalid_argument(f"Expecting tensor size: {self.sizes[name]} but got: {size}")
        elif self.shapes[name] != shape:
            raise invalid_argument(f"Expecting shape {_shape_text(self.shapes[name])} but got: "
                                   f"{_shape_text(shape)}")

    def finish(self, count: int) -> None:
        for name in list(self.tensors):
            tensor = self.tensors[name]
            tensor.dtype = self.infos[name].dtype
            tensor.tensor_shape.Clear()
            for size in [count] + self.shapes.get(name, []):
                tensor.tensor_shape.dim.add(size=size)


def _is_element_object(value: Any) -> bool:
    return isinstance(value, dict) and not is_b64_object(value)


def _status_text(error: ServingError) -> str:
    return error.to_string()


def fill_from_instances(items: list[Any], infos: Any, tensors: Any) -> None:
    """``FillTensorMapFromInstancesList``."""
    if not isinstance(items[0], dict) and len(infos) > 1:
        raise invalid_argument("instances is a plain list, but expecting list of objects as multiple "
                               "input tensors required as per tensorinfo_map")
    objects = _is_element_object(items[0])
    names = sorted(infos)
    builder = _RowBuilder(infos, tensors)
    for index, item in enumerate(items):
        if objects:
            _add_object_item(builder, item, index, names)
        else:
            if _is_element_object(item):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
            try:
                builder.add(item, names[0])
            except ServingError as error:
                raise invalid_argument(f"Failed to process element: {index} of 'instances' list. "
                                       f"Error: {_status_text(error)}") from error
    builder.finish(len(items))


def _add_object_item(builder: _RowBuilder, item: Any, index: int, names: list[str]) -> None:
    if not _is_element_object(item):
        raise invalid_argument(f"Expecting object but got list at item {index} of input list")
    for key, value in item.items():
        try:
            builder.add(value, key)
        except ServingError as error:
            raise invalid_argument(f"Failed to process element: {index} key: {key} of 'instances' "
                                   f"list. Error: {_status_text(error)}") from error
    if sorted(item) != names:
        raise invalid_argument(f"Failed to process element: {index} of 'instances' list. JSON object: "
                               f"{debug_string(item)} keys must be equal to: {','.join(names)}")


def fill_from_inputs(value: Any, infos: Any, tensors: Any) -> None:
    """``FillTensorMapFromInputsMap``."""
    if not isinstance(value, dict) or is_b64_object(value):
        if len(infos) > 1:
            raise invalid_argument("inputs is a plain value/list, but expecting an object as multiple "
                                   "input tensors required as per tensorinfo_map")
        name = next(iter(infos))
        _fill_columnar(value, infos[name].dtype, tensors[name])
        return
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
        _fill_columnar(value[name], infos[name].dtype, tensors[name])


def _fill_columnar(value: Any, dtype: int, tensor: Any) -> None:
    tensor.dtype = dtype
    shape = dense_shape(value)
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    _fill(value, 0, shape, dtype, tensor)


def read_signature_name(document: dict[str, Any]) -> str:
    """``FillSignature``."""
    if SIGNATURE not in document:
        return ""
    if not isinstance(document[SIGNATURE], str):
        raise invalid_argument(f"JSON Value: {debug_string(document)} not formatted correctly. "
                               "'signature_name' key must be a string value.")
    return str(document[SIGNATURE])


def fill_predict_request(document: dict[str, Any], signature_name: str,
                         get_infos: Callable[[str], Any], request: Any) -> str:
    """``FillPredictRequestFromJson``; returns the format, "row" or "columnar"."""
    request.model_spec.signature_name = signature_name
    infos = get_infos(signature_name)
    if not infos:
        raise invalid_argument(f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    if INSTANCES in document:
        if INPUTS in document:
            raise invalid_argument(f"JSON Value: {debug_string(document)} Not formatted correctly "
                                   "expecting only one of 'inputs' or 'instances' keys to exist ")
        items = document[INSTANCES]
        if not isinstance(items, list):
            raise invalid_argument(f"JSON Value: {debug_string(document)} Expecting 'instances' to be "
                                   "an list/array")
        if not items:
            raise invalid_argument(f"JSON Value: {debug_string(document)} No values in 'instances' array")
        fill_from_instances(items, infos, request.inputs)
        return "row"
    if INPUTS in document:
        fill_from_inputs(document[INPUTS], infos, request.inputs)
        return "columnar"
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ---------------------------------------------------------------- examples in


def _feature_kind_error(name: str, feature: Any) -> ServingError:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind") or "", "")
    return invalid_argument(f"Unexpected element type in feature: {name} expecting type: {kind}")


def _need_kind(name: str, feature: Any, kind: str) -> None:
    current = feature.WhichOneof("kind")
    if current is not None and current != kind:
        raise _feature_kind_error(name, feature)


def _add_feature_value(value: Any, name: str, feature: Any) -> None:
    """``AddValueToFeature``."""
    unexpected = invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    if value is None or isinstance(value, list):
        raise unexpected
    if isinstance(value, bool):
        _need_kind(name, feature, "int64_list")
        feature.int64_list.value.append(1 if value else 0)
    elif isinstance(value, dict):
        if not is_b64_object(value):
            raise unexpected
        _need_kind(name, feature, "bytes_list")
        feature.bytes_list.value.append(decode_b64(value))
    elif isinstance(value, str):
        _need_kind(name, feature, "bytes_list")
        feature.bytes_list.value.append(value.encode("utf-8"))
    elif isinstance(value, float) or not _is_int_in(value, -(2**64), 2**64 - 1):
        _need_kind(name, feature, "float_list")
        feature.float_list.value.append(float(value))
    else:
        _need_kind(name, feature, "int64_list")
        if value >= 2**63:
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        feature.int64_list.value.append(value)


def example_from_json(value: Any, example: Any) -> None:
    """``MakeExampleFromJsonObject``."""
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    for name, content in value.items():
        feature = example.features.feature[name]
        for item in content if isinstance(content, list) else [content]:
            _add_feature_value(item, name, feature)


def fill_classify_regress_request(document: dict[str, Any], request: Any) -> None:
    """``FillClassifyRegressRequestFromJson`` (the same text for regress, as in TF Serving)."""
    request.model_spec.signature_name = read_signature_name(document)
    if CONTEXT in document:
        example_from_json(document[CONTEXT], request.input.example_list_with_context.context)
    examples = document.get(EXAMPLES)
    if EXAMPLES not in document:
        raise invalid_argument(f"JSON Value: {debug_string(document)} When method is classify, key "
                               "'examples' is expected and was not found")
    if not isinstance(examples, list):
        raise invalid_argument(f"JSON Value: {debug_string(document)} Expecting 'examples' value to be "
                               "an list/array")
    if not examples:
        raise invalid_argument(f"JSON Value: {debug_string(document)} 'examples' value is an empty array")
    target = (request.input.example_list_with_context.examples if CONTEXT in document
              else request.input.example_list.examples)
    for value in examples:
        example_from_json(value, target.add())


# --------------------------------------------------------------- JSON out


def format_decimal(value: float, single: bool) -> str:
    """``WriteDecimal``: shortest %g that round-trips, else full precision, plus ``.0``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%g" % value
    same = np.float32(float(text)) == np.float32(value) if single else float(text) == value
    if not same:
        text = "%.9g" % value if single else "%.17g" % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


class _Raw(str):
    """A pre-formatted JSON token."""


def _tensor_values(array: np.ndarray, as_bytes: bool) -> Any:
    if array.ndim == 0:
        return _scalar(array.item() if array.dtype.kind not in "SUO" else array.reshape(-1)[0],
                       array.dtype, as_bytes)
    # asarray: an element of an object (DT_STRING) array is a plain bytes object, not a 0-d array
    return [_tensor_values(np.asarray(array[i], dtype=array.dtype), as_bytes) for i in range(array.shape[0])]


def _scalar(value: Any, dtype: np.dtype, as_bytes: bool) -> Any:
    if dtype.kind == "f":
        return _Raw(format_decimal(float(value), dtype == np.float32))
    if dtype.kind in "SUO":
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        if as_bytes:
            return {B64: base64.b64encode(raw).decode("ascii")}
        return raw.decode("utf-8", "replace")
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    raise invalid_argument(f"Failed to write JSON value for tensor type: {dtype.name}")


def _is_bytes_output(name: str, array: np.ndarray) -> bool:
    return array.dtype.kind in "SUO" and name.endswith("_bytes")


def dumps(value: Any, indent: int = 0) -> str:
    """Objects pretty-printed with 4 spaces, arrays on one line (rapidjson kFormatSingleLineArray)."""
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        pad = " " * (indent + 4)
        items = [f"{pad}{json.dumps(k)}: {dumps(v, indent + 4)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item, indent) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def predict_response_json(outputs: dict[str, np.ndarray], row_format: bool) -> str:
    """``MakeJsonFromTensors``."""
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if not row_format:
        columns = {n: _tensor_values(outputs[n], _is_bytes_output(n, outputs[n])) for n in names}
        body = columns[names[0]] if len(names) == 1 else columns
        return dumps({"outputs": body})
    batch = -1
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                                   f"expecting: {batch}")
        batch = array.shape[0]
    rows: list[Any] = []
    for index in range(batch):
        values = {n: _tensor_values(outputs[n][index], _is_bytes_output(n, outputs[n])) for n in names}
        rows.append(values[names[0]] if len(names) == 1 else values)
    return dumps({"predictions": rows})


def classify_response_json(result: Any) -> str:
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = [[[c.label, _Raw(format_decimal(c.score, True))] for c in entry.classes]
            for entry in result.classifications]
    return dumps({"result": rows})


def regress_response_json(result: Any) -> str:
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    return dumps({"result": [_Raw(format_decimal(r.value, True)) for r in result.regressions]})


def error_json(message: str) -> str:
    """``MakeJsonFromStatus``."""
    return dumps({"error": message})


def proto_json(message: Any, preserve_names: bool) -> str:
    """Protobuf JSON with whitespace and default-valued fields, as TF Serving prints status/metadata."""
    from google.protobuf import json_format

    return str(json_format.MessageToJson(message, preserving_proto_field_name=preserve_names,
                                         always_print_fields_with_no_presence=True, indent=1))
