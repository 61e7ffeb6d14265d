"""Where a converted model's outputs start to diverge from Keras: per-layer errors and attribution.

The converted model's intermediate tensors (a target's check paths read them from its runtime, e.g.
an interpreter that keeps them all) are mapped back to Keras layer names by the names the converter
gives them (``sequential_1/conv2d_1/Relu;...`` holds the layer name), the
last tensor of each layer being its output; each is compared with the Keras layer's own output on
the same inputs.  A layer that fails while every layer feeding it passes is the **local** cause; a
failing layer downstream of a failing one is **accumulated** error.

That attribution is inferred; :func:`measure_alone` measures it: each suspect layer (the first
few failing ones) is cut out as a one-layer Keras model (:func:`layer_alone`: the layer's config
and weights), fed the *reference's* inputs to that layer, and converted and run on the same
target, path and load options through the target's deploy interface.  A layer that fails alone is
wrong on its own; one that passes alone only inherits its inputs' error.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import IN_PROCESS_WORK
from harness.check.model import LoadedModel, digest_of, inbound_layers, keras_feed, layer_outputs
from harness.check.report import Divergence, LayerError, TargetReport
from harness.compare import Tolerance, tolerance_for
from harness.counts import on_behalf_of
from harness.targets.base import ModelSource, Target

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.check.steps import Context

#: how many failing layers are run alone (each one is a conversion on the target)
SUSPECTS = 3


def _layer_in_name(tensor_name: str, layers: set[str], model_name: str) -> str | None:
    """The Keras layer a converter tensor name refers to (Keras 3 exports add ``_1`` to each scope)."""
    keras3 = re.search(rf"(^|/){re.escape(model_name)}_\d+/", tensor_name) is not None
    for part in tensor_name.split(";"):
        components = part.split("/")
        for component in components[1:]:
            candidate = re.sub(r"_\d+$", "", component) if keras3 else component
            if candidate in layers:
                return candidate
    return None


def map_to_layers(ops: list[list[Any]], layer_shapes: dict[str, tuple[int, ...]], model_name: str,
                  output_layers: list[str], outputs: list[Any],
                  output_names: list[str] | None = None) -> dict[str, tuple[str, Any]]:
    """Keras layer -> (tensor name, value): the layer's last tensor whose shape is the layer's; an
    output layer's is the model's output (named by ``output_names`` when the runtime gives them)."""
    import numpy as np

    layers = set(layer_shapes)
    mapped: dict[str, tuple[str, Any]] = {}
    for name, value in ops:
        layer = _layer_in_name(str(name), layers, model_name)
        if layer is not None and tuple(np.shape(value)) == layer_shapes[layer]:
            mapped[layer] = (str(name), value)
    names = output_names if output_names is not None and len(output_names) == len(outputs) else ["model output"] * len(outputs)
    for layer, value, name in zip(output_layers, outputs, names):  # the model's outputs are the output layers' values
        if layer in layer_shapes and tuple(np.shape(value)) == layer_shapes[layer]:
            mapped[layer] = (name, value)
    return mapped


def _layer_error(layer: str, tensor: str, got: Any, want: "np.ndarray", tolerance: Tolerance) -> LayerError:
    import numpy as np

    g = np.asarray(got, dtype="float64")
    w = np.asarray(want, dtype="float64")
    diff = g - w
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    norm_w = float(np.linalg.norm(w))
    norm_d = float(np.linalg.norm(diff))
    rel = norm_d / norm_w if norm_w > 0 else (0.0 if norm_d == 0 else math.inf)
    noise = float(np.mean(diff ** 2)) if diff.size else 0.0
    signal = float(np.mean(w ** 2)) if w.size else 0.0
    if noise == 0:
        sqnr = math.inf
    elif signal > 0 and math.isfinite(noise) and signal / noise > 0:
        sqnr = 10 * math.log10(signal / noise)
    else:  # no signal, or an overflowed output (inf/NaN where the reference is finite)
        sqnr = -math.inf
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    passes = max_abs <= tolerance.atol + tolerance.rtol * scale
    return LayerError(layer, tensor, max_abs, rel, sqnr, passes, "ok")


def _mapped_ancestors(layer: str, inbound: dict[str, list[str]], status: dict[str, bool]) -> set[str]:
    """The nearest layers upstream of ``layer`` that were compared (an unmapped parent, fused into
    its neighbour, is looked through to its own parents)."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = list(inbound.get(layer, []))
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        if parent in status:
            found.add(parent)
        else:
            stack.extend(inbound.get(parent, []))
    return found


