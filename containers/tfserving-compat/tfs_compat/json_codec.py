"""The REST JSON mapping of TF Serving (``tensorflow_serving/util/json_tensor.cc``).

Requests: ``instances`` (row) and ``inputs`` (columnar) to TensorProtos typed by the signature,
``{"b64": ...}`` for DT_STRING, ``examples``/``context`` to tf.Example protos.  Responses:
``predictions``/``outputs``/``results`` with TF Serving's float formatting.  Error texts follow
json_tensor.cc; see the fidelity table in the README.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import math
from typing import Any, Callable, Optional

import numpy as np

from .status import Code, ServingError, invalid_argument
from .texts import T

INSTANCES, INPUTS, SIGNATURE, EXAMPLES, CONTEXT, B64 = (
    "instances", "inputs", "signature_name", "examples", "context", "b64")
RESULTS = "results"  # json_tensor.cc kClassifyRegressResponseKey
MAX_DEBUG_BYTES = 256

# rapidjson/error/en.h wording for the parse errors Python's decoder reports (by its message).
_RAPIDJSON_WORDING: list[tuple[str, str]] = [
    ("Expecting value", T("Invalid value.")),
    ("Expecting property name enclosed in double quotes", T("Missing a name for object member.")),
    ("Expecting ':' delimiter", T("Missing a colon after a name of object member.")),
    ("Unterminated string", T("Missing a closing quotation mark in string.")),
    ("Invalid control character", T("Invalid encoding in string.")),
    ("Invalid \\uXXXX escape", T("Incorrect hex digit after \\u escape in string.")),
    ("Invalid \\escape", T("Invalid escape character in string.")),
]
_JSON_WHITESPACE = " \t\n\r"


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


class _WriterStopped(Exception):
    """A writer call returned false: ``Value::Accept`` stops there."""


class _DebugWriter:
    """rapidjson ``PrettyWriter`` with ``kFormatSingleLineArray`` (4-space indent) behind
    ``JsonWriterWithLimit`` (json_tensor.cc): each event is written only while fewer than
    ``limit`` bytes were; the first refused event ends the walk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = bytearray()
        self.levels: list[list[Any]] = []  # [in_array, value_count]

    def _write(self, text: str) -> None:
        self.out += text.encode("utf-8", "surrogatepass")

    def _event(self) -> None:
        if len(self.out) >= self.limit:
            raise _WriterStopped()

    def _prefix(self) -> None:
        """``PrettyWriter::PrettyPrefix``."""
        if not self.levels:
            return
        level = self.levels[-1]
        if level[0]:
            if level[1] > 0:
                self._write(", ")
        else:
            if level[1] > 0:
                self._write(",\n" if level[1] % 2 == 0 else ": ")
            else:
                self._write("\n")
            if level[1] % 2 == 0:
                self._write(" " * (4 * len(self.levels)))
        level[1] += 1

    def scalar(self, token: Optional[str]) -> None:
        self._event()
        self._prefix()
        if token is None:  # Writer::Double refuses NaN and infinities (no kWriteNanAndInfFlag)
            raise _WriterStopped()
        self._write(token)

    def start(self, in_array: bool) -> None:
        self._event()
        self._prefix()
        self._write("[" if in_array else "{")
        self.levels.append([in_array, 0])

    def end(self) -> None:
        self._event()
        in_array, count = self.levels.pop()
        if count and not in_array:
            self._write("\n" + " " * (4 * len(self.levels)))
        self._write("]" if in_array else "}")

    def walk(self, value: Any) -> None:
        """``Value::Accept``."""
        if isinstance(value, dict):
            self.start(False)
            for key, item in value.items():
                self.scalar(_json_string(str(key)))
                self.walk(item)
            self.end()
        elif isinstance(value, list):
            self.start(True)
            for item in value:
                self.walk(item)
            self.end()
        else:
            self.scalar(_json_scalar(value))


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _json_string(text: str) -> str:
    """``Writer::WriteString``: quote, backslash and control characters escaped (upper-case hex)."""
    escaped = "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04X}" if ord(c) < 0x20 else c) for c in text)
    return '"' + escaped + '"'


