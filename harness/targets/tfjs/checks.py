"""What ``pitfalls check`` tries on TensorFlow.js, and the converter/loader texts it knows (see
harness.check.steps).

The graph model on every backend of the backend table that the check runs
(:func:`harness.targets.tfjs.backends.check_backends`), each compared on its own tolerance path
with first and warm predict times; for a tf_keras model, the layers format too.
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.check.report import TargetReport
from harness.check.rules import Rule
from harness.check.steps import Context, Load, TargetChecks, deploy_and_compare, first_rows, prepare_path
from harness.targets.base import Prepared, Target
from harness.targets.tfjs.backends import check_backends
from harness.targets.tfjs.remedies import REMEDIES

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
    """One load per backend the check runs (the tf.js backend table: names and tolerance paths)."""
    return tuple(Load(f"{NAME}@{backend.name}", {"backend": backend.name}, tolerance=backend.tolerance,
                      rows=BROWSER_ROWS, timings=True) for backend in check_backends())


def layers_format(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    """A tf_keras model converted to the layers format, on the cpu backend (an alternative: warnings)."""
    if ctx.model.flavour != "tf_keras":
        return
    layers = prepare_path(target, report, ctx, f"{NAME} layers", {"format": "layers"}, severity="warning")
    if layers is not None:
        deploy_and_compare(target, report, layers, first_rows(ctx, BROWSER_ROWS), f"{NAME} layers@cpu",
                           load_options={"backend": "cpu"}, severity="warning")


CHECKS = TargetChecks(rules=RULES, loads=backend_loads, paths=layers_format, remedies=REMEDIES)