def localise(path: str, order: list[str], reference: "dict[str, np.ndarray]",
             mapped: dict[str, tuple[str, Any]], inbound: dict[str, list[str]],
             tolerance: Tolerance) -> Divergence:
    """The per-layer table, in layer order, with local vs accumulated attribution."""
    divergence = Divergence(path=path, tolerance={"atol": tolerance.atol, "rtol": tolerance.rtol})
    status: dict[str, bool] = {}
    for layer in order:
        if layer not in reference:
            continue
        if layer not in mapped:
            divergence.unmapped.append(layer)
            continue
        tensor, value = mapped[layer]
        row = _layer_error(layer, tensor, value, reference[layer], tolerance)
        status[layer] = row.passes
        if not row.passes:
            local = all(status[p] for p in _mapped_ancestors(layer, inbound, status))
            row = LayerError(row.layer, row.tensor, row.max_abs, row.rel_error, row.sqnr_db, False,
                             "local" if local else "accumulated")
            if local and divergence.first_layer is None:
                divergence.first_layer = layer
        divergence.layers.append(row)
    if divergence.unmapped:
        divergence.note = (f"{len(divergence.unmapped)} layer(s) have no tensor of their output shape in the "
                           "converted model (fused into a neighbour or renamed): "
                           + ", ".join(divergence.unmapped[:8]))
    return divergence


# ------------------------------------------------------------------------------------ layers run alone

def suspects(divergence: Divergence, count: int = SUSPECTS) -> list[str]:
    """The layers worth running alone: the first ``count`` that fail, in layer order."""
    return [row.layer for row in divergence.layers if not row.passes][:count]


def _keras_module(keras_model: Any) -> Any:
    """``keras`` or ``tf_keras``: the package the user's model was built with."""
    return importlib.import_module(type(keras_model).__module__.split(".")[0])


def layer_inputs(model: LoadedModel, layer_name: str, inputs: "dict[str, np.ndarray]") -> "list[np.ndarray]":
    """What the reference (Keras on ``inputs``) feeds ``layer_name``: one array per input of the layer."""
    import numpy as np

    keras_model = model.keras_model
    layer = keras_model.get_layer(layer_name)
    symbolic = layer.input  # a layer called more than once has none: AttributeError/ValueError
    probe = _keras_module(keras_model).Model(inputs=keras_model.inputs, outputs=symbolic)
    got = probe.predict(keras_feed(model, inputs), verbose=0)
    return [np.asarray(a) for a in (got if isinstance(got, (list, tuple)) else [got])]


def layer_alone(model: LoadedModel, layer_name: str, arrays: "list[np.ndarray]", cache: "ArtifactCache") -> ModelSource:
    """A one-layer Keras model made of ``layer_name``'s config and weights, inputs ``in_0``... shaped
    as ``arrays``; saved in the cache (same content for the same model and layer, so its conversions
    are cached too) with the user's model's trust."""
    keras_model = model.keras_model
    module = _keras_module(keras_model)
    suffix = ".keras" if module.__name__ == "keras" else ".h5"
    key = {"model": digest_of(model.source.path), "layer": layer_name, "module": module.__name__,
           "version": str(getattr(module, "__version__", "")),
           "inputs": [[list(a.shape[1:]), str(a.dtype)] for a in arrays]}

    def build(out: Path) -> None:
        layer = keras_model.get_layer(layer_name)
        ins = [module.Input(shape=a.shape[1:], dtype=str(a.dtype), name=f"in_{i}") for i, a in enumerate(arrays)]
        clone = type(layer).from_config(layer.get_config())
        got = clone(ins[0] if len(ins) == 1 else ins)
        clone.set_weights(layer.get_weights())
        module.Model(inputs=ins, outputs=got, name=f"alone_{layer_name}").save(str(out / f"layer{suffix}"))

    return ModelSource.from_path(cache.get_or_build("layer-alone", key, build) / f"layer{suffix}",
                                 trusted=model.source.trusted, imports=model.source.imports)