def _json_scalar(value: Any) -> Optional[str]:
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, int) and -(2**63) <= value < 2**64:
        return str(value)
    return _rapidjson_double(float(value))


def _rapidjson_double(value: float) -> Optional[str]:
    """``Writer::WriteDouble``: shortest digits (``internal::dtoa``) laid out by ``Prettify``."""
    if math.isnan(value) or math.isinf(value):
        return None
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return sign + "0.0"
    digits_tuple = decimal.Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digits_tuple.digits)
    exponent = int(digits_tuple.exponent)  # value = digits * 10**exponent
    kk = len(digits) + exponent
    if 0 <= exponent and kk <= 21:
        text = digits + "0" * exponent + ".0"
    elif 0 < kk <= 21:
        text = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        text = "0." + "0" * -kk + digits
    elif len(digits) == 1:
        text = digits + "e" + str(kk - 1)
    else:
        text = digits[0] + "." + digits[1:] + "e" + str(kk - 1)
    return sign + text


def debug_string(value: Any) -> str:
    """``JsonValueToDebugString``: pretty-printed (single-line arrays), cut after 256 bytes."""
    writer = _DebugWriter(MAX_DEBUG_BYTES)
    try:
        writer.walk(value)
    except _WriterStopped:
        pass
    return bytes(writer.out).decode("utf-8", "replace")


