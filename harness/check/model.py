"""The user's model as the check sees it: loaded, described, fed, and run as the reference.

The reference is the model run by TensorFlow/Keras itself on the same inputs; with a Keras model
it also gives every top-level layer's output, which localisation compares with the converted
model's intermediate tensors.  TensorFlow is imported inside the functions only.
"""

from __future__ import annotations

import hashlib
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.archives import INPUTS_ARCHIVE, checked_members
from harness.artifacts import IN_PROCESS_WORK
from harness.check.report import Finding
from harness.errors import UsageError
from harness.targets.base import ModelSource

if TYPE_CHECKING:
    import numpy as np

Flavour = Literal["keras3", "tf_keras", "saved_model"]
BATCH = 8
SEED = 0


@dataclass(frozen=True)
class InputSpec:
    name: str
    dtype: str
    shape: tuple[int | None, ...]
    kind: str  # "image [0, 1]", "integer [0, N)", "normal(0, 1)", "boolean", "string: words of LAYER"
    words: tuple[str, ...] = ()  # for a string input: the vocabulary its synthetic values are drawn from


@dataclass
class LoadedModel:
    """The user's model, loaded once for the reference."""

    source: ModelSource
    flavour: Flavour
    keras_model: Any  # keras / tf_keras model, None for a plain SavedModel
    signature_fn: Any  # the SavedModel's serving_default, None for Keras
    inputs: list[InputSpec]
    outputs: list[str]
    layers: list[str] = field(default_factory=list)
    parameters: int | None = None
    notes: list[Finding] = field(default_factory=list)  # what loading saw about the model itself (signatures)
    #: the reference already computed, by the exact arrays fed (:func:`feed_key`): outputs, or the error raised
    references: "dict[str, list[np.ndarray] | BaseException]" = field(default_factory=dict, repr=False)
    export: str | None = None  # the targets run an export other than the default: which (see fixed_batch_export)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.source.path), "format": self.source.format, "flavour": self.flavour,
                "digest": digest_of(self.source.path),
                "inputs": [{"name": i.name, "dtype": i.dtype, "shape": list(i.shape)} for i in self.inputs],
                "outputs": self.outputs, "parameters": self.parameters, "layers": len(self.layers),
                "export": self.export}


def digest_of(path: Path) -> str:
    from harness.artifacts import content_digest

    return content_digest(path)[:16]


def load_model(source: ModelSource) -> LoadedModel:
    """Load ``source`` for the reference, through the trust gate; a file that is not a loadable
    model is a UsageError, an untrusted one that carries code a :class:`~harness.trust.ModelRefused`.

    The modules in ``source.imports`` (user code registering custom layers with
    ``keras.saving.register_keras_serializable``) are imported first: trusted code by the user's word.
    """
    from harness.export import keras_flavour, load_keras_model

    for module in source.imports:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UsageError(f"--import {module}: {exc}; put the module on PYTHONPATH") from None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if source.format == "saved_model":
        return _load_saved_model(source)
    flavour = keras_flavour(source)
    try:
        model = load_keras_model(source)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any loader failure is the user's file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{source.path} could not be loaded by {'tf_keras' if flavour == 'tf_keras' else 'Keras 3'} "
                         f"({type(exc).__name__}: {first[:300]}); if it has custom layers, pass "
                         "--import MODULE that registers them") from None
    return _describe_keras(source, model, flavour)


def _dtype_name(dtype: Any) -> str:
    name = getattr(dtype, "name", None) or str(dtype)
    return str(name).replace("tf.", "")


def _embedding_range(model: Any, input_name: str) -> int | None:
    """``input_dim`` of the Embedding layer that reads ``input_name`` (the range its integers must
    stay in); None when no Embedding reads it."""
    parents = _inbound_of(model)
    for layer in model.layers:
        if type(layer).__name__ == "Embedding" and input_name in parents.get(layer.name, []):
            return int(layer.input_dim)
    return None


def is_string(dtype: str) -> bool:
    """Whether a signature dtype name is TensorFlow's string (numpy has no dtype of that name)."""
    return dtype in ("string", "str", "object", "bytes")


