"""The trust gate: what a model file may make this process do before anyone said it may.

A model file is data until a loader turns part of it into code: a Keras ``Lambda`` layer carries
Python bytecode (``tf_keras`` runs it when it loads an ``.h5``, whatever ``safe_mode`` says), a
Keras config may name any Python module and function to import and call, and a SavedModel's graph
may hold ops that read or write files, talk to the network or call back into Python, which run
when the model is converted (constant folding) or called.  So, unless the user said the file is
trusted (``--trust-model``, ``check(..., trust=True)``), every loader calls :func:`admit` first:

* a ``.keras`` / ``.h5`` file's model config is read as JSON, without deserialising anything
  (``config.json`` in the ``.keras`` zip at bounded size, the ``model_config`` attribute of the
  ``.h5``), and Lambda layers, Python lambdas and objects from modules outside Keras' own (and the
  modules the user imported with ``--import``, which are trusted code) are refused;
* a SavedModel's ``saved_model.pb`` is parsed as a protobuf and every node of the graph and of
  every function in its library is compared with :data:`DENIED_OPS`.

The catalog's own models (``harness.models``, the scenarios) are ours: ``ModelSource.from_trained``
marks them trusted.  See docs/security.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.archives import KERAS_ARCHIVE, KERAS_JSON_BYTES, checked_members, read_member
from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.targets.base import ModelSource

#: ``saved_model_cli scan``'s own denylist (tensorflow/python/tools/saved_model_cli.py, ``_OP_DENYLIST``).
SAVED_MODEL_CLI_DENYLIST: frozenset[str] = frozenset({"WriteFile", "ReadFile", "PrintV2"})
#: Ops that touch the file system (read, write, list, map files; readers and file datasets).
FILE_OPS: frozenset[str] = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst", "Print", "PrintV2",
    "WholeFileReader", "WholeFileReaderV2", "TextLineReader", "TextLineReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "TFRecordReader", "TFRecordReaderV2", "LMDBReader", "IdentityReader",
    "IdentityReaderV2", "ReaderReadV2", "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "LMDBDataset", "ExperimentalLMDBDataset",
    "CSVDataset", "CSVDatasetV2", "ExperimentalCSVDataset", "SqlDataset", "ExperimentalSqlDataset",
    "MatchingFilesDataset", "ExperimentalMatchingFilesDataset", "CacheDataset", "CacheDatasetV2",
    "SnapshotDataset", "SnapshotDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DistributedSave",
    "DatasetToTFRecord", "ExperimentalDatasetToTFRecord", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "LoadAndRemapMatrix", "DecodeProtoV2", "EncodeProto",
    "FileSystemSetConfiguration", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3", "DebugNanCount",
    "DebugNumericSummary", "DebugNumericSummaryV2", "CreateSummaryFileWriter", "CreateSummaryDbWriter",
    "WriteSummary", "WriteScalarSummary", "WriteAudioSummary", "WriteGraphSummary", "WriteHistogramSummary",
    "WriteImageSummary", "WriteRawProtoSummary", "FlushSummaryWriter", "CloseSummaryWriter", "ImportEvent",
    "StatsAggregatorSetSummaryWriter",
})
#: Ops that talk to other processes or hosts.
NETWORK_OPS: frozenset[str] = frozenset({
    "DataServiceDataset", "DataServiceDatasetV2", "DataServiceDatasetV3", "DataServiceDatasetV4",
    "RegisterDataset", "RegisterDatasetV2", "Send", "Recv", "CollectiveReduce", "CollectiveBcastSend",
    "CollectiveBcastRecv",
})
#: Ops that call back into the Python interpreter of the process that runs the graph.
PYTHON_OPS: frozenset[str] = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
#: Checkpoint ops: every SavedModel's own save/restore functions use them (allowed there, and only there).
CHECKPOINT_OPS: frozenset[str] = frozenset({
    "SaveV2", "Save", "SaveSlices", "RestoreV2", "Restore", "RestoreSlice", "MergeV2Checkpoints",
    "ShardedFilename", "ShardedFilespec",
})
DENIED_OPS: frozenset[str] = SAVED_MODEL_CLI_DENYLIST | FILE_OPS | NETWORK_OPS | PYTHON_OPS | CHECKPOINT_OPS
#: Modules a Keras config may name: Keras' own namespaces (plus the user's ``--import`` modules).
KERAS_MODULES: tuple[str, ...] = ("keras", "tf_keras")
#: The largest ``saved_model.pb`` parsed (protobuf's own limit is 2 GiB).
SAVED_MODEL_PB_BYTES = 2 << 30
TRUST_HINT = "pass --trust-model (API: trust=True) only if you trust this file and its author"


@dataclass(frozen=True)
class Concern:
    """One thing in a model file that would run code beyond the runtimes' own ops."""

    kind: str  # "layer", "object", "op"
    name: str  # the layer name, the object's module.class, the op type
    where: str  # the layer / the function (or "graph") it sits in
    why: str  # what it would do

    def describe(self) -> str:
        if self.kind == "op":
            return f"op {self.name} in {self.where} ({self.why})"
        return f"{self.kind} {self.name!r}{f' in {self.where}' if self.where else ''} ({self.why})"