def run_alone(target: Target, source: ModelSource, arrays: "list[np.ndarray]", cache: "ArtifactCache", *,
              options: Mapping[str, Any], load_options: Mapping[str, Any] | None) -> "np.ndarray":
    """``source`` (a :func:`layer_alone` model) converted with ``options`` and run on ``target`` with
    ``load_options``, fed ``arrays``; its one output.  An app's integer I/O is applied when the
    target declares one (full-integer models)."""
    import numpy as np

    from harness.check.steps import declared

    prepared = target.prepare(source, cache, options=dict(options))
    with target.load(prepared, options=load_options) as deployed:
        feed = _feed_by_name(deployed.signature().input_names(), arrays)
        hook = declared(target.name).integer_io
        integer_io = hook(target, deployed) if hook is not None else None
        got = deployed.predict(integer_io.encode(feed) if integer_io is not None else feed)
        got = integer_io.decode(got) if integer_io is not None else got
    return np.asarray(next(iter(got.values())))


#: the index ``i`` in a runtime's name of a layer-alone model's input ``in_<i>`` (``in_1``, ``serving_default_in_1:0``)
_OWN_INPUT = re.compile(r"(?:^|[^A-Za-z0-9])in_(\d+)(?::\d+)?$")


def _feed_by_name(names: "list[str]", arrays: "list[np.ndarray]") -> "dict[str, np.ndarray]":
    """The feed of a :func:`layer_alone` model: each runtime input name given the array of the ``in_<i>`` it
    names (a runtime may list them in another order: EfficientNet's squeeze-and-excite ``Multiply`` took the
    feature map where its (1, 1, C) gate was expected); names that say no index are fed in order."""
    indices = [_OWN_INPUT.search(name) for name in names]
    if all(indices) and sorted(int(m.group(1)) for m in indices if m) == list(range(len(arrays))):
        return {name: arrays[int(m.group(1))] for name, m in zip(names, indices) if m}
    return dict(zip(names, arrays))


#: a path's prepare options for a layer run alone, from the layer's inputs on the calibration set
#: (the arrays a full-integer conversion calibrates on)
OptionsFor = Callable[["list[np.ndarray]"], Mapping[str, Any]]


def measure_alone(target: Target, report: TargetReport, divergence: Divergence, model: LoadedModel,
                  inputs: "dict[str, np.ndarray]", cache: "ArtifactCache", tolerance: Tolerance, *,
                  options_for: OptionsFor, load_options: Mapping[str, Any] | None = None,
                  calibration: "dict[str, np.ndarray] | None" = None) -> None:
    """Run each suspect layer of ``divergence`` alone on ``target`` (see :func:`layer_alone`), fed the
    reference's inputs to it; fill its row's measured local error and ``measured_first_layer``.
    ``options_for`` gets the layer's inputs on ``calibration`` (default ``inputs``): the set the whole
    model's conversion calibrated on, so that a layer alone is quantised as it is in the model.
    A layer that cannot be cut out or run alone is said in the divergence's note (and its row keeps
    only the inferred attribution)."""
    from harness.check.steps import recorded

    if model.keras_model is None:
        return
    problems: list[str] = []
    for layer in suspects(divergence):
        with recorded(report, f"localise {divergence.path}: {layer} alone", severity="info") as caught:
            with IN_PROCESS_WORK:  # Keras in this process: one thread at a time (check runs targets side by side)
                arrays = layer_inputs(model, layer, inputs)
                source = layer_alone(model, layer, arrays, cache)
                alone = _keras_module(model.keras_model).models.load_model(str(source.path), compile=False)
                want = alone.predict(arrays[0] if len(arrays) == 1 else arrays, verbose=0)
                calibrated = arrays if calibration is None else layer_inputs(model, layer, calibration)
            with on_behalf_of("layers run alone"):  # counted apart from the paths' own loads and builds
                got = run_alone(target, source, arrays, cache, options=options_for(calibrated),
                                load_options=load_options)
            measured = _layer_error(layer, "", got, want, tolerance)
            index = next(i for i, row in enumerate(divergence.layers) if row.layer == layer)
            divergence.layers[index] = replace(divergence.layers[index], local_max_abs=measured.max_abs,
                                               local_passes=measured.passes)
            divergence.measured.append(layer)
        if caught:
            problems.append(layer)
    for row in divergence.layers:
        if row.local_passes is False:
            divergence.measured_first_layer = row.layer
            break
    if problems:
        divergence.note = " ".join(filter(None, [divergence.note, f"not run alone (see the findings): {', '.join(problems)}"]))


