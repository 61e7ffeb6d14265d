"""TensorProto <-> numpy conversions and TensorFlow data type names."""

from __future__ import annotations

from typing import Any

import numpy as np

from .status import invalid_argument
from .texts import T


def dtype_name(dtype_enum: int) -> str:
    """``DataTypeString``: DT_FLOAT -> "float", DT_INT32 -> "int32", ..."""
    from tensorflow.core.framework import types_pb2

    return str(types_pb2.DataType.Name(dtype_enum))[3:].lower()


def dtype_enum_name(dtype_enum: int) -> str:
    """``DataType_Name``: "DT_FLOAT"."""
    from tensorflow.core.framework import types_pb2

    return str(types_pb2.DataType.Name(dtype_enum))


def proto_to_array(alias: str, proto: Any) -> np.ndarray:
    """``Tensor::FromProto``; a proto it cannot read is ``tensor parsing error: <alias>``."""
    import tensorflow as tf

    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError, KeyError) as error:
        raise invalid_argument(T("tensor parsing error: <alias>", alias=alias)) from error


_TYPED_FIELDS: dict[str, str] = {
    "float32": "float_val", "float64": "double_val", "int32": "int_val", "int16": "int_val",
    "int8": "int_val", "uint8": "int_val", "uint16": "int_val", "int64": "int64_val",
    "bool": "bool_val", "uint32": "uint32_val", "uint64": "uint64_val",
}


def array_to_proto(array: np.ndarray, as_tensor_content: bool) -> Any:
    """``Tensor::AsProtoField`` (typed repeated fields, the default) or ``AsProtoTensorContent``."""
    import tensorflow as tf
    from tensorflow.core.framework import tensor_pb2, types_pb2

    if as_tensor_content:
        return tf.make_tensor_proto(array)
    if array.dtype.kind in "SUO":
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
        proto.string_val.extend(_as_bytes(item) for item in array.ravel())
    elif array.dtype.name in _TYPED_FIELDS:
        proto = tensor_pb2.TensorProto(dtype=tf.as_dtype(array.dtype).as_datatype_enum)
        getattr(proto, _TYPED_FIELDS[array.dtype.name]).extend(array.ravel().tolist())
    else:
        return tf.make_tensor_proto(array)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=int(size))
    return proto


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    return str(item).encode("utf-8")