#: words a string input gets when no lookup layer in the model says which words it knows
FALLBACK_WORDS: tuple[str, ...] = ("the", "a", "model", "deploys")


def _vocabulary(model: Any, input_name: str) -> tuple[str, tuple[str, ...]] | None:
    """(layer name, words) of the StringLookup / TextVectorization layer that reads ``input_name``
    (its vocabulary without the out-of-vocabulary and mask tokens); None when none reads it."""
    parents = _inbound_of(model)
    for layer in model.layers:
        if type(layer).__name__ in ("StringLookup", "TextVectorization") and input_name in parents.get(layer.name, []):
            try:
                words = tuple(str(w) for w in layer.get_vocabulary() if str(w) not in ("", "[UNK]"))
            except Exception:  # noqa: BLE001 - a layer not adapted yet has no vocabulary to read
                words = ()
            return layer.name, words
    return None


def _kind(shape: tuple[int | None, ...], dtype: str, model: Any, name: str) -> str:
    if is_string(dtype):
        found = _vocabulary(model, name) if model is not None else None
        return f"string: words of {found[0]}" if found and found[1] else "string: made-up words"
    if dtype == "bool":
        return "boolean"
    if dtype.startswith(("int", "uint")):
        top = _embedding_range(model, name) if model is not None else None
        return f"integer [0, {top or 2})"
    if len(shape) == 4:
        return "image [0, 1]"
    return "normal(0, 1)"


def _spec(name: str, dtype: str, shape: tuple[int | None, ...], model: Any) -> InputSpec:
    words: tuple[str, ...] = ()
    if is_string(dtype):
        dtype = "string"
        found = _vocabulary(model, name) if model is not None else None
        words = found[1] if found and found[1] else FALLBACK_WORDS
    return InputSpec(name, dtype, shape, _kind(shape, dtype, model, name), words)


def _describe_keras(source: ModelSource, model: Any, flavour: Flavour) -> LoadedModel:
    inputs = []
    for tensor in model.inputs:
        shape = tuple(None if d is None else int(d) for d in tensor.shape)
        name = getattr(tensor, "name", "input").split(":")[0]
        inputs.append(_spec(name, _dtype_name(tensor.dtype), shape, model))
    outputs = [getattr(t, "name", f"output_{i}").split(":")[0] for i, t in enumerate(model.outputs)]
    named = list(getattr(model, "output_names", None) or [])
    if len(named) == len(outputs) and len(set(named)) == len(named):  # Keras' names: dict keys or layer names
        outputs = [str(n) for n in named]
    return LoadedModel(source, flavour, model, None, inputs, outputs,
                       layers=[layer.name for layer in model.layers], parameters=int(model.count_params()))


def _load_saved_model(source: ModelSource) -> LoadedModel:
    import tensorflow as tf

    from harness.trust import admit

    admit(source)
    try:
        loaded = tf.saved_model.load(str(source.path))
    except Exception as exc:  # noqa: BLE001 - TF's reader text is the user's answer
        raise UsageError(f"{source.path} could not be loaded as a SavedModel ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0][:300]})") from None
    fn = loaded.signatures.get("serving_default")
    if fn is None:
        found = ", ".join(sorted(loaded.signatures)) or "none"
        raise UsageError(f"{source.path} has no serving_default signature (signatures: {found}); TF Serving, "
                         "the converters and this check call it: save with "
                         "tf.saved_model.save(module, dir, signatures={'serving_default': fn}) or model.export(dir)")
    inputs: list[InputSpec] = []
    _, kwargs = fn.structured_input_signature
    for name, spec in sorted(kwargs.items()):
        shape = tuple(None if d is None else int(d) for d in spec.shape)
        inputs.append(_spec(name, spec.dtype.name, shape, None))
    outputs = sorted(fn.structured_outputs)
    model = LoadedModel(source, "saved_model", None, fn, inputs, outputs)
    others = sorted(k for k in loaded.signatures if k != "serving_default")
    if others:
        model.notes.append(Finding("info", f"the SavedModel has {len(others) + 1} signatures: checked serving_default "
                                   f"(not checked: {', '.join(others)})", "SavedModel signatures", "static",
                                   fix="TF Serving, the converters and this check use serving_default unless told "
                                       "otherwise (TF Serving: signature_name in the request)", step="load"))
    model.parameters = int(sum(int(v.shape.num_elements() or 0) for v in getattr(loaded, "variables", [])))
    return model


