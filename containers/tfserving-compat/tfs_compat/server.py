"""Assemble the server from flags, in the order of ``Server::BuildAndStart`` (server.cc)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Optional

from .config import (
    BatchingOptions,
    read_batching_options,
    read_model_server_config,
    single_model_config,
)
from .core import CoreOptions, ServerCore
from .flags import ParsedFlags
from .logs import get_logger
from .servable import SessionThreads
from .status import ServingError, invalid_argument
from .texts import T

if TYPE_CHECKING:
    from .rest import RestServer
    from .service import PredictionService


def _model_server_config(flags: ParsedFlags) -> Any:
    config_file = flags.get_str("model_config_file")
    if config_file:
        return read_model_server_config(config_file)
    name, base_path = flags.get_str("model_name"), flags.get_str("model_base_path")
    get_logger().info(T("Building single TensorFlow model file config:  model_name: <model_name> "
                        "model_base_path: <model_base_path>", model_name=name, model_base_path=base_path))
    return single_model_config(name, base_path)


def _batching_options(flags: ParsedFlags) -> Optional[BatchingOptions]:
    parameters_file = flags.get_str("batching_parameters_file")
    if flags.get_bool("enable_batching"):
        return read_batching_options(parameters_file) if parameters_file else BatchingOptions()
    if parameters_file:
        raise invalid_argument(T("server_options.batching_parameters_file is set without setting "
                                 "server_options.enable_batching to true."))
    return None


def _session_threads(flags: ParsedFlags) -> SessionThreads:
    intra = flags.get_int("tensorflow_intra_op_parallelism")
    inter = flags.get_int("tensorflow_inter_op_parallelism")
    both = flags.get_int("tensorflow_session_parallelism")
    if intra > 0 and inter > 0 and both > 0:
        raise invalid_argument(T(
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all."))
    if intra > 0 or inter > 0:
        return SessionThreads(intra, inter)
    return SessionThreads(both, both)


def _validate(flags: ParsedFlags) -> None:
    if flags.get_int("port") == 0 and not flags.get_str("grpc_socket_path"):
        raise invalid_argument(T("At least one of server_options.grpc_port or "
                                 "server_options.grpc_socket_path must be set."))
    if flags.get_bool("use_alts_credentials") and flags.get_str("ssl_config_file"):
        raise invalid_argument(T("Either use_alts_credentials must be false or ssl_config_file must be empty."))
    if not flags.get_str("model_base_path") and not flags.get_str("model_config_file"):
        raise invalid_argument(T("Both server_options.model_base_path and "
                                 "server_options.model_config_file are empty!"))


class ModelServer:
    """The whole server: core, gRPC, REST, config polling; ``stop()`` is safe at any point."""

    def __init__(self, flags: ParsedFlags) -> None:
        self.flags = flags
        self.core: Optional[ServerCore] = None
        self.grpc_server: Any = None
        self.rest_server: Optional["RestServer"] = None
        self.grpc_port = 0
        self.rest_port = 0
        self._stopping = threading.Event()
        self._config_poller: Optional[threading.Thread] = None

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def build_and_start(self) -> None:
        """Raises :class:`ServingError` where ``BuildAndStart`` returns a bad status."""
        flags = self.flags
        _validate(flags)
        config = _model_server_config(flags)
        batching = _batching_options(flags)
        tags = tuple(tag for tag in flags.get_str("saved_model_tags").split(",") if tag)
        self.core = ServerCore(CoreOptions(
            file_system_poll_wait_seconds=flags.get_int("file_system_poll_wait_seconds"),
            saved_model_tags=tags, session_threads=_session_threads(flags),
            max_num_load_retries=flags.get_int("max_num_load_retries"),
            load_retry_interval_micros=flags.get_int("load_retry_interval_micros"), batching=batching,
            allow_version_labels_for_unavailable_models=flags.get_bool(
                "allow_version_labels_for_unavailable_models")))
        self.core.reload_config(config)
        self.core.start()
        self.core.wait_until_models_available(self.core.model_names())
        if self.stopping:
            return
        self._start_config_polling()
        from .service import PredictionService, ServiceOptions  # imports TensorFlow

        service = PredictionService(self.core, ServiceOptions(
            enable_signature_method_name_check=flags.get_bool("enable_signature_method_name_check"),
            serialize_as_tensor_content=flags.get_bool("enable_serialization_as_tensor_content")))
        self._start_grpc(service)
        self._start_rest(service)

    def _start_config_polling(self) -> None:
        wait = self.flags.get_int("model_config_file_poll_wait_seconds")
        path = self.flags.get_str("model_config_file")
        if wait <= 0 or not path:
            return
        self._config_poller = threading.Thread(target=self._poll_config, args=(path, wait),
                                               name="Server_fs_model_config_poll_thread", daemon=True)
        self._config_poller.start()

    def _poll_config(self, path: str, wait: int) -> None:
        """``PollFilesystemAndReloadConfig``."""
        assert self.core is not None
        while not self._stopping.wait(wait):
            try:
                config = read_model_server_config(path)
            except ServingError as error:
                get_logger().error(T("Failed to read ModelServerConfig file: <message>", message=error.message))
                continue
            try:
                self.core.reload_config(config, wait=True)
            except ServingError as error:
                get_logger().error(T("PollFilesystemAndReloadConfig failed to ReloadConfig: <message>",
                                     message=error.message))

    def _start_grpc(self, service: "PredictionService") -> None:
        from .grpc_api import build_grpc_server, channel_arguments

        assert self.core is not None
        host, port = self.flags.get_str("listen_host"), self.flags.get_int("port")
        address = T("<host>:<port>", host=host, port=port)
        server, bound = build_grpc_server(service, self.core, address, self.flags.get_int("grpc_max_threads"),
                                          channel_arguments(self.flags.get_str("grpc_channel_arguments")))
        if bound == 0:
            raise invalid_argument(T("Failed to BuildAndStart gRPC server"))
        server.start()
        self.grpc_server, self.grpc_port = server, bound
        get_logger().info(T("Running gRPC ModelServer at <address> ...", address=address))

    def _start_rest(self, service: "PredictionService") -> None:
        from .rest import RestApi, RestServer

        assert self.core is not None
        port = self.flags.get_int("rest_api_port")
        if port == 0:
            return
        if port == self.flags.get_int("port"):
            get_logger().error(T("server_options.http_port cannot be same as grpc_port. Please use a different "
                                 "port for HTTP/REST API. Skipped exporting HTTP/REST API."))
            return
        api = RestApi(service, self.flags.get_int("rest_api_timeout_in_ms"),
                      self.flags.get_bool("rest_api_enable_cors_support"))
        try:
            self.rest_server = RestServer(api, self.flags.get_str("listen_host"), port)
        except OSError:
            get_logger().error(T("Failed to start HTTP Server at localhost:<port>", port=port))
            return
        self.rest_server.start()
        self.rest_port = self.rest_server.port
        get_logger().info(T("Exporting HTTP/REST API at:localhost:<port> ...", port=port))

    def request_stop(self) -> None:
        """Callable from a signal handler: unblocks startup waits and ``wait()``."""
        self._stopping.set()
        if self.core is not None:
            self.core.request_stop()

    def wait(self) -> None:
        while not self._stopping.wait(0.5):
            pass

    def stop(self) -> None:
        self.request_stop()
        if self.rest_server is not None:
            self.rest_server.stop()
        if self.grpc_server is not None:
            self.grpc_server.stop(grace=0.5).wait(1.0)
        if self.core is not None:
            self.core.stop()
