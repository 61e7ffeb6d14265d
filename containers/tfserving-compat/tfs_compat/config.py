"""Model server and batching configuration, read from text protos as TF Serving reads them.

``ModelServerConfig`` comes from the official ``tensorflow_serving.config`` protos shipped in
``tensorflow-serving-api``.  ``BatchingParameters`` lives in
``tensorflow_serving/servables/tensorflow/session_bundle_config.proto``, which that package does
not ship; we describe the same message (same field names, numbers and wrapper types) at run time
so the same text files parse.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format, wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

from .status import Code, ServingError, invalid_argument
from .texts import T

TENSORFLOW_PLATFORM = "tensorflow"


def read_text_proto(path: str, message: Any) -> Any:
    """``ParseProtoTextFile`` (tensorflow_serving/util/proto_util.h): read, then text-parse."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as error:
        raise ServingError(Code.NOT_FOUND, T("<path>; <strerror>", path=path, strerror=os.strerror(error.errno or 2))) from error
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise invalid_argument(T("Invalid protobuf file: '<path>'", path=path)) from error
    return message


def single_model_config(model_name: str, base_path: str) -> Any:
    """``BuildSingleModelConfig`` in server.cc."""
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = model_name
    model.base_path = base_path
    model.model_platform = TENSORFLOW_PLATFORM
    return config


def read_model_server_config(path: str) -> Any:
    return read_text_proto(path, model_server_config_pb2.ModelServerConfig())


def validate_model_config_list(config: Any) -> None:
    """``ValidateModelConfigList`` and ``GetPlatform`` (server_core.cc)."""
    seen: set[str] = set()
    for model in config.model_config_list.config:
        if model.name in seen:
            raise invalid_argument(T("Illegal to list model <model> multiple times in config list",
                                                 model=model.name))
        seen.add(model.name)
    for model in config.model_config_list.config:
        if not os.path.isabs(model.base_path) and "://" not in model.base_path:
            raise invalid_argument(T(
                "Expected model <model> to have an absolute path or URI; got base_path()=<base_path>",
                model=model.name, base_path=model.base_path))
    for model in config.model_config_list.config:
        platform = model_platform(model)
        if platform != TENSORFLOW_PLATFORM:
            raise invalid_argument(T("Model <model> requests unsupported platform <platform>",
                                                 model=model.name, platform=platform))


def model_platform(model: Any) -> str:
    if model.model_type != 0:
        if model.model_platform:
            raise invalid_argument(T(
                "Illegal setting both ModelServerConfig::model_type (deprecated) and "
                "ModelServerConfig::model_platform, model name is <model>", model=model.name))
        return TENSORFLOW_PLATFORM
    if not model.model_platform:
        raise invalid_argument(T(
            "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
            "ModelServerConfig::model_platform, model name is <model>", model=model.name))
    return str(model.model_platform)


def _batching_parameters_class() -> Any:
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file_proto = descriptor_pb2.FileDescriptorProto(
        name="tfs_compat/batching_parameters.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file_proto.message_type.add(name="BatchingParameters")
    label_optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    label_repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    type_message = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
    for name, number, wrapper in (
            ("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
            ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
            ("thread_pool_name", 5, "StringValue"), ("enable_large_batch_splitting", 8, "BoolValue"),
            ("max_execution_batch_size", 9, "Int64Value")):
        message.field.add(name=name, number=number, label=label_optional, type=type_message,
                          type_name=".google.protobuf." + wrapper)
    message.field.add(name="allowed_batch_sizes", number=6, label=label_repeated,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7, label=label_optional,
                      type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL)
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """The scheduler options TF Serving takes from ``BatchingParameters``.

    Defaults are those of TensorFlow's ``BasicBatchScheduler::Options`` that TF Serving uses when
    a field is unset: 1000 rows, no timeout, 10 queued batches, one thread per CPU.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    thread_pool_name: str = "model_server_batch_threads"
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False


def read_batching_options(path: str) -> BatchingOptions:
    params = read_text_proto(path, _batching_parameters_class()())
    defaults = BatchingOptions()

    def pick(field: str, default: Any) -> Any:
        return getattr(params, field).value if params.HasField(field) else default

    return BatchingOptions(
        max_batch_size=int(pick("max_batch_size", defaults.max_batch_size)),
        batch_timeout_micros=int(pick("batch_timeout_micros", defaults.batch_timeout_micros)),
        max_enqueued_batches=int(pick("max_enqueued_batches", defaults.max_enqueued_batches)),
        num_batch_threads=int(pick("num_batch_threads", defaults.num_batch_threads)),
        thread_pool_name=str(pick("thread_pool_name", defaults.thread_pool_name)),
        allowed_batch_sizes=tuple(int(size) for size in params.allowed_batch_sizes),
        pad_variable_length_inputs=bool(params.pad_variable_length_inputs),
    )