# ------------------------------------------------------------------------------------ inputs

def synthesise_inputs(model: LoadedModel, batch: int = BATCH, seed: int = SEED) -> "dict[str, np.ndarray]":
    """Inputs from the signature: images in [0, 1], integers in an embedding's range (else {0, 1}),
    strings drawn from the vocabulary of the lookup layer that reads them, booleans at random,
    other floats standard normal; ``batch`` rows unless the model fixes the batch size."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        rows = spec.shape[0] if spec.shape and spec.shape[0] is not None else batch
        dims = [rows] + [d if d is not None else 8 for d in spec.shape[1:]]
        if is_string(spec.dtype):
            out[spec.name] = np.asarray(rng.choice(list(spec.words or FALLBACK_WORDS), size=dims), dtype=str)
        elif spec.kind == "boolean":
            out[spec.name] = rng.integers(0, 2, size=dims).astype(bool)
        elif spec.kind.startswith("integer"):
            top = int(spec.kind.split(", ")[1].rstrip(")"))
            out[spec.name] = rng.integers(0, top, size=dims).astype(spec.dtype)
        elif spec.kind.startswith("image"):
            out[spec.name] = rng.random(dims).astype(spec.dtype)
        else:
            out[spec.name] = rng.standard_normal(dims).astype(spec.dtype)
    return out


#: the synthetic probes besides the sample: what each one feeds (docs/check-schema.md)
PROBES: dict[str, str] = {
    "wide": "ten times the documented spread: normal(0, 10) floats, images in [0, 255] (unnormalised pixels), "
            "strings half out of the vocabulary",
    "edge": "values at the edges the dtype allows the layer: floats of magnitude 1e4 with alternating sign "
            "and zeros, integers at 0 and the top of their range, empty strings",
}


def synthesise_probes(model: LoadedModel, batch: int = BATCH, seed: int = SEED) -> "dict[str, dict[str, np.ndarray]]":
    """The further probes of :data:`PROBES`, each with the sample's shapes; a probe that would feed
    exactly the sample (a model of integer ids in a full range has no wider one) is left out."""
    import numpy as np

    sample = synthesise_inputs(model, batch, seed)
    rng = np.random.default_rng(seed + 1)
    wide: dict[str, np.ndarray] = {}
    edge: dict[str, np.ndarray] = {}
    for spec in model.inputs:
        base = sample[spec.name]
        if is_string(spec.dtype):
            unknown = np.asarray([f"unseen-{i}" for i in range(base.size)], dtype=str).reshape(base.shape)
            wide[spec.name] = np.where(rng.random(base.shape) < 0.5, base, unknown)
            edge[spec.name] = np.full(base.shape, "", dtype=str)
        elif spec.kind == "boolean":
            wide[spec.name] = base
            edge[spec.name] = np.ones(base.shape, dtype=bool)
        elif spec.kind.startswith("integer"):
            top = int(spec.kind.split(", ")[1].rstrip(")"))
            wide[spec.name] = base
            edge[spec.name] = np.where(np.arange(base.size).reshape(base.shape) % 2 == 0, 0, top - 1).astype(base.dtype)
        elif spec.kind.startswith("image"):
            wide[spec.name] = (base * 255.0).astype(base.dtype)
            edge[spec.name] = _alternating(base, 1e4, rng)
        else:
            wide[spec.name] = (base * 10.0).astype(base.dtype)
            edge[spec.name] = _alternating(base, 1e4, rng)
    found = {"wide": wide, "edge": edge}
    return {name: inputs for name, inputs in found.items()
            if any(not np.array_equal(inputs[k], sample[k]) for k in inputs)}


def _alternating(like: "np.ndarray", magnitude: float, rng: "np.random.Generator") -> "np.ndarray":
    """``like``'s shape and dtype: +-``magnitude`` at random signs, a quarter of the values zero."""
    import numpy as np

    signs = np.where(rng.random(like.shape) < 0.5, -1.0, 1.0)
    zeros = rng.random(like.shape) < 0.25
    return np.where(zeros, 0.0, signs * magnitude).astype(like.dtype)