def localise_path(target: Target, report: TargetReport, model: LoadedModel, inputs: "dict[str, np.ndarray]",
                  cache: "ArtifactCache", label: str, path: str, tensors: list[list[Any]], outputs: list[Any], *,
                  options_for: OptionsFor, load_options: Mapping[str, Any] | None = None,
                  output_names: list[str] | None = None,
                  calibration: "dict[str, np.ndarray] | None" = None) -> Divergence:
    """The per-layer table of path ``label`` from the converted model's intermediate ``tensors``
    (``[name, value]`` in execution order, read by the target on ``inputs``) and its ``outputs``
    (their tensor names ``output_names`` when the runtime has them);
    the suspect layers then run alone (:func:`measure_alone`).  Kept in ``report.localised``; the
    first table that names a first layer is ``report.divergence``."""
    keras_model = model.keras_model
    reference = layer_outputs(model, inputs)
    shapes = {name: tuple(value.shape) for name, value in reference.items()}
    output_layers = [t._keras_history[0].name for t in keras_model.outputs]  # noqa: SLF001
    mapped = map_to_layers(tensors, shapes, keras_model.name, output_layers, outputs, output_names)
    order = [layer.name for layer in keras_model.layers]
    divergence = localise(label, order, reference, mapped, inbound_layers(model), tolerance_for(path))
    measure_alone(target, report, divergence, model, inputs, cache, tolerance_for(path), options_for=options_for,
                  load_options=load_options, calibration=calibration)
    report.localised.append(divergence)
    if report.divergence is None or (divergence.first_layer and not report.divergence.first_layer):
        report.divergence = divergence
    return divergence


def layer_scoped(names: list[str], layers: set[str], model_name: str, last: int = 3) -> list[str]:
    """The converter tensor names among ``names`` (in graph order) that belong to one of ``layers``,
    the ``last`` of each layer only (its output is among them: the table takes the last of the
    layer's output shape), so that a runtime copies a few tensors per layer, not every one."""
    per_layer: dict[str, list[str]] = {}
    for name in names:
        layer = _layer_in_name(name, layers, model_name)
        if layer is not None:
            per_layer.setdefault(layer, []).append(name)
    kept = {name for scoped in per_layer.values() for name in scoped[-last:]}
    return [name for name in names if name in kept]


def localisable(report: TargetReport, model: LoadedModel) -> bool:
    """Whether a divergence of ``model`` can be localised (it has Keras layers); if not, an info says so."""
    if model.keras_model is not None:
        return True
    from harness.check.report import Finding

    report.add(Finding("info", "divergence not localised: a SavedModel has no Keras layers to compare with",
                       "pitfalls check", "static", step="localise"))
    return False


# ------------------------------------------------------------------------------------ unsupported ops

def _layer_of_op(name: str, layers: set[str], model_name: str) -> str | None:
    """The Keras layer an op name's scope names (``model_1/dense_1/MatMul``, or inside a nested
    function ``dense/MatMul``)."""
    found = _layer_in_name(name, layers, model_name)
    if found is not None:
        return found
    for component in name.split("/")[:-1]:
        stripped = re.sub(r"_\d+$", "", component)
        for candidate in (component, stripped):
            if candidate in layers:
                return candidate
    return None


