"""What ``pitfalls check`` tries on Core ML for a finding (see :mod:`harness.check.remedies`).

The conversion route that works today (a Keras 3 model as one traced tf.function concrete
function: coremltools' converter gives the verdict), and compute precision float32 where the
ML program's default float16 diverges — Core ML predicts on macOS only, so elsewhere that remedy
is not applicable, quoting coremltools' own refusal.
"""

from __future__ import annotations

from harness.check.remedies import Remedy, not_applicable, path_of, trial_path
from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.steps import Context, prepare_path
from harness.targets.base import Target

NAME = "coreml"

#: the lessons of a Keras 3 model coremltools does not convert as given (harness.targets.coreml.checks.RULES)
AS_GIVEN_REFUSED = ("mobile/model-conversion/saving-models/coreml",
                    "mobile/general-questions/entire-procedure-of-deployment/coreml")


def _concrete_function(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    if not (ctx.model.flavour == "keras3" and ctx.model.source.format == "keras"):
        return not_applicable(CONCRETE_FUNCTION, "the concrete-function route is for a Keras 3 .keras file")
    scratch = TargetReport(report.target)
    label = f"{NAME} concrete-function"
    prepared = prepare_path(target, scratch, ctx, label, {"route": "concrete-function"})
    if prepared is None:
        first = scratch.findings[0] if scratch.findings else None
        return RemedyTried(CONCRETE_FUNCTION.name, "does not work",
                           f"{first.source}: {first.text[:2000]}" if first else "no package", CONCRETE_FUNCTION.change)
    with target.load(prepared) as deployed:
        spec = deployed.signature()
    inputs = ", ".join(f"{t.name} {t.dtype}{list(t.shape)}" for t in spec.inputs)
    return RemedyTried(CONCRETE_FUNCTION.name, "works",
                       f"coremltools converted it: {prepared.artifact.name}, {prepared.sizes.get('artifact', 0) / 1e3:.1f} kB, "
                       f"inputs {inputs} (conversion only: Core ML predicts on macOS)", CONCRETE_FUNCTION.change)


def _float32(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    if finding.step != "parity":  # the prediction coremltools refused here: it would refuse this one alike
        return not_applicable(FLOAT32, f"prediction needs macOS: {finding.text[:1000]}")
    converted = any(key.startswith(f"{NAME} concrete-function.") for key in report.figures)
    route = {"route": "concrete-function"} if converted else {}
    return trial_path(FLOAT32, target, ctx, f"{NAME} float32", {**route, "compute_precision": "float32"})


def _diverged_or_unchecked(finding: Finding) -> bool:
    """A Core ML path whose outputs diverged, or whose prediction could not run here (off macOS)."""
    return (finding.step == "parity" and path_of(finding).startswith(NAME)) or \
        ("Model prediction is only supported on macOS" in finding.text and not finding.step.startswith("localise"))


CONCRETE_FUNCTION = Remedy(
    "concrete-function route", "convert `[tf.function(model).get_concrete_function(spec)]` (tf.saved_model.save "
    "of one traced function) instead of the Keras 3 model",
    "coremltools' converter on that SavedModel", _concrete_function, scenarios=AS_GIVEN_REFUSED,
    step=f"prepare {NAME}")
FLOAT32 = Remedy(
    "compute precision float32", "ct.convert(..., compute_precision=ct.precision.FLOAT32)",
    "Core ML's prediction compared with the reference (macOS only)", _float32, when=_diverged_or_unchecked,
    severities=("blocker", "warning", "info"))

REMEDIES: tuple[Remedy, ...] = (CONCRETE_FUNCTION, FLOAT32)