class ModelRefused(UsageError):
    """An untrusted model file carries code; one line naming it and the option that allows it."""

    def __init__(self, path: Path, concerns: list[Concern]) -> None:
        self.path = path
        self.concerns = concerns
        more = f" and {len(concerns) - 1} more" if len(concerns) > 1 else ""
        super().__init__(f"{path}: refused to load: {concerns[0].describe()}{more}; {TRUST_HINT}")


# ------------------------------------------------------------------------------------ Keras configs

def _allowed(module: str, allowed: Iterable[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in allowed)


def _layer_name(node: dict[str, Any], current: str) -> str:
    config = node.get("config")
    if "class_name" in node and isinstance(config, dict) and isinstance(config.get("name"), str):
        return config["name"]
    return current


def keras_config_concerns(config: Any, imports: Iterable[str] = ()) -> list[Concern]:
    """What in a Keras model config (the parsed JSON) would run Python code when deserialised."""
    allowed = (*KERAS_MODULES, *imports)
    found: list[Concern] = []
    flagged: set[tuple[str, str]] = set()

    def add(kind: str, name: str, where: str, why: str) -> None:
        lambda_layer = kind == "object" and ("layer", where) in flagged  # said once, by the layer
        if (kind, where or name) not in flagged and not lambda_layer:
            flagged.add((kind, where or name))
            found.append(Concern(kind, name, where, why))

    def walk(node: Any, layer: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, layer)
            return
        if not isinstance(node, dict):
            return
        layer = _layer_name(node, layer)
        class_name = node.get("class_name")
        if class_name == "Lambda":
            add("layer", layer, "", "a Lambda layer: Python bytecode that runs when the model is loaded or called")
        elif class_name == "__lambda__":
            add("object", "lambda", layer, "Python bytecode")
        module = node.get("module")
        if isinstance(module, str) and module and not _allowed(module, allowed) and (
                "class_name" in node or "function_type" in node):
            what = f"{module}.{class_name}" if isinstance(class_name, str) else module
            add("object", what, layer, "imports and calls Python code outside Keras; "
                "`--import MODULE` allows a module you trust")
        for value in node.values():
            walk(value, layer)

    walk(config, "")
    return found


def _keras_archive_hint() -> str:
    return "re-save it with model.save('model.keras')"


def keras_archive_json(path: Path, member: str) -> Any:
    """A JSON member of a ``.keras`` archive, read at bounded size (None when absent)."""
    data = read_member(path, member, max_bytes=KERAS_JSON_BYTES, limits=KERAS_ARCHIVE, hint=_keras_archive_hint())
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        raise UsageError(f"{path}: {member} is not JSON ({exc}); {_keras_archive_hint()}") from None


def keras_file_config(path: Path) -> Any:
    """The model config of a ``.keras`` or ``.h5`` file, as JSON, without deserialising it."""
    if path.suffix == ".keras":
        checked_members(path, KERAS_ARCHIVE, hint=_keras_archive_hint())
        config = keras_archive_json(path, "config.json")
        if config is None:
            raise UsageError(f"{path} has no config.json: not a Keras model archive; {_keras_archive_hint()}")
        return config
    import h5py

    try:
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError as exc:
        raise UsageError(f"{path} is not a readable HDF5 file ({exc}); save it again with model.save()") from None
    if raw is None:
        raise UsageError(f"{path} has no model_config: a weights-only .h5 is not a model; "
                         "save the whole model with model.save('model.h5')")
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: model_config is not JSON ({exc}); save it again with model.save()") from None


# ------------------------------------------------------------------------------------ SavedModels

def _op_why(op: str) -> str:
    if op in PYTHON_OPS:
        return "calls back into Python"
    if op in NETWORK_OPS:
        return "talks to other processes or hosts"
    if op in CHECKPOINT_OPS:
        return "reads or writes checkpoint files outside the SavedModel's own save/restore functions"
    return "touches the file system"


def _tensor_node(name: str) -> str:
    return name.lstrip("^").split(":")[0]


def _called(nodes: Iterable[Any]) -> set[str]:
    """Names of the functions the nodes call (function-valued attributes, e.g. ``f`` of a
    StatefulPartitionedCall, branches of If/While, ``func`` lists)."""
    names: set[str] = set()
    for node in nodes:
        for value in node.attr.values():
            if value.HasField("func") and value.func.name:
                names.add(value.func.name)
            if value.HasField("list"):
                names.update(f.name for f in value.list.func if f.name)
    return names


def _reachable(roots: set[str], calls: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in calls:
            continue
        seen.add(name)
        todo.extend(calls[name])
    return seen


def _graph_concerns(meta: Any) -> Iterator[Concern]:
    graph = meta.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    calls = {name: _called(f.node_def) for name, f in functions.items()}
    saver = meta.saver_def
    roots = {_tensor_node(n) for n in (saver.save_tensor_name, saver.restore_op_name, saver.filename_tensor_name) if n}
    scopes = tuple(r.rsplit("/", 1)[0] + "/" for r in roots if "/" in r)  # TF1 savers: the "save/" scope
    saver_nodes = [n for n in graph.node if n.name in roots or (scopes and n.name.startswith(scopes))]
    saver_functions = _reachable(_called(saver_nodes), calls)
    saver_node_names = {n.name for n in saver_nodes}
    for node in graph.node:
        if node.op in DENIED_OPS and not (node.op in CHECKPOINT_OPS and node.name in saver_node_names):
            yield Concern("op", node.op, f"graph node {node.name}", _op_why(node.op))
    for name, function in functions.items():
        for node in function.node_def:
            if node.op in DENIED_OPS and not (node.op in CHECKPOINT_OPS and name in saver_functions):
                yield Concern("op", node.op, f"function {name}", _op_why(node.op))


def saved_model_concerns(directory: Path) -> list[Concern]:
    """Denied ops in a SavedModel's graph and function library, read from ``saved_model.pb``
    (none in a file protobuf cannot parse: TensorFlow's loader cannot either, and says so)."""
    from google.protobuf import message, text_format
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    binary, text = directory / "saved_model.pb", directory / "saved_model.pbtxt"
    graph_file = binary if binary.is_file() else text
    size = graph_file.stat().st_size
    if size > SAVED_MODEL_PB_BYTES:
        raise UsageError(f"{graph_file} is {size} bytes, above protobuf's limit of {SAVED_MODEL_PB_BYTES}: "
                         "not a SavedModel this tool reads")
    try:
        if graph_file is binary:
            saved.ParseFromString(binary.read_bytes())
        else:
            text_format.Parse(text.read_text(encoding="utf-8"), saved)
    except (message.DecodeError, text_format.ParseError, UnicodeDecodeError):
        # No graph protobuf can read, so none TensorFlow can run: its own loader refuses the file,
        # in its own words (the symptom the check and the targets report).
        return []
    found: list[Concern] = []
    for meta in saved.meta_graphs:
        for concern in _graph_concerns(meta):
            if concern not in found:
                found.append(concern)
    return found


# ------------------------------------------------------------------------------------ the gate

def model_concerns(source: "ModelSource") -> list[Concern]:
    """Everything in ``source`` that would run code beyond the runtimes' own ops (static: nothing is
    loaded, deserialised or run)."""
    if source.format == "saved_model":
        return saved_model_concerns(source.path)
    return keras_config_concerns(keras_file_config(source.path), source.imports)


def admit(source: "ModelSource") -> None:
    """The gate every loader calls first: a trusted source passes; an untrusted one passes when
    :func:`model_concerns` finds nothing, else :class:`ModelRefused` (one line, exit code 2)."""
    if source.trusted:
        return
    concerns = model_concerns(source)
    if concerns:
        raise ModelRefused(source.path, concerns)