def _innermost_container(text: str) -> str:
    """``[`` or ``{``: the container open at the end of ``text`` (outside strings), or ``""``."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def _parse_error(text: str, error: json.JSONDecodeError, skipped: int) -> ServingError:
    position = skipped + error.pos
    if error.msg.startswith("Expecting ',' delimiter"):
        wording = (T("Missing a comma or '}' after an object member.")
                   if _innermost_container(text[:position]) == "{" else
                   T("Missing a comma or ']' after an array element."))
    else:
        wording = next((rj for py, rj in _RAPIDJSON_WORDING if error.msg.startswith(py)),
                       T("Invalid value."))
    offset = len(text[:position].encode("utf-8"))
    return invalid_argument(T("JSON Parse error: <error> at offset: <offset>", error=wording, offset=offset))


def parse_json(body: bytes) -> dict[str, Any]:
    """``ParseJson``: rapidjson with ``kParseNanAndInfFlag | kParseStopWhenDoneFlag`` (what follows
    the root value is not read); the document must be an object.  Offsets are byte offsets."""
    if not body:
        raise invalid_argument(T("JSON Parse error: The document is empty"))
    text = body.decode("utf-8", "replace")
    stripped = text.lstrip(_JSON_WHITESPACE)
    skipped = len(text) - len(stripped)
    if not stripped:
        raise invalid_argument(T("JSON Parse error: The document is empty. at offset: <offset>",
                                 offset=len(body)))
    try:
        document, _ = json.JSONDecoder(parse_constant=_parse_constant).raw_decode(stripped)
    except json.JSONDecodeError as error:
        raise _parse_error(text, error, skipped) from error
    if not isinstance(document, dict):
        raise invalid_argument(T("JSON Value: <json> Is not object", json=debug_string(document)))
    return document


def may_hold_booleans(body: bytes) -> bool:
    """Whether a request body may hold a JSON ``true`` or ``false`` (also inside a string: then the
    element walk runs, which is only slower)."""
    return b"true" in body or b"false" in body


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
        raise invalid_argument(T("JSON Value: <json> not formatted correctly for base64 data",
                                 json=debug_string(value)))
    text = value[B64]
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as error:
        raise invalid_argument(T("Unable to base64 decode")) from error


# --------------------------------------------------------------- tensors in


def _types() -> Any:
    from tensorflow.core.framework import types_pb2

    return types_pb2


def _dtype_name(dtype: int) -> str:
    from .tensors import dtype_name

    return dtype_name(dtype)


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(T("JSON Value: <json> Type: <json_type> is not of expected type: <dtype>",
                              json=debug_string(value), json_type=json_type(value), dtype=_dtype_name(dtype)))


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
                           T("Conversion of JSON Value: <json> to type: <dtype>", json=debug_string(value),
                             dtype=_dtype_name(dtype)))


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
            raise invalid_argument(T("JSON Value: <json> found at incorrect level: <level> in the JSON DOM. "
                                     "Expected at level: <rank>", json=debug_string(value), level=level + 1,
                                     rank=rank))
        if isinstance(value, dict):
            if dtype != _types().DT_STRING:
                raise _type_error(value, dtype)
            tensor.string_val.append(decode_b64(value))
        else:
            _add_value(value, dtype, tensor)
        return 1
    if level >= rank:
        raise invalid_argument(T("Encountered list at unexpected level: <level> expected < <rank>",
                                 level=level, rank=rank))
    if len(value) != shape[level]:
        raise invalid_argument(T("Encountered list at unexpected size: <size> at level: <level> expected "
                                 "size: <expected>", size=len(value), level=level, expected=shape[level]))
    return sum(_fill(item, level + 1, shape, dtype, tensor) for item in value)


def _fill_values(value: Any, shape: list[int], dtype: int, tensor: Any, literals: bool) -> int:
    """``FillTensorProto`` from level 0: a float tensor of plain numbers in one numpy step, else
    the element walk of :func:`_fill` (which gives every error).

    The numpy step takes only what the walk would take without an error: nested lists of one
    uniform shape (the walk's ``dense_shape``) whose leaves numpy reads as ints or floats, from a
    body without ``true``/``false`` (``literals`` False: numpy would read a JSON boolean as a
    number where TF Serving refuses it).  Each value is the walk's ``float(value)`` (a JSON int
    through float64, as rapidjson's ``GetDouble``), stored in ``float_val``/``double_val`` too.
    """
    t = _types()
    if literals or dtype not in (t.DT_FLOAT, t.DT_DOUBLE) or not isinstance(value, list):
        return _fill(value, 0, shape, dtype, tensor)
    try:
        array = np.array(value)
    except (ValueError, TypeError, OverflowError):  # ragged, or a leaf numpy cannot hold: the walk says which
        return _fill(value, 0, shape, dtype, tensor)
    if array.dtype.kind not in "if" or list(array.shape) != shape or array.size == 0:
        return _fill(value, 0, shape, dtype, tensor)
    as_double = array.astype(np.float64).ravel()
    if dtype == t.DT_FLOAT:
        with np.errstate(over="ignore"):  # a double beyond float's range is inf, as the walk's float field
            tensor.float_val.extend(as_double.astype(np.float32).tolist())
    else:
        tensor.double_val.extend(as_double.tolist())
    return int(array.size)


def _shape_text(shape: list[int]) -> str:
    return "[" + ",".join(str(size) for size in shape) + "]"


class _RowBuilder:
    """Accumulates ``instances`` items into one batched TensorProto per input."""

    def __init__(self, infos: Any, tensors: Any, literals: bool = True) -> None:
        self.infos = infos
        self.tensors = tensors
        self.literals = literals
        self.sizes: dict[str, int] = {}
        self.shapes: dict[str, list[int]] = {}

    def add(self, item: Any, name: str) -> None:
        if name not in self.infos:
            raise invalid_argument(T("JSON object: does not have named input: <name>", name=name))
        shape = dense_shape(item)
        size = _fill_values(item, shape, self.infos[name].dtype, self.tensors[name], self.literals)
        if name not in self.sizes:
            self.sizes[name], self.shapes[name] = size, shape
        elif self.sizes[name] != size:
            raise invalid_argument(T("Expecting tensor size: <expected> but got: <size>",
                                     expected=self.sizes[name], size=size))
        elif self.shapes[name] != shape:
            raise invalid_argument(T("Expecting shape <expected> but got: <shape>",
                                     expected=_shape_text(self.shapes[name]), shape=_shape_text(shape)))

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


def fill_from_instances(items: list[Any], infos: Any, tensors: Any, literals: bool = True) -> None:
    """``FillTensorMapFromInstancesList`` (``literals``: see :func:`_fill_values`)."""
    if not isinstance(items[0], dict) and len(infos) > 1:
        raise invalid_argument(T("instances is a plain list, but expecting list of objects as multiple "
                                 "input tensors required as per tensorinfo_map"))
    objects = _is_element_object(items[0])
    names = sorted(infos)
    builder = _RowBuilder(infos, tensors, literals)
    for index, item in enumerate(items):
        if objects:
            _add_object_item(builder, item, index, names)
        else:
            if _is_element_object(item):
                raise invalid_argument(T("Expecting value/list but got object at item <index> of input list",
                                         index=index))
            try:
                builder.add(item, names[0])
            except ServingError as error:
                raise invalid_argument(T("Failed to process element: <index> of 'instances' list. Error: "
                                         "<status>", index=index, status=_status_text(error))) from error
    builder.finish(len(items))


def _add_object_item(builder: _RowBuilder, item: Any, index: int, names: list[str]) -> None:
    if not _is_element_object(item):
        raise invalid_argument(T("Expecting object but got list at item <index> of input list", index=index))
    for key, value in item.items():
        try:
            builder.add(value, key)
        except ServingError as error:
            raise invalid_argument(T("Failed to process element: <index> key: <key> of 'instances' list. "
                                     "Error: <status>", index=index, key=key, status=_status_text(error))) from error
    if sorted(item) != names:
        raise invalid_argument(T("Failed to process element: <index> of 'instances' list. JSON object: "
                                 "<json> keys must be equal to: <keys>", index=index, json=debug_string(item),
                                 keys=",".join(names)))


def fill_from_inputs(value: Any, infos: Any, tensors: Any, literals: bool = True) -> None:
    """``FillTensorMapFromInputsMap`` (``literals``: see :func:`_fill_values`)."""
    if not isinstance(value, dict) or is_b64_object(value):
        if len(infos) > 1:
            raise invalid_argument(T("inputs is a plain value/list, but expecting an object as multiple "
                                     "input tensors required as per tensorinfo_map"))
        name = next(iter(infos))
        _fill_columnar(value, infos[name].dtype, tensors[name], literals)
        return
    for name in sorted(infos):
        if name not in value:
            raise invalid_argument(T("Missing named input: <name> in 'inputs' object.", name=name))
        _fill_columnar(value[name], infos[name].dtype, tensors[name], literals)


def _fill_columnar(value: Any, dtype: int, tensor: Any, literals: bool) -> None:
    tensor.dtype = dtype
    shape = dense_shape(value)
    for size in shape:
        tensor.tensor_shape.dim.add(size=size)
    _fill_values(value, shape, dtype, tensor, literals)


def read_signature_name(document: dict[str, Any]) -> str:
    """``FillSignature``."""
    if SIGNATURE not in document:
        return ""
    if not isinstance(document[SIGNATURE], str):
        raise invalid_argument(T("JSON Value: <json> not formatted correctly. 'signature_name' key must be a "
                                 "string value.", json=debug_string(document)))
    return str(document[SIGNATURE])


def fill_predict_request(document: dict[str, Any], signature_name: str,
                         get_infos: Callable[[str], Any], request: Any, literals: bool = True) -> str:
    """``FillPredictRequestFromJson``; returns the format, "row" or "columnar".  ``literals``: whether
    the body may hold a JSON ``true``/``false`` (:func:`may_hold_booleans`); without, float tensors
    are filled in one numpy step (:func:`_fill_values`)."""
    request.model_spec.signature_name = signature_name
    infos = get_infos(signature_name)
    if not infos:
        raise invalid_argument(T("Failed to get input map for signature: <signature>",
                                 signature=signature_name or "DEFAULT"))
    if INSTANCES in document:
        if INPUTS in document:
            raise invalid_argument(T("JSON Value: <json> Not formatted correctly expecting only one of "
                                     "'inputs' or 'instances' keys to exist ", json=debug_string(document)))
        items = document[INSTANCES]
        if not isinstance(items, list):
            raise invalid_argument(T("JSON Value: <json> Expecting 'instances' to be an list/array",
                                     json=debug_string(document)))
        if not items:
            raise invalid_argument(T("JSON Value: <json> No values in 'instances' array",
                                     json=debug_string(document)))
        fill_from_instances(items, infos, request.inputs, literals)
        return "row"
    if INPUTS in document:
        fill_from_inputs(document[INPUTS], infos, request.inputs, literals)
        return "columnar"
    raise invalid_argument(T("Missing 'inputs' or 'instances' key"))


# ---------------------------------------------------------------- examples in


def _feature_kind_error(name: str, feature: Any) -> ServingError:
    kind = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64"}.get(
        feature.WhichOneof("kind") or "", "")
    return invalid_argument(T("Unexpected element type in feature: <name> expecting type: <kind>",
                              name=name, kind=kind))


def _need_kind(name: str, feature: Any, kind: str) -> None:
    current = feature.WhichOneof("kind")
    if current is not None and current != kind:
        raise _feature_kind_error(name, feature)


def _add_feature_value(value: Any, name: str, feature: Any) -> None:
    """``AddValueToFeature``."""
    unexpected = invalid_argument(T("Feature: <name> has element with unexpected JSON type: <json_type>",
                                    name=name, json_type=json_type(value)))
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
            raise invalid_argument(T("Feature: <name> has uint64_t element. Only int64_t is supported.",
                                     name=name))
        feature.int64_list.value.append(value)


def example_from_json(value: Any, example: Any) -> None:
    """``MakeExampleFromJsonObject``."""
    if not isinstance(value, dict):
        raise invalid_argument(T("Example must be JSON object but got JSON <json_type>", json_type=json_type(value)))
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
        raise invalid_argument(T("JSON Value: <json> When method is classify, key 'examples' is expected and "
                                 "was not found", json=debug_string(document)))
    if not isinstance(examples, list):
        raise invalid_argument(T("JSON Value: <json> Expecting 'examples' value to be an list/array",
                                 json=debug_string(document)))
    if not examples:
        raise invalid_argument(T("JSON Value: <json> 'examples' value is an empty array",
                                 json=debug_string(document)))
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
    raise invalid_argument(T("Failed to write JSON value for tensor type: <dtype>", dtype=dtype.name))


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
        items = [pad + json.dumps(k) + ": " + dumps(v, indent + 4) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(item, indent) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def predict_response_json(outputs: dict[str, np.ndarray], row_format: bool) -> str:
    """``MakeJsonFromTensors``."""
    if not outputs:
        raise invalid_argument(T("Cannot convert empty tensor map to JSON"))
    names = sorted(outputs)
    if not row_format:
        columns = {n: _tensor_values(outputs[n], _is_bytes_output(n, outputs[n])) for n in names}
        body = columns[names[0]] if len(names) == 1 else columns
        return dumps({"outputs": body})
    batch = -1
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise invalid_argument(T("Tensor name: <name> has no shape information ", name=name))
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(T("Tensor name: <name> has inconsistent batch size: <size> expecting: "
                                     "<expected>", name=name, size=array.shape[0], expected=batch))
        batch = array.shape[0]
    rows: list[Any] = []
    for index in range(batch):
        values = {n: _tensor_values(outputs[n][index], _is_bytes_output(n, outputs[n])) for n in names}
        rows.append(values[names[0]] if len(names) == 1 else values)
    return dumps({"predictions": rows})


def classify_response_json(result: Any) -> str:
    if not result.classifications:
        raise invalid_argument(T("Cannot convert empty ClassificationResults to JSON"))
    rows = [[[c.label, _Raw(format_decimal(c.score, True))] for c in entry.classes]
            for entry in result.classifications]
    return dumps({RESULTS: rows})


def regress_response_json(result: Any) -> str:
    if not result.regressions:
        raise invalid_argument(T("Cannot convert empty RegressionResults to JSON"))
    return dumps({RESULTS: [_Raw(format_decimal(r.value, True)) for r in result.regressions]})


def error_json(message: str) -> str:
    """``MakeJsonFromStatus``."""
    return dumps({"error": message})


def proto_json(message: Any, preserve_names: bool) -> str:
    """Protobuf JSON with whitespace and default-valued fields, as TF Serving prints status/metadata."""
    from google.protobuf import json_format

    return str(json_format.MessageToJson(message, preserving_proto_field_name=preserve_names,
                                         always_print_fields_with_no_presence=True, indent=1))