def op_locations(model: LoadedModel) -> dict[str, list[tuple[str, str]]]:
    """Op type -> the (Keras layer or "", tf.function) pairs that hold it, from the model's concrete
    function graph traced by TensorFlow (a Keras model: ``tf.function(model)`` on its input specs; a
    SavedModel: its serving function), the functions it calls included (loops, calls)."""
    with IN_PROCESS_WORK:  # a trace in this process: one thread at a time (check runs targets side by side)
        return _op_locations(model)


def _op_locations(model: LoadedModel) -> dict[str, list[tuple[str, str]]]:
    import tensorflow as tf

    keras_model = model.keras_model
    if keras_model is not None:
        specs = [tf.TensorSpec(t.shape, t.dtype) for t in keras_model.inputs]

        def call(*xs: Any) -> Any:
            return keras_model(list(xs) if len(xs) > 1 else xs[0], training=False)

        concrete = tf.function(call).get_concrete_function(*specs)
        layers = {layer.name for layer in keras_model.layers}
        model_name = str(keras_model.name)
    elif model.signature_fn is not None:
        concrete, layers, model_name = model.signature_fn, set(), ""
    else:
        return {}
    graph = concrete.graph.as_graph_def()
    top = concrete.name.decode() if isinstance(concrete.name, bytes) else str(concrete.name)
    if keras_model is not None:
        top = f"{model_name}.call"  # the trace of the model's own call, not a function of the user's
    nodes = [(node.name, node.op, top) for node in graph.node]
    for function in graph.library.function:
        nodes += [(node.name, node.op, function.signature.name) for node in function.node_def]
    found: dict[str, list[tuple[str, str]]] = {}
    for name, op, function_name in nodes:
        where = (_layer_of_op(name, layers, model_name) or "", function_name)
        if where not in found.setdefault(op, []):
            found[op].append(where)
    return found


def where_ops_are(ops: list[str], locations: dict[str, list[tuple[str, str]]]) -> str:
    """``Softsign: layer hidden (tf.function __inference_call_12)``; an op the trace does not hold is said so."""
    parts: list[str] = []
    for op in ops:
        held = locations.get(op, [])
        layers = sorted({layer for layer, _ in held if layer})
        functions = sorted({function for _, function in held})
        if not held:
            parts.append(f"{op}: not in the model's traced graph (the converter's own lowering made it)")
        elif layers:
            parts.append(f"{op}: layer{'s' if len(layers) > 1 else ''} {', '.join(layers)} "
                         f"(tf.function {', '.join(functions)})")
        else:
            parts.append(f"{op}: tf.function {', '.join(functions)} (in no Keras layer's scope)")
    return "; ".join(parts)


def locate_unsupported_ops(report: TargetReport, model: LoadedModel, ops_in: Callable[[str], list[str]]) -> None:
    """Every finding whose runtime text names ops the converter cannot convert (``ops_in``, the
    target's parser) gets ``where``: the layers and functions of the model that hold them.  The text
    stays the runtime's own."""
    locations: dict[str, list[tuple[str, str]]] | None = None
    for index, finding in enumerate(report.findings):
        ops = ops_in(finding.text) if finding.verified == "runtime" else []
        if not ops:
            continue
        if locations is None:
            try:
                locations = op_locations(model)
            except Exception as exc:  # noqa: BLE001 - a model TensorFlow cannot trace: said, the check goes on
                report.findings[index] = replace(finding, where=f"not located: tracing the model failed ({exc})"[:500])
                return
        report.findings[index] = replace(finding, where=where_ops_are(ops, locations))


def diverging_inputs(report: TargetReport, label: str, ctx: "Context") -> "tuple[str, dict[str, np.ndarray]] | None":
    """Where path ``label`` diverged: ``("", the sample)`` when it did on the sample, else
    ``(" [<probe>]", that probe's inputs)`` for the first further probe that showed it; None when
    it did on none."""
    from harness.check.steps import diverged

    if diverged(report, label):
        return "", ctx.inputs
    for probe in ctx.probes:
        if diverged(report, f"{label} [{probe.name}]"):
            return f" [{probe.name}]", probe.inputs
    return None
