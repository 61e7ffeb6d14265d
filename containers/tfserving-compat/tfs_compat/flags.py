"""Command-line flags with TF Serving's names, parsed the way TensorFlow's flag parser does.

TensorFlow's ``tensorflow::Flags::Parse`` (used by ``tensorflow_model_server``'s ``main.cc``):

* takes ``--name=value`` only (no ``--name value``); a bool also takes a bare ``--name``;
* on a value it cannot read it logs ``Couldn't interpret value <v> for flag <name>.``, prints the
  usage text and ``main`` returns -1 (exit status 255);
* ``--help`` prints the usage text and exits with 255 as well;
* an argument that matches no flag is left over: ``main`` prints ``unknown argument: <arg>`` and
  the usage text, and then **keeps going** with the flags it did understand.

Flags TF Serving has but this server does not implement are accepted and reported as ignored.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Union

from .texts import T

FlagValue = Union[int, bool, str]


@dataclasses.dataclass(frozen=True)
class FlagSpec:
    name: str
    default: FlagValue
    help: str
    implemented: bool = True

    @property
    def type_name(self) -> str:
        if isinstance(self.default, bool):
            return "bool"
        if isinstance(self.default, int):
            return "int32"
        return "string"


def _spec(name: str, default: FlagValue, help_text: str, implemented: bool = True) -> FlagSpec:
    return FlagSpec(name=name, default=default, help=help_text, implemented=implemented)


def flag_specs() -> list[FlagSpec]:
    """TF Serving's flags (main.cc, defaults from server.h) plus our ``--listen_host``."""
    return [
        _spec("port", 8500, "TCP port to listen on for gRPC/HTTP API. Disabled if port set to zero."),
        _spec("grpc_socket_path", "", "UNIX socket for gRPC (not implemented here).", False),
        _spec("rest_api_port", 0, "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API "
              "will not be exported. This port must be different than the one specified in --port."),
        _spec("rest_api_num_threads", 0, "Number of threads for HTTP/REST API processing "
              "(threads are per request here).", False),
        _spec("rest_api_timeout_in_ms", 30000, "Timeout for HTTP/REST API calls."),
        _spec("rest_api_enable_cors_support", False, "Enable CORS headers in response"),
        _spec("enable_batching", False, "enable batching"),
        _spec("allow_version_labels_for_unavailable_models", False,
              "If true, allows assigning unused version labels to models that are not available yet."),
        _spec("batching_parameters_file", "", "If non-empty, read an ascii BatchingParameters protobuf "
              "from the supplied file name and use the contained values instead of the defaults."),
        _spec("enable_per_model_batching_parameters", False, "Per-model batching_params.pbtxt.", False),
        _spec("model_config_file", "", "If non-empty, read an ascii ModelServerConfig protobuf from the "
              "supplied file name, and serve the models in that file."),
        _spec("model_config_file_poll_wait_seconds", 0, "Interval in seconds between each poll of the "
              "filesystem for model_config_file. If unset or set to zero, poll will be done exactly once."),
        _spec("model_name", "default", "name of model (ignored if --model_config_file flag is set)"),
        _spec("model_base_path", "", "path to export (ignored if --model_config_file flag is set, "
              "otherwise required)"),
        _spec("num_load_threads", 0, "Threads for loading servables (loads are serial here).", False),
        _spec("num_unload_threads", 0, "Threads for unloading servables (serial here).", False),
        _spec("max_num_load_retries", 5, "maximum number of times it retries loading a model after the "
              "first failure, before giving up. If set to 0, a load is attempted only once."),
        _spec("load_retry_interval_micros", 60_000_000, "The interval, in microseconds, between each "
              "servable load retry. If set negative, it doesn't wait."),
        _spec("file_system_poll_wait_seconds", 1, "Interval in seconds between each poll of the "
              "filesystem for new model version. If set to zero poll will be exactly done once and not "
              "periodically. Negative disables polling."),
        _spec("flush_filesystem_caches", True, "Flush filesystem caches (no-op here).", False),
        _spec("tensorflow_session_parallelism", 0, "Number of threads to use for running a Tensorflow "
              "session. Auto-configured by default."),
        _spec("tensorflow_session_config_file", "", "ascii ConfigProto file.", False),
        _spec("tensorflow_intra_op_parallelism", 0, "Threads to parallelize an individual op."),
        _spec("tensorflow_inter_op_parallelism", 0, "Operators that can run simultaneously."),
        _spec("use_alts_credentials", False, "Use Google ALTS credentials", False),
        _spec("ssl_config_file", "", "SSLConfig for a secure gRPC channel.", False),
        _spec("platform_config_file", "", "PlatformConfigMap file.", False),
        _spec("per_process_gpu_memory_fraction", "0", "GPU memory fraction (float; CPU only here).", False),
        _spec("saved_model_tags", "serve", "Comma-separated set of tags corresponding to the meta graph "
              "def to load from SavedModel."),
        _spec("grpc_channel_arguments", "", "Comma separated gRPC server arguments key=value."),
        _spec("grpc_max_threads", 0, "Max grpc server threads to handle grpc messages."),
        _spec("enable_model_warmup", True, "Replay warmup requests (not implemented here).", False),
        _spec("num_request_iterations_for_warmup", 0, "Warmup iterations.", False),
        _spec("version", False, "Display version"),
        _spec("monitoring_config_file", "", "MonitoringConfig file.", False),
        _spec("remove_unused_fields_from_bundle_metagraph", True, "Memory saving (no-op here).", False),
        _spec("prefer_tflite_model", False, "Prefer model.tflite.", False),
        _spec("num_tflite_pools", 0, "TFLite pools.", False),
        _spec("num_tflite_interpreters_per_pool", 1, "TFLite interpreters.", False),
        _spec("enable_signature_method_name_check", False, "Enable method_name check for SignatureDef. "
              "Disable this if serving native TF2 regression/classification models."),
        _spec("xla_cpu_compilation_enabled", False, "XLA:CPU JIT.", False),
        _spec("xla_gpu_compilation_enabled", False, "XLA:GPU JIT.", False),
        _spec("enable_profiler", False, "Profiler service.", False),
        _spec("thread_pool_factory_config_file", "", "ThreadPoolConfig file.", False),
        _spec("mixed_precision", "", "mixed_precision mode.", False),
        _spec("skip_initialize_tpu", False, "Skip TPU init.", False),
        _spec("enable_grpc_healthcheck_service", False, "Standard gRPC health service.", False),
        _spec("enable_serialization_as_tensor_content", False,
              "Enable serialization of predict response as tensor content."),
        _spec("listen_host", "0.0.0.0", "EXTENSION of the TF Serving-compatible server: address both "
              "the gRPC and the REST server bind to (TF Serving always binds all interfaces)."),
    ]


