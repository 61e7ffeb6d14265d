"""What ``pitfalls check`` tries on TensorFlow.js, and the converter/loader texts it knows (see
harness.check.steps).

The graph model on every backend of the backend table that the check runs
(:func:`harness.targets.tfjs.backends.check_backends`), each compared on its own tolerance path
with first and warm predict times; for a tf_keras model, the layers format too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from harness.check.localise import diverging_inputs, layer_scoped, localisable, localise_path
from harness.check.report import TargetReport
from harness.check.rules import Rule
from harness.check.steps import (Context, Load, TargetChecks, deploy_and_compare, feed_for, planned_feeds, prepare_path,
                                 recorded, rows_fed)
from harness.targets.base import Deployment, ModelSource, Prepared, Target
from harness.targets.tfjs.backends import backend_named, check_backends
from harness.targets.tfjs.remedies import REMEDIES

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.targets.tfjs.target import TfjsDeployment

NAME = "tfjs"

#: rows the browser backends predict (the software WebGL and the cpu backend of a 224x224 CNN take
#: seconds per row; parity needs a few rows, not the whole sample)
BROWSER_ROWS = 2

RULES: tuple[Rule, ...] = (
    Rule(NAME, r"Unsupported Ops in the model before optimization",
         "browser/general-questions/limitations-of-frameworks",
         "Replace the listed ops with ones tf.js implements, or register custom kernels in the page."),
    Rule(NAME, r"Unknown layer: \w+",
         "browser/model-conversion/conversion-of-unsupported-models",
         "Port the custom layer to tf.js (registerClass) or convert to a graph model from the SavedModel."),
    Rule(NAME, r"An InputLayer should be passed either a `batchInputShape` or an `inputShape`",
         "browser/environment/avoiding-version-incompatibility",
         "tf.js 4.x cannot read a Keras 3 layers config: convert the SavedModel to a graph model, or use tf_keras."),
    Rule(NAME, r"Failed to parse model JSON",
         "browser/model-loading/selection-usage-of-apis",
         "Load a graph model with tf.loadGraphModel and a layers model with tf.loadLayersModel."),
)


def backend_loads(ctx: Context) -> Sequence[Load]:
    """One load per backend the check runs (the tf.js backend table: names, tolerance paths, probe rows)."""
    return tuple(Load(f"{NAME}@{backend.name}", {"backend": backend.name}, tolerance=backend.tolerance,
                      rows=BROWSER_ROWS, probe_rows=min(backend.probe_rows, BROWSER_ROWS), timings=True)
                 for backend in check_backends())


def backends_side_by_side(target: Target, prepared: Prepared,
                          fed: Sequence[tuple[Load, Context]]) -> AbstractContextManager[None]:
    """Every backend's page loads the model and predicts its feeds at once (each in its own page, one
    thing after the other there); the common path then collects each backend in turn."""
    from harness.targets.tfjs.target import TfjsDeployment, TfjsTarget

    assert isinstance(target, TfjsTarget)

    def plan(load: Load, ctx: Context) -> "Callable[[TfjsDeployment], Sequence[Mapping[str, np.ndarray]]]":
        return lambda deployed: planned_feeds(target, deployed, ctx, load.timings)

    return target.side_by_side(prepared, [(str((load.options or {})["backend"]), plan(load, ctx)) for load, ctx in fed])


def pages_early(target: Target, source: ModelSource, cache: "ArtifactCache", ready: Callable[[], bool]) -> None:
    """While the model loads for the reference: the graph model converted and a page per backend
    the check runs opened on it, the model loaded there (:meth:`TfjsTarget.open_early`)."""
    from harness.targets.tfjs.target import TfjsTarget

    assert isinstance(target, TfjsTarget)
    target.open_early(source, cache, [backend.name for backend in check_backends()], ready)


def layers_format(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    """A tf_keras model converted to the layers format, on the cpu backend (an alternative: warnings)."""
    if ctx.model.flavour != "tf_keras":
        return
    layers = prepare_path(target, report, ctx, f"{NAME} layers", {"format": "layers"}, severity="warning")
    if layers is not None:
        cpu = backend_named("cpu")
        deploy_and_compare(target, report, layers, rows_fed(ctx, BROWSER_ROWS, min(cpu.probe_rows, BROWSER_ROWS)),
                           f"{NAME} layers@cpu", load_options={"backend": cpu.name}, severity="warning")


def localise_divergence(target: Target, report: TargetReport, deployed: Deployment, ctx: Context) -> None:
    """A backend whose outputs diverged: the graph model's intermediate node tensors on that backend
    (``executeAsync`` with the nodes of each Keras layer's scope as outputs) against the Keras
    layers, then the suspect layers run alone, converted alike and run on the same backend."""
    backend = str(getattr(deployed, "backend"))
    label = f"{NAME}@{backend}"
    found = diverging_inputs(report, label, ctx)  # the sample, else the first probe that diverged
    if found is None or not localisable(report, ctx.model):
        return
    probe, inputs = found
    with recorded(report, f"localise {label}{probe}", severity="warning"):
        keras_model = ctx.model.keras_model
        layers = {layer.name for layer in keras_model.layers}
        nodes = layer_scoped([name for name, _op in getattr(deployed, "graph_nodes")()], layers, keras_model.name)
        feed = feed_for(deployed, ctx, inputs)
        got = getattr(deployed, "intermediates")(feed, nodes)
        outputs = list(deployed.predict(feed).values())
        localise_path(target, report, ctx.model, inputs, ctx.cache, label + probe, backend_named(backend).tolerance,
                      [[name, got[name]] for name in nodes if name in got], outputs,
                      options_for=lambda _arrays: {}, load_options={"backend": backend})


def unsupported_ops(text: str) -> list[str]:
    """The op types of the converter's "Unsupported Ops in the model before/after optimization" list."""
    listed = re.search(r"Unsupported Ops in the model (?:before|after) optimization\s*\n([^\n]+)", text)
    return [op.strip() for op in listed.group(1).split(",") if op.strip()] if listed else []


CHECKS = TargetChecks(rules=RULES, loads=backend_loads, paths=layers_format, after=localise_divergence,
                      unsupported_ops=unsupported_ops, remedies=REMEDIES, overlap=backends_side_by_side,
                      early=pages_early)
