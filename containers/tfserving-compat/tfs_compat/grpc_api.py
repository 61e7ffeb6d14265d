"""gRPC ``PredictionService`` and ``ModelService`` with the official stubs.

Only the unary methods TF Serving offers; a method it has and we lack (``MultiInference``) answers
gRPC's own UNIMPLEMENTED.  Errors are sent as the gRPC status code and message, as TF Serving does.
"""

from __future__ import annotations

from concurrent import futures
from typing import Any, Callable, Optional, TypeVar

import grpc
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from .core import ServerCore
from .logs import get_logger
from .service import PredictionService
from .status import ServingError, invalid_argument
from .texts import T

Reply = TypeVar("Reply")
MAX_MESSAGE = 2**31 - 1


def _timeout_ms(context: grpc.ServicerContext) -> int:
    """``DeadlineToTimeoutMillis``: the call's deadline bounds the Session run."""
    remaining: Optional[float] = context.time_remaining()
    if remaining is None or remaining > 2**31 / 1000:
        return 0
    return max(int(remaining * 1000), 1)


def _answer(context: grpc.ServicerContext, call: Callable[[], Reply]) -> Reply:
    try:
        return call()
    except ServingError as error:
        context.abort(error.grpc_code, error.grpc_message())
        raise  # unreachable: abort raises


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, service: PredictionService) -> None:
        self.service = service

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC name
        return _answer(context, lambda: self.service.predict(request, _timeout_ms(context)))

    def Classify(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self.service.classify(request, _timeout_ms(context)))

    def Regress(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self.service.regress(request, _timeout_ms(context)))

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self.service.get_model_metadata(request))


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: PredictionService, core: ServerCore) -> None:
        self.service = service
        self.core = core

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        return _answer(context, lambda: self.service.get_model_status(request))

    def HandleReloadConfigRequest(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        """``ModelServiceImpl::HandleReloadConfigRequest``: status in the response and on the call."""
        response = model_management_pb2.ReloadConfigResponse()
        try:
            if request.config.WhichOneof("config") != "model_config_list":
                raise invalid_argument(T(
                    "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                    "ModelConfigList is currently supported"))
            for index, model in enumerate(request.config.model_config_list.config):
                get_logger().info(T("\nConfig entry\n\tindex : <index>\n\tpath : <path>\n\tname : <name>"
                                    "\n\tplatform : <platform>", index=index, path=model.base_path,
                                    name=model.name, platform=model.model_platform))
            self.core.reload_config(request.config, wait=True)
        except ServingError as error:
            get_logger().error(T("ReloadConfig failed: <message>", message=error.message))
            response.status.error_code = int(error.code)
            response.status.error_message = error.message
            context.set_code(error.grpc_code)
            context.set_details(error.grpc_message())
        return response


def channel_arguments(text: str) -> list[tuple[str, Any]]:
    """``parseGrpcChannelArgs``: ``key=value`` pairs, ints passed as ints."""
    pairs: list[tuple[str, Any]] = []
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        pairs.append((key, int(value) if value.lstrip("-").isdigit() else value))
    return pairs


def build_grpc_server(service: PredictionService, core: ServerCore, address: str,
                      max_threads: int, extra_args: list[tuple[str, Any]]) -> tuple[grpc.Server, int]:
    """Returns the server (not started) and the bound port (0 when binding failed)."""
    options = [("grpc.max_receive_message_length", MAX_MESSAGE),
               ("grpc.max_send_message_length", MAX_MESSAGE), ("grpc.so_reuseport", 0)] + extra_args
    workers = max_threads if max_threads > 0 else 16
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
                         options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(service), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service, core), server)
    try:
        port = server.add_insecure_port(address)
    except RuntimeError:
        port = 0
    return server, port