@dataclasses.dataclass
class ParsedFlags:
    values: dict[str, FlagValue]
    unknown: list[str]
    ok: bool
    help_requested: bool

    def get_int(self, name: str) -> int:
        value = self.values[name]
        assert isinstance(value, int) and not isinstance(value, bool)
        return value

    def get_bool(self, name: str) -> bool:
        value = self.values[name]
        assert isinstance(value, bool)
        return value

    def get_str(self, name: str) -> str:
        value = self.values[name]
        assert isinstance(value, str)
        return value


_INT_RE = re.compile(r"^[+-]?\d+$")
ErrorSink = Callable[[str], None]


def _parse_value(spec: FlagSpec, rest: str, log_error: ErrorSink) -> tuple[bool, FlagValue | None]:
    """``rest`` is what follows ``--name``; returns (matched, value or None when unreadable)."""
    if isinstance(spec.default, bool):
        if rest == "":
            return True, True
        if rest in ("=true", "=1"):
            return True, True
        if rest in ("=false", "=0"):
            return True, False
        if not rest.startswith("="):
            return False, None
        log_error(T("Couldn't interpret value <value> for flag <flag>.", value=rest, flag=spec.name))
        return True, None
    if not rest.startswith("="):
        return False, None
    text = rest[1:]
    if isinstance(spec.default, int):
        if _INT_RE.match(text) and -(2**31) <= int(text) < 2**31:
            return True, int(text)
        log_error(T("Couldn't interpret value <value> for flag <flag>.", value=text, flag=spec.name))
        return True, None
    return True, text


def parse_flags(argv: list[str], specs: list[FlagSpec], log_error: ErrorSink) -> ParsedFlags:
    """Parse ``argv`` (without the program name) like ``tensorflow::Flags::Parse``."""
    values: dict[str, FlagValue] = {spec.name: spec.default for spec in specs}
    unknown: list[str] = []
    ok = True
    for index, arg in enumerate(argv):
        if arg == "--":
            unknown.extend(argv[index:])
            break
        matched = False
        for spec in specs:
            prefix = "--" + spec.name
            if not arg.startswith(prefix):
                continue
            found, value = _parse_value(spec, arg[len(prefix):], log_error)
            if not found:
                continue
            matched = True
            if value is None:
                ok = False
            else:
                values[spec.name] = value
            break
        if not matched:
            unknown.append(arg)
    help_requested = bool(unknown) and unknown[0] == "--help"
    return ParsedFlags(values=values, unknown=unknown, ok=ok and not help_requested,
                       help_requested=help_requested)


def usage_text(program: str, specs: list[FlagSpec]) -> str:
    """The usage text in the layout of ``tensorflow::Flags::Usage``."""
    lines = [T("usage: <program>", program=program), T("Flags:")]
    for spec in specs:
        if isinstance(spec.default, bool):
            shown = T("--<name>=<value>", name=spec.name, value="true" if spec.default else "false")
        elif isinstance(spec.default, int):
            shown = T("--<name>=<value>", name=spec.name, value=spec.default)
        else:
            shown = T('--<name>="<value>"', name=spec.name, value=spec.default)
        lines.append(T("\t<flag>\t<type>\t<help>", flag=shown.ljust(33), type=spec.type_name, help=spec.help))
    return "\n".join(lines) + "\n"