def read_inputs(path: Path, model: LoadedModel) -> "dict[str, np.ndarray]":
    """Sample inputs from an ``.npz`` keyed by input name; wrong names, shapes or dtypes: UsageError."""
    import numpy as np

    if not path.is_file():
        raise UsageError(f"--inputs {path}: no such file (give an .npz with one array per input name)")
    checked_members(path, INPUTS_ARCHIVE, hint="--inputs takes an .npz written with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"--inputs {path}: not a readable .npz ({exc}); write it with numpy.savez") from None
    wanted = {i.name: i for i in model.inputs}
    if set(arrays) != set(wanted):
        raise UsageError(f"--inputs {path}: arrays {sorted(arrays)} do not match the model's inputs "
                         f"{sorted(wanted)}; name each array after its input")
    for name, array in arrays.items():
        spec = wanted[name]
        if len(array.shape) != len(spec.shape) or any(
                want is not None and got != want for got, want in zip(array.shape, spec.shape)):
            raise UsageError(f"--inputs {path}: {name} has shape {list(array.shape)}, the model takes "
                             f"{[d if d is not None else 'None' for d in spec.shape]}")
        if is_string(spec.dtype):
            if array.dtype.kind not in "US":
                raise UsageError(f"--inputs {path}: {name} is {array.dtype}, the model takes strings; "
                                 "save it as a numpy str array (numpy.array([...], dtype=str))")
            arrays[name] = np.char.decode(array, "utf-8") if array.dtype.kind == "S" else array
            continue
        if np.dtype(array.dtype).kind != np.dtype(spec.dtype).kind:
            raise UsageError(f"--inputs {path}: {name} is {array.dtype}, the model takes {spec.dtype}; "
                             f"convert it with .astype('{spec.dtype}')")
        arrays[name] = array.astype(spec.dtype)
    return arrays


# ------------------------------------------------------------------------------------ reference

def keras_feed(model: LoadedModel, inputs: "dict[str, np.ndarray]") -> Any:
    """What a Keras model is called on: the one array, or a dict by input name (Keras maps it onto
    list and dict inputs alike); string arrays as tf.string tensors (Keras' predict refuses numpy
    strings: "Invalid dtype: str96")."""
    feed: dict[str, Any] = {}
    for spec in model.inputs:
        value: Any = inputs[spec.name]
        if is_string(spec.dtype):
            import tensorflow as tf

            value = tf.constant(value)
        feed[spec.name] = value
    return feed if len(feed) > 1 else next(iter(feed.values()))


def _as_list(got: Any, names: list[str]) -> "list[np.ndarray]":
    """A Keras result (one array, a list or a dict by output name) as arrays in ``names`` order."""
    import numpy as np

    if isinstance(got, dict):
        return [np.asarray(got[name]) for name in names] if set(names) <= set(got) else [np.asarray(v) for v in got.values()]
    return [np.asarray(g) for g in (got if isinstance(got, (list, tuple)) else [got])]




def feed_key(inputs: "dict[str, np.ndarray]") -> str:
    """What identifies a feed exactly: every input's name, dtype, shape and bytes."""
    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(inputs):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def reference_outputs(model: LoadedModel, inputs: "dict[str, np.ndarray]") -> "list[np.ndarray]":
    """The model's own outputs (in the order of ``model.outputs``) on exactly ``inputs``.

    Computed once per distinct feed and kept in ``model.references`` (the paths of a check feed
    the same rows again and again: the sample, its first rows, the probes); an error TensorFlow
    raised on a feed is raised again for the same feed without running it twice.
    """
    from harness.counts import count

    key = feed_key(inputs)
    with IN_PROCESS_WORK:
        known = model.references.get(key)
        if known is None:
            count("reference computations")
            try:
                known = _reference_outputs(model, inputs)
            except Exception as exc:  # noqa: BLE001 - kept, and raised for every path fed these arrays
                known = exc
            model.references[key] = known
        else:
            count("references reused")
    if isinstance(known, BaseException):
        raise known
    return list(known)


def _reference_outputs(model: LoadedModel, inputs: "dict[str, np.ndarray]") -> "list[np.ndarray]":
    """The model's own outputs (in the order of ``model.outputs``); a stateful model's from zero
    states, as a freshly deployed model starts (its states are reset before each call)."""
    if model.keras_model is not None:
        for layer in stateful_layers(model.keras_model):
            layer.reset_states()
        feed = keras_feed(model, inputs)
        if any(is_string(spec.dtype) for spec in model.inputs):  # predict() takes no string tensors
            got = model.keras_model(feed, training=False)
            got = {k: v for k, v in got.items()} if isinstance(got, dict) else got
        else:
            got = model.keras_model.predict(feed, verbose=0)
        return _as_list(got, model.outputs)
    import tensorflow as tf

    result = model.signature_fn(**{k: tf.constant(v) for k, v in inputs.items()})
    return _as_list(dict(result), model.outputs)


def layer_outputs(model: LoadedModel, inputs: "dict[str, np.ndarray]") -> "dict[str, np.ndarray]":
    """Every top-level layer's output on ``inputs`` (Keras models with single-output layers)."""
    keras_model = model.keras_model
    if keras_model is None:
        return {}
    from harness.counts import count

    count("layer-output computations")
    with IN_PROCESS_WORK:
        return _layer_outputs(model, keras_model, inputs)


def _layer_outputs(model: LoadedModel, keras_model: Any, inputs: "dict[str, np.ndarray]") -> "dict[str, np.ndarray]":
    import numpy as np

    layers = [layer for layer in keras_model.layers
              if type(layer).__name__ != "InputLayer" and not isinstance(layer.output, (list, tuple))]
    module = importlib.import_module(type(keras_model).__module__.split(".")[0])
    probe = module.Model(inputs=keras_model.inputs, outputs=[layer.output for layer in layers])
    feed = keras_feed(model, inputs)
    got = probe(feed, training=False) if any(is_string(i.dtype) for i in model.inputs) else probe.predict(feed, verbose=0)
    got = got if isinstance(got, (list, tuple)) else [got]
    return {layer.name: np.asarray(value) for layer, value in zip(layers, got)}


def inbound_layers(model: LoadedModel) -> dict[str, list[str]]:
    """Layer name -> names of the layers feeding it (previous layer when the graph is not readable)."""
    return _inbound_of(model.keras_model) if model.keras_model is not None else {}


def _inbound_of(keras_model: Any) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    previous: str | None = None
    for layer in keras_model.layers:
        parents: list[str] = []
        try:
            node = layer._inbound_nodes[0]  # noqa: SLF001 - Keras keeps the graph here in both flavours
            tensors = getattr(node, "input_tensors", None)
            if tensors is None:
                tensors = node.keras_inputs  # tf_keras
            for tensor in (tensors if isinstance(tensors, (list, tuple)) else [tensors]):
                parents.append(tensor._keras_history[0].name)  # noqa: SLF001
        except (AttributeError, IndexError, TypeError):
            parents = [previous] if previous else []
        found[layer.name] = parents
        previous = layer.name
    return found


def hash_inputs(inputs: "dict[str, np.ndarray]") -> str:
    digest = hashlib.sha256()
    for name in sorted(inputs):
        digest.update(name.encode())
        digest.update(inputs[name].tobytes())
    return digest.hexdigest()[:16]


# ------------------------------------------------------------------------------------ stateful models

def stateful_layers(keras_model: Any) -> list[Any]:
    """The layers built with ``stateful=True`` (RNNs whose states outlive a call), in layer order."""
    return [layer for layer in getattr(keras_model, "layers", []) if getattr(layer, "stateful", False)]
