"""Per-layer Core ML localisation through :mod:`harness.check.localise` (the mechanism LiteRT and
tf.js plug into).

Core ML keeps no intermediate tensors a caller can read, so the layers' outputs are made model
outputs: the user's Keras model cut into a multi-output Keras model (one output per layer, in
layer order; :func:`intermediates_source`), converted with coremltools like the path that
diverged (same route, same compute precision; :func:`intermediates_model`), its outputs read
back from the spec in the same order.  Core ML's prediction of that model is compared layer by
layer with the reference, then the suspect layers run alone (converted alike, fed the
reference's inputs to them).  The conversion runs everywhere; the prediction on macOS only:
elsewhere the localisation row quotes coremltools' own refusal from the real ``predict`` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.check.localise import _keras_module, diverging_inputs, localise_path
from harness.check.model import LoadedModel, digest_of
from harness.check.report import Finding, TargetReport
from harness.check.steps import Context, feed_for, recorded
from harness.errors import NotApplicable
from harness.targets.base import ModelSource, Prepared, Target

if TYPE_CHECKING:
    from harness.artifacts import ArtifactCache

NAME = "coreml"
#: the prefix of the localisation row that says it was not run (a test and the docs quote it)
NOT_RUN = "localisation not run on Core ML: the per-layer comparison needs Core ML's predictions"


def compared_layers(keras_model: Any) -> list[str]:
    """The layers whose outputs are compared: the top-level layers with one output, in order (as
    :func:`harness.check.model.layer_outputs` computes the reference)."""
    return [layer.name for layer in keras_model.layers
            if type(layer).__name__ != "InputLayer" and not isinstance(layer.output, (list, tuple))]


def intermediates_source(model: LoadedModel, cache: "ArtifactCache") -> ModelSource:
    """The user's Keras model with every compared layer's output as a model output (in layer
    order), saved in the cache with the user's model's trust (.keras for Keras 3, .h5 for tf_keras)."""
    keras_model = model.keras_model
    module = _keras_module(keras_model)
    suffix = saved_suffix(model)
    layers = compared_layers(keras_model)
    key = {"model": digest_of(model.source.path), "layers": layers, "module": module.__name__,
           "version": str(getattr(module, "__version__", ""))}

    def build(out: Path) -> None:
        outputs = [keras_model.get_layer(name).output for name in layers]
        module.Model(inputs=keras_model.inputs, outputs=outputs,
                     name=f"{keras_model.name}_layers").save(str(out / f"layers{suffix}"))

    return ModelSource.from_path(cache.get_or_build("coreml-intermediates", key, build) / f"layers{suffix}",
                                 trusted=model.source.trusted, imports=model.source.imports)


def saved_suffix(model: LoadedModel) -> str:
    """The file kind pitfalls saves a cut of ``model`` as (here and in
    :func:`harness.check.localise.layer_alone`): .keras for Keras 3, .h5 for tf_keras."""
    return ".keras" if _keras_module(model.keras_model).__name__ == "keras" else ".h5"


def conversion_options(suffix: str, precision: dict[str, Any]) -> dict[str, Any]:
    """Prepare options for a model pitfalls saved (intermediates, a layer alone): a Keras 3 .keras file
    goes the concrete-function route (coremltools reads no .keras file), with the path's precision."""
    return {**({"route": "concrete-function"} if suffix == ".keras" else {}), **precision}


def intermediates_model(target: Target, model: LoadedModel, cache: "ArtifactCache",
                        precision: dict[str, Any]) -> tuple[Prepared, list[str]]:
    """The multi-output model converted with coremltools (``precision``: the diverging path's
    ``compute_precision``, none for the default), and the layer each spec output holds, in order."""
    source = intermediates_source(model, cache)
    prepared = target.prepare(source, cache, options=conversion_options(source.path.suffix, precision))
    return prepared, compared_layers(model.keras_model)


def in_output_order(names: list[str]) -> list[str]:
    """The spec's output names in the order of the Keras outputs: the TensorFlow frontend names the
    ``i``-th output ``Identity_<i>`` (the first ``Identity``); other names keep the spec's order."""
    def index(name: str) -> int | None:
        if name == "Identity":
            return 0
        head, _, tail = name.rpartition("_")
        return int(tail) if head == "Identity" and tail.isdigit() else None

    indices = [index(name) for name in names]
    if None in indices or sorted(i for i in indices if i is not None) != list(range(len(names))):
        return names
    return [name for _, name in sorted(zip(indices, names))]


def batch_upper_bound(package: Path) -> int | None:
    """The largest batch every input of a converted model takes (its spec's range of dimension 0),
    None when no input declares a range."""
    from harness.targets.coreml.kit import spec_summary

    bounds = [int(f["ranges"][0][1]) for f in spec_summary(package)["inputs"] if f.get("ranges")]
    return min(bounds) if bounds and min(bounds) > 0 else None


def refusal_of(exc: BaseException) -> str:
    """coremltools' own text of a refused prediction (the cause our NotApplicable wraps)."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    return str(cause).strip()


def localise_coreml(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    """The per-layer Core ML table of the default path when it diverged (macOS only: elsewhere
    coremltools refuses to predict, so no Core ML path can diverge)."""
    model = ctx.model
    if prepared is None or model.keras_model is None:
        return
    found = diverging_inputs(report, NAME, ctx)
    if found is None:
        return  # Core ML predicted within tolerance: nothing to localise
    probe, inputs = found
    precision = {k: v for k, v in prepared.notes.items() if k == "compute_precision"}
    with recorded(report, f"localise {NAME}{probe}", severity="warning"):
        intermediates, layers = intermediates_model(target, model, ctx.cache, precision)
        report.figures[f"{NAME} intermediates.outputs"] = float(len(layers))
        rows = batch_upper_bound(intermediates.artifact)
        if rows is not None:  # the rows Core ML takes at once (1..2 where coremltools bounded a free batch itself)
            inputs = {name: value[:rows] for name, value in inputs.items()}
        with target.load(intermediates) as deployed:
            names = in_output_order([t.name for t in deployed.signature().outputs])
            try:
                got = deployed.predict(feed_for(deployed, ctx, inputs))
            except NotApplicable as exc:
                report.add(Finding("info", f"{NOT_RUN}, and coremltools refused them here (the {len(layers)}-output "
                                   f"model of the layers converted): {refusal_of(exc)[:500]}", "coremltools",
                                   "runtime", step=f"localise {NAME}"))
                return
        tensors = [[f"{model.keras_model.name}/{layer}", got[name]] for layer, name in zip(layers, names)]
        divergence = localise_path(target, report, model, inputs, ctx.cache, NAME + probe, "float32", tensors, [],
                                   options_for=lambda _arrays: conversion_options(saved_suffix(model), precision))
        if rows is not None:
            divergence.note = " ".join(filter(None, [divergence.note, f"localised on the first {rows} row(s): the "
                                                     f"converted models take batches of 1..{rows}"]))
