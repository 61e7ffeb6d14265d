"""TF Serving deployment bundles: a project directory's server configuration, checked statically and on the server.

The pieces are found by their content, never by their names: a ``ModelServerConfig`` text proto
(``model_config_list``), a batching parameters file (``max_batch_size`` ...), a monitoring config
(``prometheus_config``), start scripts holding a ``docker run`` or ``tensorflow_model_server`` line,
client scripts holding ``curl`` requests to ``/v1/models/...``, and the model base directories those
point at (through the run line's ``-v``/``--mount`` bindings).  Text protos are parsed with TF
Serving's own protobufs (``tensorflow-serving-api``; the batching and monitoring messages, which
that package does not ship, are described here with the same field names and numbers, as the
serving container's server does).  Scripts are parsed (``shlex``), never run.

Verified: :func:`verify` starts the serving container with exactly this configuration (the bundle's
files copied into the run's work directory and mounted read-only at the container paths the run
line names, its flags and ``MODEL_*`` variables), reports every load error in the server's own
words, then sends one request per served signature built from the served metadata.  The server is
the TF Serving-compatible stand-in (``containers/tfserving-compat``), or the real
``tensorflow/serving`` image when one is loaded locally (``PITFALLS_SERVING_IMPLEMENTATION``).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.configcheck.files import EscapingPath, ProjectFiles, line_of
from harness.configcheck.rules import ConfigRule
from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.check.report import Finding

KIND = "tfserving"
REST_PORT, GRPC_PORT = 8501, 8500
SAVED_MODEL_PB_BYTES = 256 << 20
#: how long the verification waits for every configured model to load or fail
VERIFY_TIMEOUT_S = 240.0
#: after a load failed, how long the other models may still take to answer (the server keeps retrying the
#: failed load, by default 5 times a minute apart, and opens its REST port only after the initial loads)
RETRY_GRACE_S = 20.0

S_PROCEDURE = "server/serving/procedure"
S_MULTI = "server/serving/serving-multiple-models-simultaneously"
S_BATCHING = "server/serving/configuration-of-batching"
S_LOADING = "server/serving/model-loading"
S_ENV = "server/environment/configuration-of-environment-variables"
S_SAVED_MODEL = "server/general-questions/limitations-of-platforms-frameworks"
S_NUMBERED = "server/general-questions/entire-procedure-of-deployment"
S_REQUEST = "server/request/procedure"
S_BODY = "server/request/setting-request-parameters-body"
S_NAMES = "server/request/getting-information-of-exposed-model"
S_DEFAULT_SIG = "server/model-export/specification-of-model-information"

RULES: dict[str, ConfigRule] = {r.id: r for r in (
    ConfigRule("tfserving/relative-base-path", S_PROCEDURE, "blocker",
               "Give base_path as an absolute path inside the container (e.g. /models/<name>).",
               "server_core.cc ValidateModelConfigList: \"Expected model <name> to have an absolute path or URI; "
               "got base_path()=<path>\""),
    ConfigRule("tfserving/duplicate-model-name", S_MULTI, "blocker",
               "Give every config entry its own name.",
               "server_core.cc: \"Illegal to list model <name> multiple times in config list\""),
    ConfigRule("tfserving/base-path-not-in-bundle", S_ENV, "blocker",
               "Mount the directory holding the numbered versions at the base path (-v $(pwd)/models/<name>:/models/<name>), "
               "or correct MODEL_NAME / base_path.",
               "file_system_storage_path_source.cc: \"Could not find base path <path> for servable <name>\""),
    ConfigRule("tfserving/base-path-is-version-dir", S_LOADING, "blocker",
               "Point the base path at the directory that holds the numbered version directories, not at one of them.",
               "file_system_storage_path_source.cc: \"No versions of servable <name> found under base path <path>\""),
    ConfigRule("tfserving/no-numbered-version", S_NUMBERED, "blocker",
               "Put the SavedModel in a numbered subdirectory of the base path (<base>/1/saved_model.pb).",
               "file_system_storage_path_source.cc: \"No versions of servable <name> found under base path <path>. "
               "Did you forget to name your leaf directory as a number (eg. '/1/')?\""),
    ConfigRule("tfserving/non-numeric-version-dir", S_NUMBERED, "warning",
               "Rename it to a number, or move it out of the base path: the server ignores it.",
               "file_system_storage_path_source.cc: only children whose names parse as int64 are versions"),
    ConfigRule("tfserving/version-without-saved-model", S_SAVED_MODEL, "blocker",
               "Export a SavedModel (saved_model.pb + variables/) into the version directory.",
               "loader: \"Specified file path does not appear to contain a SavedModel bundle (should have a file "
               "called `saved_model.pb`)\""),
    ConfigRule("tfserving/specific-version-missing", S_MULTI, "blocker",
               "List only versions that exist under the base path in model_version_policy.specific.",
               "aspired_versions_manager: a specific version that is not on disk is never loaded; the model never "
               "becomes AVAILABLE"),
    ConfigRule("tfserving/label-not-served", S_MULTI, "blocker",
               "Point each version label at a version the model_version_policy serves.",
               "server_core.cc: \"Request to assign label to version <v> of model <name>, which is not currently "
               "available for inference\""),
    ConfigRule("tfserving/labels-at-startup", S_MULTI, "blocker",
               "Start the server with --allow_version_labels_for_unavailable_models=true, or add the labels "
               "after the versions are loaded (config reload).",
               "server_core.cc: \"Request to assign label to version <v> of model <name>, which is not currently "
               "available for inference\" at start-up"),
    ConfigRule("tfserving/batch-sizes-not-increasing", S_BATCHING, "blocker",
               "List allowed_batch_sizes in strictly increasing order.",
               "batching_session.cc: \"allowed_batch_sizes entries must be monotonically increasing\""),
    ConfigRule("tfserving/batch-sizes-last-not-max", S_BATCHING, "blocker",
               "Make the last allowed_batch_sizes entry equal max_batch_size.",
               "batching_session.cc: \"Last entry in allowed_batch_sizes must match max_batch_size; last entry was "
               "<a>; expected <b>\""),
    ConfigRule("tfserving/fixed-batch-dimension", S_BATCHING, "blocker",
               "Export the signature with a variable batch dimension (None), or keep max_batch_size at the fixed size.",
               "batching merges requests along dimension 0: a signature with a fixed first dimension takes no other "
               "batch size (TensorFlow's shape check rejects the merged batch)"),
    ConfigRule("tfserving/batching-file-unused", S_BATCHING, "warning",
               "Pass --enable_batching=true with --batching_parameters_file=<path>, or drop the file.",
               "main.cc: --batching_parameters_file is read only when --enable_batching is set"),
    ConfigRule("tfserving/config-file-unused", S_MULTI, "warning",
               "Pass --model_config_file=<container path> (mounted into the container) in the run line.",
               "main.cc: without --model_config_file the server serves --model_name/--model_base_path only"),
    ConfigRule("tfserving/config-file-not-mounted", S_MULTI, "blocker",
               "Mount the config file into the container at the path --model_config_file names.",
               "proto_util.h ParseProtoTextFile: NOT_FOUND for a config path that does not exist"),
    ConfigRule("tfserving/monitoring-file-unused", None, "warning",
               "Pass --monitoring_config_file=<path> (and a --rest_api_port: metrics are served over REST).",
               "main.cc: --monitoring_config_file; no catalog lesson reproduces it yet"),
    ConfigRule("tfserving/flag-without-equals", None, "blocker",
               "Write server flags as --name=value: TensorFlow's flag parser takes no --name value.",
               "tensorflow/core/util/command_line_flags.cc: only --name=value; the rest is \"unknown argument\""),
    ConfigRule("tfserving/model-env-ignored", S_ENV, "info",
               "Drop MODEL_NAME/MODEL_BASE_PATH: with --model_config_file the config names the models.",
               "main.cc: --model_name/--model_base_path are ignored when --model_config_file is set"),
    ConfigRule("tfserving/rest-port-not-published", S_REQUEST, "blocker",
               "Publish the REST port: -p 8501:8501 (the client's port on the left).",
               "docker run -p: only published container ports are reachable from the host"),
    ConfigRule("tfserving/request-to-grpc-port", S_REQUEST, "blocker",
               "Send REST requests to the port published for 8501; 8500 speaks gRPC.",
               "TF Serving serves gRPC on --port (8500) and REST on --rest_api_port (8501)"),
    ConfigRule("tfserving/request-without-verb", S_REQUEST, "blocker",
               "POST to /v1/models/<name>:predict (the verb after a colon).",
               "http_rest_api_handler.cc: \"Malformed request: POST /v1/models/<name>/predict\""),
    ConfigRule("tfserving/request-unknown-model", S_ENV, "blocker",
               "Ask for a model name the server serves (MODEL_NAME or a config entry's name).",
               "server_core.cc: \"Servable not found for request: Latest(<name>)\""),
    ConfigRule("tfserving/request-unknown-version", S_MULTI, "blocker",
               "Ask for a version or label the model serves.",
               "server_core.cc: \"Servable not found for request: Specific(<name>, <v>)\" / unknown label"),
    ConfigRule("tfserving/request-unknown-signature", S_BODY, "blocker",
               "Set signature_name to one of the model's signatures (GET /v1/models/<name>/metadata lists them).",
               "predict_util.cc: \"Serving signature name: \\\"<name>\\\" not found in signature def\""),
    ConfigRule("tfserving/no-serving-default", S_DEFAULT_SIG, "blocker",
               "Export a serving_default signature, or name a signature in every request.",
               "predict_util.cc: \"Serving signature name: \\\"serving_default\\\" not found in signature def\""),
    ConfigRule("tfserving/request-unknown-input", S_NAMES, "blocker",
               "Name the inputs as the signature does (GET /v1/models/<name>/metadata).",
               "json_tensor.cc: \"Missing named input: <name> in 'inputs' object.\""),
    ConfigRule("tfserving/load-error", S_LOADING, "blocker",
               "Read the server's text: the model version did not load.",
               "the server's log: \"Loading servable: {name: <n> version: <v>} failed: <code>: <message>\""),
    ConfigRule("tfserving/start-error", S_PROCEDURE, "blocker",
               "Read the server's text: the server refused the configuration and exited.",
               "main.cc: \"Failed to start server. Error: <status>\""),
    ConfigRule("tfserving/request-error", S_BODY, "blocker",
               "Read the server's text: a request built from the served metadata failed.",
               "the server's JSON error body"),
)}

#: the server's own texts -> the lesson that teaches them (verified findings)
RUNTIME_LESSONS: tuple[tuple[str, str], ...] = (
    (r"to have an absolute path or URI", S_PROCEDURE),
    (r"Request to assign label to version", S_MULTI),
    (r"Illegal to list model .* multiple times", S_MULTI),
    (r"No versions of servable .* found under base path .*Did you forget", S_NUMBERED),
    (r"No versions of servable .* found under base path", S_LOADING),
    (r"Could not find base path", S_ENV),
    (r"does not appear to contain a SavedModel bundle|Could not find SavedModel \.pb", S_SAVED_MODEL),
    (r"allowed_batch_sizes|larger than maximum input batch size", S_BATCHING),
    (r"Serving signature name: \"serving_default\" not found", S_DEFAULT_SIG),
    (r"Serving signature name: .* not found in signature def", S_BODY),
    (r"Missing named input", S_NAMES),
    (r"Op type not registered", "server/environment/avoiding-version-incompatibility"),
)


def lesson_of_text(text: str) -> str | None:
    for pattern, scenario in RUNTIME_LESSONS:
        if re.search(pattern, text, flags=re.DOTALL):
            return scenario
    return None


# the pieces -------------------------------------------------------------------------------------
@dataclass
class RunLine:
    """A ``docker run ... IMAGE [flags]`` or ``tensorflow_model_server [flags]`` line of a script."""

    file: str
    line: int
    program: str  # "docker run", "docker compose" (a Compose service) or "tensorflow_model_server"
    image: str = ""
    env: dict[str, str] = field(default_factory=dict)
    mounts: list[tuple[str, str]] = field(default_factory=list)  # (host path as written, container path)
    ports: list[tuple[int | None, int]] = field(default_factory=list)  # (host port, container port)
    flags: dict[str, str] = field(default_factory=dict)  # --name=value; a bare --name is "true"
    spaced_flags: list[str] = field(default_factory=list)  # --name value: TF's parser does not take them
    written: list[str] = field(default_factory=list)  # the server's arguments as written (what verify passes)


@dataclass
class ClientRequest:
    """A ``curl`` request to ``/v1/models/...`` in a client script."""

    file: str
    line: int
    url: str
    port: int | None
    model: str
    version: str | None
    label: str | None
    verb: str | None  # predict / classify / regress / None (no ":verb")
    method: str
    body: dict[str, Any] | None


@dataclass
class ServedModel:
    name: str
    base_path: str  # in the container
    file: str  # where it is declared (config file or run line)
    line: int | None
    policy: str = "latest"  # latest / all / specific
    latest_versions: int = 1
    specific: list[int] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    host_dir: str | None = None  # bundle-relative directory the base path maps to


@dataclass
class ServingBundle:
    """The TF Serving pieces of one project directory."""

    files: ProjectFiles
    configs: list[tuple[str, Any]] = field(default_factory=list)  # (file, ModelServerConfig)
    batching: list[tuple[str, Any]] = field(default_factory=list)  # (file, BatchingParameters)
    monitoring: list[tuple[str, Any]] = field(default_factory=list)  # (file, MonitoringConfig)
    run_lines: list[RunLine] = field(default_factory=list)
    requests: list[ClientRequest] = field(default_factory=list)
    models: list[ServedModel] = field(default_factory=list)
    kind: str = KIND

    @property
    def pieces(self) -> dict[str, list[str]]:
        return {"model server config": [f for f, _ in self.configs],
                "batching parameters": [f for f, _ in self.batching],
                "monitoring config": [f for f, _ in self.monitoring],
                "run lines": [f"{r.file}:{r.line}" for r in self.run_lines],
                "client requests": [f"{r.file}:{r.line}" for r in self.requests],
                "model base directories": sorted({m.host_dir for m in self.models if m.host_dir})}

    @property
    def run_line(self) -> RunLine | None:
        return self.run_lines[0] if self.run_lines else None

    def static_findings(self) -> list[Finding]:
        return static_findings(self)

    def verify(self, progress: Any = None) -> list[Finding]:
        return verify(self, progress)


# protobufs --------------------------------------------------------------------------------------
def _extra_messages() -> tuple[type, type]:
    """``BatchingParameters`` (session_bundle_config.proto) and ``MonitoringConfig``
    (monitoring_config.proto): messages ``tensorflow-serving-api`` does not ship, described with
    TF Serving's field names, numbers and wrapper types so the same text files parse."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    proto = descriptor_pb2.FileDescriptorProto(name="pitfalls/serving_extra.proto", package="tensorflow.serving",
                                               syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    F = descriptor_pb2.FieldDescriptorProto
    batching = proto.message_type.add(name="BatchingParameters")
    for name, number, wrapper in (("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                                  ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
                                  ("thread_pool_name", 5, "StringValue"),
                                  ("enable_large_batch_splitting", 8, "BoolValue"),
                                  ("max_execution_batch_size", 9, "Int64Value")):
        batching.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                           type_name=".google.protobuf." + wrapper)
    batching.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    batching.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    prometheus.field.add(name="path", number=2, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig")
    pool.Add(proto)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig")))


def _parse_text_proto(text: str, message: Any, file: str, what: str) -> Any:
    from google.protobuf import text_format

    try:
        text_format.Parse(text, message)
    except text_format.ParseError as exc:
        raise UsageError(f"{file} looks like a {what} but does not parse as one ({exc}); fix the text proto") from None
    return message


# discovery --------------------------------------------------------------------------------------
SCRIPT_SUFFIXES = ("", ".sh", ".bash", ".zsh", ".txt", ".env", ".mk", ".cmd", ".ps1", ".yml", ".yaml")
CONFIG_SUFFIXES = ("", ".config", ".conf", ".cfg", ".pbtxt", ".txt", ".textproto", ".prototxt")
DOCKER_VALUE_OPTIONS = frozenset({"-p", "--publish", "-v", "--volume", "-e", "--env", "--name", "--mount", "-w",
                                  "--workdir", "--network", "--net", "-u", "--user", "--entrypoint", "--cpus",
                                  "-m", "--memory", "--gpus", "--runtime", "--env-file", "-l", "--label",
                                  "--restart", "--platform", "--hostname", "-h", "--shm-size", "--ulimit",
                                  "--memory-swap", "--pids-limit", "--cap-add", "--cap-drop", "--security-opt"})
#: run lines that start the server in a container (mounts and published ports apply)
CONTAINER_PROGRAMS = ("docker run", "docker compose")
PWD_FORMS = ("$(pwd)", "${PWD}", "$PWD", "`pwd`")
MODEL_URL = re.compile(r"(?P<scheme>https?)://(?P<host>[^/:\s'\"]+)(?::(?P<port>\d+))?"
                       r"/v1/models/(?P<rest>[^\s'\"?]*)")


def _suffix(name: str) -> str:
    return posixpath.splitext(posixpath.basename(name))[1].lower()


def find_bundle(files: ProjectFiles) -> ServingBundle | None:
    """The TF Serving pieces of ``files`` (None when there are none)."""
    from tensorflow_serving.config import model_server_config_pb2

    batching_class, monitoring_class = _extra_messages()
    bundle = ServingBundle(files)
    for name in files.files:
        suffix = _suffix(name)
        if suffix not in CONFIG_SUFFIXES and suffix not in SCRIPT_SUFFIXES and posixpath.basename(name) not in (
                "Dockerfile", "Makefile"):
            continue
        text = files.read_text(name)
        if text is None:
            continue
        if suffix in CONFIG_SUFFIXES and re.search(r"^\s*(model_config_list|custom_model_config)\s*[:{]", text, re.M):
            bundle.configs.append((name, _parse_text_proto(text, model_server_config_pb2.ModelServerConfig(), name,
                                                           "ModelServerConfig text proto (model_config_list)")))
            continue
        if suffix in CONFIG_SUFFIXES and re.search(r"^\s*prometheus_config\s*[:{]", text, re.M):
            bundle.monitoring.append((name, _parse_text_proto(text, monitoring_class(), name, "MonitoringConfig")))
            continue
        if suffix in CONFIG_SUFFIXES and re.search(
                r"^\s*(max_batch_size|batch_timeout_micros|allowed_batch_sizes|num_batch_threads)\s*[:{]", text, re.M):
            bundle.batching.append((name, _parse_text_proto(text, batching_class(), name, "BatchingParameters")))
            continue
        if suffix in (".yml", ".yaml") and re.search(r"^services\s*:", text, re.M):
            bundle.run_lines += _compose_run_lines(name, text)
            continue
        if suffix in SCRIPT_SUFFIXES or posixpath.basename(name) in ("Dockerfile", "Makefile"):
            bundle.run_lines += _run_lines(name, text)
            bundle.requests += _client_requests(name, text)
    if not (bundle.configs or bundle.run_lines or bundle.batching):
        return None
    bundle.models = _served_models(bundle)
    return bundle


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with backslash continuations joined, each with its first line number."""
    out: list[tuple[int, str]] = []
    buffer, start = "", 1
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.rstrip().endswith("\\"):
            buffer += raw.rstrip()[:-1] + " "
            continue
        out.append((start, buffer + raw))
        buffer = ""
    if buffer:
        out.append((start, buffer))
    return out


def _split(command: str) -> list[str]:
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote: split on white space
        return command.split()


def _run_lines(file: str, text: str) -> list[RunLine]:
    found: list[RunLine] = []
    for number, line in _logical_lines(text):
        tokens = _split(line)
        for i, token in enumerate(tokens):
            if token == "docker" and tokens[i + 1:i + 2] == ["run"]:
                run = _docker_run(file, number, tokens[i + 2:])
                if run is not None:
                    found.append(run)
                break
            if posixpath.basename(token) == "tensorflow_model_server":
                run = RunLine(file, number, "tensorflow_model_server")
                _server_flags(run, tokens[i + 1:])
                found.append(run)
                break
    return found


def _docker_run(file: str, number: int, tokens: list[str]) -> RunLine | None:
    run = RunLine(file, number, "docker run")
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("-"):
            run.image = token
            break
        name, has_value, value = token.partition("=")
        if not has_value and name in DOCKER_VALUE_OPTIONS and i + 1 < len(tokens):
            value, i = tokens[i + 1], i + 1
        if name in ("-e", "--env") and value:
            key, _, env_value = value.partition("=")
            run.env[key] = env_value
        elif name in ("-v", "--volume") and value:
            parts = value.split(":")
            if len(parts) >= 2:
                run.mounts.append((parts[0], parts[1]))
        elif name == "--mount" and value:
            options = dict(part.partition("=")[::2] for part in value.split(","))
            source = options.get("source") or options.get("src")
            target = options.get("target") or options.get("destination") or options.get("dst")
            if source and target:
                run.mounts.append((source, target))
        elif name in ("-p", "--publish") and value:
            run.ports.append(_port_binding(value))
        i += 1
    _server_flags(run, tokens[i + 1:])
    serves = ("serving" in run.image or "model_server" in run.image or "MODEL_NAME" in run.env
              or any(flag.startswith(("model_", "rest_api_")) for flag in [*run.flags, *run.spaced_flags]))
    return run if serves else None  # another container of the script (a database, a proxy ...)


def _compose_run_lines(file: str, text: str) -> list[RunLine]:
    """The serving services of a Compose file, each read as the ``docker run`` line it stands for: image,
    ``environment``, ``volumes`` (host paths relative to the file's directory), ``ports`` and ``command``
    (the server's flags).  Parsed with ``yaml.safe_load`` (no tags, nothing run)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{file} looks like a Compose file but is not YAML ({' '.join(str(exc).split())}); "
                         "fix its syntax (docker compose config shows where)") from None
    services = data.get("services") if isinstance(data, dict) else None
    found: list[RunLine] = []
    base = posixpath.dirname(file)
    for name, service in (services or {}).items() if isinstance(services, dict) else ():
        if not isinstance(service, dict):
            continue
        at = re.search(rf"^[ \t]+['\"]?{re.escape(str(name))}['\"]?[ \t]*:", text, re.M)
        run = RunLine(file, line_of(text, at.start()) if at else 1, "docker compose",
                      image=str(service.get("image") or ""))
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(str(e).partition("=")[::2] for e in environment)
        run.env = {str(k): "" if v is None else str(v) for k, v in environment.items()} \
            if isinstance(environment, dict) else {}
        for volume in service.get("volumes") or []:
            if isinstance(volume, dict) and volume.get("source") and volume.get("target"):
                host, target = str(volume["source"]), str(volume["target"])
            elif isinstance(volume, str) and ":" in volume:
                host, target = volume.split(":")[0], volume.split(":")[1]
            else:
                continue
            relative_host = not host.startswith(("/", "~", "$"))
            run.mounts.append((posixpath.join(base, host) if relative_host and base else host, target))
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                published, target_port = str(port.get("published")), str(port.get("target"))
                run.ports.append((int(published) if published.isdigit() else None,
                                  int(target_port) if target_port.isdigit() else -1))
            else:
                run.ports.append(_port_binding(str(port)))
        command = service.get("command") or []
        _server_flags(run, _split(command) if isinstance(command, str) else [str(c) for c in command])
        serves = ("serving" in run.image or "model_server" in run.image or "MODEL_NAME" in run.env
                  or any(flag.startswith(("model_", "rest_api_")) for flag in [*run.flags, *run.spaced_flags]))
        if serves:
            found.append(run)
    return found


def _port_binding(value: str) -> tuple[int | None, int]:
    parts = value.split("/")[0].split(":")
    container = int(parts[-1]) if parts[-1].isdigit() else -1
    host = int(parts[-2]) if len(parts) >= 2 and parts[-2].isdigit() else None
    return host, container


def _server_flags(run: RunLine, tokens: list[str]) -> None:
    run.written = list(tokens)
    for i, token in enumerate(tokens):
        if not token.startswith("--"):
            continue
        name, has_value, value = token[2:].partition("=")
        if has_value:
            run.flags[name] = value
        elif len(name.split()) > 1:  # one argument "--name value" (a Compose list item): no "=" either
            run.spaced_flags.append(name.split()[0])
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("-") and name not in ("enable_batching",):
            run.spaced_flags.append(name)
        else:
            run.flags[name] = "true"


def _client_requests(file: str, text: str) -> list[ClientRequest]:
    found: list[ClientRequest] = []
    for number, line in _logical_lines(text):
        tokens = _split(line)
        if "curl" not in [posixpath.basename(t) for t in tokens]:
            continue
        url_match = next((m for m in (MODEL_URL.search(t) for t in tokens) if m), None)
        if url_match is None:
            continue
        body: dict[str, Any] | None = None
        method = "GET"
        for i, token in enumerate(tokens):
            if token in ("-d", "--data", "--data-raw", "--data-binary") and i + 1 < len(tokens):
                method = "POST"
                try:
                    parsed = json.loads(tokens[i + 1])
                    body = parsed if isinstance(parsed, dict) else None
                except ValueError:
                    body = None
            elif token in ("-X", "--request") and i + 1 < len(tokens):
                method = tokens[i + 1].upper()
        rest = url_match["rest"]
        path, _, verb = rest.partition(":")
        parts = path.split("/")
        version = parts[2] if len(parts) >= 3 and parts[1] == "versions" else None
        label = parts[2] if len(parts) >= 3 and parts[1] == "labels" else None
        if not verb and len(parts) >= 2 and parts[-1] in ("predict", "classify", "regress"):
            verb = None  # "/predict": the verb without its colon
        found.append(ClientRequest(file, number, url_match.group(0), int(url_match["port"]) if url_match["port"]
                                   else None, parts[0], version, label, verb or None, method, body))
    return found


def _served_models(bundle: ServingBundle) -> list[ServedModel]:
    models: list[ServedModel] = []
    run = bundle.run_line
    if bundle.configs:
        file, config = bundle.configs[0]
        text = bundle.files.read_text(file) or ""
        for entry in config.model_config_list.config:
            match = re.search(r"name\s*:\s*[\"']" + re.escape(entry.name) + r"[\"']", text)
            model = ServedModel(entry.name, entry.base_path, file, line_of(text, match.start()) if match else None)
            policy = entry.model_version_policy.WhichOneof("policy_choice")
            if policy == "all":
                model.policy = "all"
            elif policy == "specific":
                model.policy, model.specific = "specific", list(entry.model_version_policy.specific.versions)
            elif policy == "latest" and entry.model_version_policy.latest.num_versions:
                model.latest_versions = entry.model_version_policy.latest.num_versions
            model.labels = dict(entry.version_labels)
            models.append(model)
    elif run is not None:
        if run.program in CONTAINER_PROGRAMS:
            name = run.env.get("MODEL_NAME", "model")
            base = run.env.get("MODEL_BASE_PATH", "/models").rstrip("/") + "/" + name
        else:
            name = run.flags.get("model_name", "default")
            base = run.flags.get("model_base_path", "")
        models.append(ServedModel(name, base, run.file, run.line))
    for model in models:
        model.host_dir = _host_dir(bundle, model.base_path)
    return models


def _bundle_relative(files: ProjectFiles, host: str) -> str | None:
    """A mount's host path as a bundle-relative path (``$(pwd)/models`` -> ``models``), or None when it
    names a place outside the bundle (an absolute host path)."""
    for form in PWD_FORMS:
        if host.startswith(form):
            host = host[len(form):].lstrip("/") or "."
            break
    else:
        if host.startswith("/") or host.startswith("~") or "$" in host:
            return None
    relative = posixpath.normpath(host)
    files.inside(relative)  # EscapingPath when it leads out
    return relative


def container_to_bundle(bundle: ServingBundle, container_path: str) -> str | None:
    """The bundle-relative path a container path is mounted from (longest mount first)."""
    run = bundle.run_line
    if run is not None and run.mounts:
        for host, target in sorted(run.mounts, key=lambda m: -len(m[1])):
            target = target.rstrip("/") or "/"
            if container_path == target or container_path.startswith(target + "/"):
                relative = _bundle_relative(bundle.files, host)
                if relative is None:
                    return None
                rest = container_path[len(target):].lstrip("/")
                return posixpath.normpath(posixpath.join(relative, rest)) if rest else relative
        return None
    return None


def _host_dir(bundle: ServingBundle, base_path: str) -> str | None:
    if not base_path.startswith("/"):
        relative = posixpath.normpath(base_path)
        try:
            return relative if bundle.files.inside(relative).is_dir() else None
        except EscapingPath:
            return None
    mapped = container_to_bundle(bundle, base_path)
    if mapped is not None or (bundle.run_line is not None and bundle.run_line.mounts):
        try:
            return mapped if mapped is not None and bundle.files.inside(mapped).is_dir() else None
        except EscapingPath:
            return None
    # no run line with mounts: the directory of the bundle whose path ends like the base path
    parts = [p for p in base_path.split("/") if p]
    for keep in range(len(parts), 0, -1):
        tail = "/".join(parts[-keep:])
        candidates = sorted({posixpath.dirname(posixpath.dirname(f)) for f in bundle.files.files
                             if (posixpath.dirname(posixpath.dirname(f)) + "/").endswith("/" + tail + "/")
                             or posixpath.dirname(posixpath.dirname(f)) == tail})
        if candidates:
            return candidates[0]
    return None


# static rules -----------------------------------------------------------------------------------
def _versions_on_disk(bundle: ServingBundle, host_dir: str) -> tuple[list[int], list[str]]:
    """Numbered version directories and the other children of a base directory."""
    root = bundle.files.inside(host_dir)
    numbered, other = [], []
    for child in sorted(root.iterdir()):
        if not child.is_dir():
            continue
        if re.fullmatch(r"\d+", child.name):
            numbered.append(int(child.name))
        else:
            other.append(child.name)
    return sorted(numbered), other


def served_versions(model: ServedModel, on_disk: list[int]) -> list[int]:
    if model.policy == "all":
        return on_disk
    if model.policy == "specific":
        return sorted(v for v in model.specific if v in on_disk)
    return on_disk[-model.latest_versions:] if on_disk else []


def _has_saved_model(bundle: ServingBundle, directory: str) -> bool:
    return any(bundle.files.exists(posixpath.join(directory, n)) for n in ("saved_model.pb", "saved_model.pbtxt"))


@dataclass(frozen=True)
class SignatureInfo:
    inputs: dict[str, tuple[str, tuple[int, ...] | None]]  # name -> (dtype, dims; -1 unknown)


def signatures_of(bundle: ServingBundle, version_dir: str) -> dict[str, SignatureInfo] | None:
    """The serving signatures of the SavedModel in ``version_dir`` (bundle-relative), read from
    ``saved_model.pb`` with TensorFlow's own protobuf, without loading the graph."""
    path = posixpath.join(version_dir, "saved_model.pb")
    size = bundle.files.size(path)
    if size is None or size > SAVED_MODEL_PB_BYTES:
        return None
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString(bundle.files.inside(path).read_bytes())
    except Exception:  # noqa: BLE001 - protobuf's DecodeError: the loader reports it when verified
        return None
    found: dict[str, SignatureInfo] = {}
    for meta in saved.meta_graphs:
        if "serve" not in meta.meta_info_def.tags:
            continue
        for name, signature in meta.signature_def.items():
            if name.startswith("__"):
                continue
            inputs = {}
            for key, tensor in signature.inputs.items():
                dims = None if tensor.tensor_shape.unknown_rank else tuple(d.size for d in tensor.tensor_shape.dim)
                inputs[key] = (types_pb2.DataType.Name(tensor.dtype), dims)
            found[name] = SignatureInfo(inputs)
    return found


def static_findings(bundle: ServingBundle) -> list[Finding]:
    found: list[Finding] = []
    r = RULES
    run = bundle.run_line
    names_seen: dict[str, ServedModel] = {}
    signatures: dict[str, dict[str, SignatureInfo]] = {}
    served: dict[str, list[int]] = {}
    for model in bundle.models:
        where: dict[str, Any] = {"file": model.file, "line": model.line}
        if model.name in names_seen:
            found.append(r["tfserving/duplicate-model-name"].finding(
                f"model {model.name!r} is listed more than once in model_config_list", **where))
        names_seen[model.name] = model
        if not model.base_path.startswith("/") and "://" not in model.base_path:
            found.append(r["tfserving/relative-base-path"].finding(
                f"model {model.name!r} has the relative base_path {model.base_path!r}", **where))
            continue
        if model.host_dir is None:
            found.append(r["tfserving/base-path-not-in-bundle"].finding(
                f"model {model.name!r}: its base path {model.base_path} maps to no directory of the bundle "
                f"(mounts: {', '.join(f'{h}:{t}' for h, t in run.mounts) if run and run.mounts else 'none'})",
                **where))
            continue
        numbered, other = _versions_on_disk(bundle, model.host_dir)
        if not numbered:
            if _has_saved_model(bundle, model.host_dir):
                found.append(r["tfserving/base-path-is-version-dir"].finding(
                    f"model {model.name!r}: base path {model.base_path} ({model.host_dir}) holds a SavedModel itself, "
                    "not numbered version directories", **where))
            else:
                found.append(r["tfserving/no-numbered-version"].finding(
                    f"model {model.name!r}: no numbered version directory under {model.host_dir}"
                    + (f" (found {', '.join(other)})" if other else ""), **where))
            continue
        for name in other:
            found.append(r["tfserving/non-numeric-version-dir"].finding(
                f"model {model.name!r}: {model.host_dir}/{name} is not a number, so it is not a version",
                file=posixpath.join(model.host_dir, name)))
        for version in numbered:
            directory = posixpath.join(model.host_dir, str(version))
            if not _has_saved_model(bundle, directory):
                present = sorted(p.name for p in bundle.files.inside(directory).iterdir())[:8]
                found.append(r["tfserving/version-without-saved-model"].finding(
                    f"model {model.name!r} version {version}: {directory} has no saved_model.pb "
                    f"(it holds {', '.join(present) or 'nothing'})", file=directory))
        for version in model.specific:
            if version not in numbered:
                found.append(r["tfserving/specific-version-missing"].finding(
                    f"model {model.name!r}: model_version_policy asks for version {version}, which is not under "
                    f"{model.host_dir} (versions: {numbered})", **where))
        served[model.name] = served_versions(model, numbered)
        for label, version in model.labels.items():
            if version not in served[model.name]:
                found.append(r["tfserving/label-not-served"].finding(
                    f"model {model.name!r}: label {label!r} points at version {version}, which is not served "
                    f"(policy {model.policy}, served versions {served[model.name]})", **where))
        if model.labels and run is not None and run.flags.get(
                "allow_version_labels_for_unavailable_models", "false").lower() not in ("true", "1"):
            found.append(r["tfserving/labels-at-startup"].finding(
                f"model {model.name!r} has version labels ({', '.join(model.labels)}) in the config read at start-up, "
                "and the run line does not set --allow_version_labels_for_unavailable_models=true", **where))
        loadable = [v for v in served[model.name] if _has_saved_model(bundle, posixpath.join(model.host_dir, str(v)))]
        if loadable:
            read = signatures_of(bundle, posixpath.join(model.host_dir, str(loadable[-1])))
            if read is not None:
                signatures[model.name] = read
    found += _batching_findings(bundle, signatures)
    found += _run_line_findings(bundle)
    found += _request_findings(bundle, signatures, served)
    return found


def _batching_findings(bundle: ServingBundle, signatures: dict[str, dict[str, SignatureInfo]]) -> list[Finding]:
    found: list[Finding] = []
    run = bundle.run_line
    for file, params in bundle.batching:
        text = bundle.files.read_text(file) or ""
        match = re.search(r"allowed_batch_sizes", text)
        line = line_of(text, match.start()) if match else None
        sizes = list(params.allowed_batch_sizes)
        maximum = params.max_batch_size.value if params.HasField("max_batch_size") else 1000
        if any(b <= a for a, b in zip(sizes, sizes[1:])):
            found.append(RULES["tfserving/batch-sizes-not-increasing"].finding(
                f"allowed_batch_sizes {sizes} are not strictly increasing", file=file, line=line))
        if sizes and sizes[-1] != maximum:
            found.append(RULES["tfserving/batch-sizes-last-not-max"].finding(
                f"the last allowed_batch_sizes entry is {sizes[-1]}; max_batch_size is {maximum}", file=file, line=line))
        enabled = run is not None and run.flags.get("enable_batching", "false").lower() in ("true", "1")
        if run is not None and not enabled:
            found.append(RULES["tfserving/batching-file-unused"].finding(
                f"{file} holds batching parameters, but the run line ({run.file}:{run.line}) does not set "
                "--enable_batching", file=file))
        if run is None or enabled:
            max_match = re.search(r"max_batch_size", text)
            for model, sigs in signatures.items():
                for sig_name, sig in sigs.items():
                    for input_name, (_, dims) in sig.inputs.items():
                        if dims and dims[0] > 0 and maximum > dims[0]:
                            found.append(RULES["tfserving/fixed-batch-dimension"].finding(
                                f"model {model!r} signature {sig_name!r} input {input_name!r} has a fixed batch "
                                f"dimension {dims[0]} (shape {list(dims)}); batching merges up to max_batch_size "
                                f"{maximum} rows into one call", file=file,
                                line=line_of(text, max_match.start()) if max_match else None))
    return found


def _run_line_findings(bundle: ServingBundle) -> list[Finding]:
    found: list[Finding] = []
    run = bundle.run_line
    if run is None:
        return found
    where: dict[str, Any] = {"file": run.file, "line": run.line}
    for name in run.spaced_flags:
        found.append(RULES["tfserving/flag-without-equals"].finding(
            f"--{name} is followed by its value after a space: the server reads only --{name}=value "
            "and leaves the flag unset", **where))
    config_flag = run.flags.get("model_config_file")
    if bundle.configs and not config_flag:
        found.append(RULES["tfserving/config-file-unused"].finding(
            f"{bundle.configs[0][0]} is a model server config, but the run line has no --model_config_file", **where))
    if config_flag and run.program in CONTAINER_PROGRAMS:
        mapped = container_to_bundle(bundle, config_flag)
        if mapped is None or not bundle.files.exists(mapped):
            found.append(RULES["tfserving/config-file-not-mounted"].finding(
                f"--model_config_file={config_flag} is not mounted from a file of the bundle", **where))
    if config_flag and ({"MODEL_NAME", "MODEL_BASE_PATH"} & set(run.env)):
        found.append(RULES["tfserving/model-env-ignored"].finding(
            f"{', '.join(sorted({'MODEL_NAME', 'MODEL_BASE_PATH'} & set(run.env)))} set beside --model_config_file",
            **where))
    batching_flag = run.flags.get("batching_parameters_file")
    if batching_flag and run.program in CONTAINER_PROGRAMS:
        mapped = container_to_bundle(bundle, batching_flag)
        if mapped is None or not bundle.files.exists(mapped):
            found.append(RULES["tfserving/config-file-not-mounted"].finding(
                f"--batching_parameters_file={batching_flag} is not mounted from a file of the bundle", **where))
    for file, _ in bundle.monitoring:
        if not run.flags.get("monitoring_config_file"):
            found.append(RULES["tfserving/monitoring-file-unused"].finding(
                f"{file} is a monitoring config, but the run line has no --monitoring_config_file", file=file))
    if bundle.requests and run.program in CONTAINER_PROGRAMS and not any(c == REST_PORT for _, c in run.ports):
        found.append(RULES["tfserving/rest-port-not-published"].finding(
            f"the client scripts send REST requests, and the run line publishes no port for {REST_PORT} "
            f"(published: {', '.join(f'{h}:{c}' for h, c in run.ports) or 'none'})", **where))
    return found


def _request_findings(bundle: ServingBundle, signatures: dict[str, dict[str, SignatureInfo]],
                      served: dict[str, list[int]]) -> list[Finding]:
    found: list[Finding] = []
    run = bundle.run_line
    host_ports = {c: h for h, c in (run.ports if run else [])}
    names = {m.name: m for m in bundle.models}
    for request in bundle.requests:
        where: dict[str, Any] = {"file": request.file, "line": request.line}
        if request.port is not None and run is not None and run.program in CONTAINER_PROGRAMS:
            if host_ports.get(GRPC_PORT) == request.port and host_ports.get(REST_PORT) != request.port:
                found.append(RULES["tfserving/request-to-grpc-port"].finding(
                    f"{request.url}: port {request.port} is published for the gRPC port {GRPC_PORT}", **where))
        if request.method == "POST" and request.verb is None:
            found.append(RULES["tfserving/request-without-verb"].finding(
                f"POST {request.url}: no :predict/:classify/:regress verb after the model path", **where))
        if names and request.model not in names:
            found.append(RULES["tfserving/request-unknown-model"].finding(
                f"{request.url} asks for model {request.model!r}; the server serves {sorted(names)}", **where))
            continue
        model = names.get(request.model)
        if model is not None and request.version is not None and request.model in served and (
                not request.version.isdigit() or int(request.version) not in served[request.model]):
            found.append(RULES["tfserving/request-unknown-version"].finding(
                f"{request.url} asks for version {request.version}; served: {served[request.model]}", **where))
        if model is not None and request.label is not None and request.label not in model.labels:
            found.append(RULES["tfserving/request-unknown-version"].finding(
                f"{request.url} asks for label {request.label!r}; labels: {sorted(model.labels) or 'none'}", **where))
        sigs = signatures.get(request.model)
        if sigs is None or request.body is None or request.verb is None:
            continue
        wanted = str(request.body.get("signature_name") or "serving_default")
        if wanted not in sigs:
            rule = "tfserving/no-serving-default" if wanted == "serving_default" else "tfserving/request-unknown-signature"
            found.append(RULES[rule].finding(
                f"the request asks for signature {wanted!r}; the SavedModel has {sorted(sigs)}", **where))
            continue
        inputs = request.body.get("inputs")
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(sigs[wanted].inputs))
            if unknown:
                found.append(RULES["tfserving/request-unknown-input"].finding(
                    f"the request names input(s) {unknown}; signature {wanted!r} takes {sorted(sigs[wanted].inputs)}",
                    **where))
    return found


# verified ---------------------------------------------------------------------------------------
def _work_copy(bundle: ServingBundle, work: Path) -> dict[Path, str]:
    """The files the server needs, copied into ``work`` (in the run's work directory: the container
    mounts those copies read-only, never the user's directory), mapped to container paths."""
    import shutil

    mounts: dict[Path, str] = {}
    run = bundle.run_line
    copied = 0

    def copy(relative: str, container_path: str) -> None:
        nonlocal copied
        source = bundle.files.inside(relative)
        target = work / f"m{copied}"
        copied += 1
        if source.is_dir():
            shutil.copytree(source, target, symlinks=False)
        else:
            shutil.copyfile(source, target)
        mounts[target] = container_path

    if run is not None and run.program in CONTAINER_PROGRAMS and run.mounts:
        for host, container_path in run.mounts:
            relative = _bundle_relative(bundle.files, host)
            if relative is not None and bundle.files.inside(relative).exists():
                copy(relative, container_path)
    else:  # no mounts named: every model at its base path, the config files where the flags say
        for model in bundle.models:
            if model.host_dir is not None and model.base_path.startswith("/"):
                copy(model.host_dir, model.base_path)
        for flag, pieces in (("model_config_file", bundle.configs), ("batching_parameters_file", bundle.batching),
                             ("monitoring_config_file", bundle.monitoring)):
            if pieces:
                copy(pieces[0][0], (run.flags.get(flag) if run else None) or f"/config/{posixpath.basename(pieces[0][0])}")
    return mounts


def server_args(bundle: ServingBundle, mounts: dict[Path, str]) -> list[str]:
    """The flags the server gets: the run line's own, as written; with no run line, the pieces found."""
    run = bundle.run_line
    if run is not None:
        args = list(run.written)  # as written: a flag TF's parser does not take is the server's to refuse
        if run.program == "tensorflow_model_server":
            # the image's entrypoint adds --port/--rest_api_port/--model_name/--model_base_path; the run line's win
            return [a for a in args if not a.startswith(("--port=", "--rest_api_port="))]
        return args
    args = []
    if bundle.configs:
        args.append(f"--model_config_file={next(c for c in mounts.values() if c.startswith('/config/'))}")
    if bundle.batching:
        args += ["--enable_batching=true",
                 f"--batching_parameters_file=/config/{posixpath.basename(bundle.batching[0][0])}"]
    return args


def _predict_body(signature_name: str, signature: dict[str, Any]) -> dict[str, Any] | None:
    """A one-row request for a signature from its served metadata: zeros of each input's shape."""
    inputs: dict[str, Any] = {}
    for name, info in signature.get("inputs", {}).items():
        shape = info.get("tensor_shape", {})
        if shape.get("unknown_rank"):
            return None
        dims = [int(d["size"]) for d in shape.get("dim", [])]
        dims = [1 if (i == 0 and d < 0) else (d if d > 0 else 1) for i, d in enumerate(dims)]
        dtype = info.get("dtype", "DT_FLOAT")
        zero: Any = "" if dtype == "DT_STRING" else (False if dtype == "DT_BOOL" else 0)
        value: Any = zero
        for size in reversed(dims):
            value = [value] * size
        inputs[name] = value
    return {"signature_name": signature_name, "inputs": inputs}


def verify(bundle: ServingBundle, progress: Any = None) -> list[Finding]:
    """Start the serving container with this configuration; every load error in the server's words,
    then one request per served signature (:class:`~harness.errors.NotApplicable` without an engine)."""
    from harness.configcheck.files import copies_directory
    from harness.environments.engine import engine_unavailable_reason
    from harness.environments.ownership import open_in_work_dir
    from harness.environments.serving_image import COMPAT_IMPLEMENTATION, ensure_serving_image
    from harness.errors import NotApplicable
    from harness.targets.tfserving.client import http_request
    from harness.targets.tfserving.container import ServingContainer, load_failure_in_log

    reason = engine_unavailable_reason()
    if reason:
        raise NotApplicable(f"starting the serving container needs a Docker engine ({reason})")
    if not bundle.models:
        raise NotApplicable("no model is configured")
    run = bundle.run_line
    findings: list[Finding] = []
    # the image the tfserving target would use: the compatible server, or a real tensorflow/serving image
    image = ensure_serving_image(implementation=os.environ.get("PITFALLS_SERVING_IMPLEMENTATION")
                                 or COMPAT_IMPLEMENTATION)
    env = {k: v for k, v in (run.env if run else {}).items() if k in ("MODEL_NAME", "MODEL_BASE_PATH")}
    where: dict[str, Any] = {"file": run.file, "line": run.line} if run else {"file": bundle.models[0].file, "line": bundle.models[0].line}
    source = f"{image.implementation} ({image.tag}) started with the bundle's configuration"
    with copies_directory() as work:
        mounts = _work_copy(bundle, work)
        open_in_work_dir(work)
        container_files: dict[Path | str, str] = {path: target for path, target in mounts.items()}
        with ServingContainer(image, model_name=env.get("MODEL_NAME", "model"), files=container_files, env=env,
                              args=server_args(bundle, mounts), wait=False) as container:
            if progress:
                progress(f"tfserving: started {container.name} with {len(mounts)} mount(s)")
            states = _await_models(container, [m.name for m in bundle.models])
            log = container.logs()
            findings += _log_findings(log, bundle, source, where)
            for name, state in states.items():
                if state != "AVAILABLE":
                    continue
                meta = http_request("GET", container.model_url(name) + "/metadata", timeout=60)
                sigs = ((meta.body or {}).get("metadata", {}).get("signature_def", {}).get("signature_def", {})
                        if isinstance(meta.body, dict) else {})
                for sig_name, signature in sorted(sigs.items()):
                    if sig_name.startswith("__"):
                        continue
                    body = _predict_body(sig_name, signature)
                    if body is None:
                        continue
                    reply = http_request("POST", container.model_url(name) + ":predict", body, timeout=120)
                    if reply.status != 200 or reply.error:
                        text = reply.error or reply.text
                        findings.append(_runtime_finding(
                            RULES["tfserving/request-error"], f"model {name!r} signature {sig_name!r}: {text}",
                            f"{source}: HTTP {reply.status} of POST :predict built from GET /metadata", where))
                    elif progress:
                        progress(f"tfserving: {name} signature {sig_name} answered")
            exited = any(f.step == "tfserving/start-error" for f in findings)
            final_log = container.logs()
            retried = sorted(n for n in states if load_failure_in_log(final_log, n) is not None)
            for name, state in states.items():
                if exited or state == "AVAILABLE" or name in retried:
                    continue
                if retried:
                    findings.append(RULES["tfserving/load-error"].finding(
                        f"model {name!r} was not checked: the server was still retrying the failed load of "
                        f"{', '.join(retried)} and answered no request (its REST port opens after the initial loads)",
                        verified="runtime", source=source, severity="info", **where))
                else:
                    findings.append(RULES["tfserving/load-error"].finding(
                        f"model {name!r} never became AVAILABLE (state: {state}); log tail:\n"
                        + "\n".join(log.splitlines()[-15:]), verified="runtime", source=source, **where))
    return findings


def _await_models(container: Any, names: list[str]) -> dict[str, str]:
    """Poll until each model is AVAILABLE or failed (in the log), or the server exited: name -> state."""
    from harness.targets.tfserving.client import http_request
    from harness.targets.tfserving.container import load_failure_in_log

    states = {name: "UNKNOWN" for name in names}
    deadline = time.monotonic() + VERIFY_TIMEOUT_S
    while time.monotonic() < deadline:
        if "FAILED" in states.values():  # the server retries a failed load before it opens its REST port:
            deadline = min(deadline, time.monotonic() + RETRY_GRACE_S)  # the others get a grace period only
        log = container.logs()
        for name in names:
            if states[name] in ("AVAILABLE", "FAILED"):
                continue
            if load_failure_in_log(log, name) is not None:
                states[name] = "FAILED"
                continue
            try:
                reply = http_request("GET", container.model_url(name), timeout=5)
            except OSError:
                continue
            versions = (reply.body or {}).get("model_version_status", []) if isinstance(reply.body, dict) else []
            if any(v.get("state") == "AVAILABLE" for v in versions):
                states[name] = "AVAILABLE"
        if all(s in ("AVAILABLE", "FAILED") for s in states.values()) or "Failed to start server" in log \
                or container.exit_reason():
            break
        time.sleep(0.5)
    return states


START_FAILED = re.compile(r"Failed to start server\. Error: (?P<message>.*)")
#: main.cc prints this for the first argument TF's flag parser left over, and serves on without it
UNKNOWN_ARGUMENT = re.compile(r"^unknown argument: (?P<argument>\S.*)$", re.M)


def _log_findings(log: str, bundle: ServingBundle, source: str, where: dict[str, Any]) -> list[Finding]:
    """Every load error and the start failure of the server's log, verbatim, each with its lesson."""
    from harness.targets.tfserving.container import LOAD_FAILED

    found: list[Finding] = []
    seen: set[str] = set()
    for match in START_FAILED.finditer(log):
        text = match.group(0).strip()
        if text not in seen:
            seen.add(text)
            found.append(_runtime_finding(RULES["tfserving/start-error"], text, source + ": its log", where))
    for match in UNKNOWN_ARGUMENT.finditer(log):
        text = match.group(0).strip()
        if text not in seen:
            seen.add(text)
            found.append(_runtime_finding(RULES["tfserving/flag-without-equals"], text, source + ": its log", where))
    for match in LOAD_FAILED.finditer(log):
        key = f"{match['name']}:{match['message'].strip()}"
        if key in seen:
            continue
        seen.add(key)
        model = next((m for m in bundle.models if m.name == match["name"]), None)
        at: dict[str, Any] = {"file": model.file, "line": model.line} if model else where
        found.append(_runtime_finding(RULES["tfserving/load-error"], f"model {match['name']!r}: " + match.group(0).strip(),
                                      source + ": its log", at))
    return found


def _runtime_finding(rule: ConfigRule, text: str, source: str, where: dict[str, Any]) -> Finding:
    """A verified finding: the server's text, with the lesson its text matches (else the rule's)."""
    return rule.runtime_finding(text, source=source, lesson=lesson_of_text(text), **where)
