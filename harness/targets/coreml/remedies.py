"""What ``pitfalls check`` tries on Core ML for a finding (see :mod:`harness.check.remedies`).

The conversion route that works today (a Keras 3 model as one traced tf.function concrete
function: coremltools' converter gives the verdict), and compute precision float32 where the
ML program's default float16 diverges — Core ML predicts on macOS only, so elsewhere that remedy
is not applicable, quoting coremltools' own refusal; and an unknown dimension that coremltools
bounded at 2 by itself declared with ``ct.RangeDim(1, N)`` (verdict: the conversion warns no more
and the spec records N; on macOS Core ML predicts at batch 1 and N).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.check.remedies import Remedy, not_applicable, path_of, trial_path
from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.steps import Context, prepare_path
from harness.errors import NotApplicable
from harness.targets.base import Prepared, Target
from harness.targets.coreml.convert import FLEXIBLE_DEFAULTS

if TYPE_CHECKING:
    from harness.artifacts import ArtifactCache
    from harness.targets.base import ModelSource

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


def fed_sizes(ctx: Context, name: str) -> list[int]:
    """Per dimension, the largest size the check fed input ``name`` (the sample and every probe)."""
    arrays = [ctx.inputs.get(name), *(probe.inputs.get(name) for probe in ctx.probes)]
    shapes = [a.shape for a in arrays if a is not None]
    return [max(shape[d] for shape in shapes) for d in range(len(shapes[0]))] if shapes else []


def bounds_for(inputs: list[dict[str, Any]], ctx: Context) -> dict[str, list[int | None]]:
    """Input name -> per dimension the upper bound to declare (None: a fixed dimension kept as the
    spec has it): the largest size this check fed a flexible dimension, at least 2."""
    found: dict[str, list[int | None]] = {}
    for feature in inputs:
        ranges = feature.get("ranges") or []
        if not any(low != high for low, high in ranges):
            continue
        fed = fed_sizes(ctx, feature["name"])
        found[feature["name"]] = [max(2, fed[d] if d < len(fed) else 2) if low != high else None
                                  for d, (low, high) in enumerate(ranges)]
    return found


def convert_bounded(cache: "ArtifactCache", source: "ModelSource", route: dict[str, Any],
                    bounds: dict[str, list[int | None]], shapes: dict[str, list[int]]) -> tuple[Path, dict[str, Any]]:
    """The model converted with each flexible dimension of ``bounds`` declared ``ct.RangeDim(1, bound)``
    (default 1) and the others fixed at ``shapes`` (the spec's default shape), cached."""
    from harness.targets.coreml.convert import coreml_from_source

    def declared(ct: Any) -> list[Any]:
        return [ct.TensorType(name=name, shape=tuple(ct.RangeDim(1, bound, 1) if bound is not None else int(size)
                                                     for bound, size in zip(dims, shapes[name])))
                for name, dims in bounds.items()]

    return coreml_from_source(cache, source, route, inputs=declared, label=f"bounded {bounds}")


def _bounded(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    from harness.targets.coreml.convert import conversion_warnings
    from harness.targets.coreml.kit import package_bytes, spec_summary, weight_bytes

    scratch = TargetReport(report.target)
    converted = any(key.startswith(f"{NAME} concrete-function.") for key in report.figures)
    route = {"route": "concrete-function"} if converted else {}
    given = prepare_path(target, scratch, ctx, NAME, route)  # the conversion that warned (cached)
    if given is None:
        return not_applicable(BOUNDED, "the model as converted by this check could not be read again")
    inputs = spec_summary(given.artifact)["inputs"]
    bounds = bounds_for(inputs, ctx)
    if not bounds:
        return not_applicable(BOUNDED, "the spec records no flexible input dimension")
    shapes = {f["name"]: list(f["shape"]) for f in inputs}
    said = ", ".join(f"{name}: " + ", ".join(f"dim {d} 1..{b}" for d, b in enumerate(dims) if b is not None)
                     for name, dims in bounds.items())
    change = f"ct.convert(..., inputs=[ct.TensorType(shape=(ct.RangeDim(1, N), ...))]) with {said}"
    package, notes = convert_bounded(ctx.cache, ctx.model.source, route, bounds, shapes)
    still = [t for t in conversion_warnings(package) if re.search(FLEXIBLE_DEFAULTS, t)]
    if still:
        return RemedyTried(BOUNDED.name, "does not work", f"coremltools still warned: {still[0][:1000]}", change)
    recorded = {f["name"]: [high for _low, high in f.get("ranges") or []] for f in spec_summary(package)["inputs"]}
    wrong = [f"{name} dim {d}: spec upper bound {recorded.get(name, [])[d:d + 1]} for {b}"
             for name, dims in bounds.items() for d, b in enumerate(dims)
             if b is not None and recorded.get(name, [])[d:d + 1] != [b]]
    if wrong:
        return RemedyTried(BOUNDED.name, "does not work", "the spec does not record the bound: " + "; ".join(wrong), change)
    prepared = Prepared(target.name, ctx.model.source, package,
                        sizes={"artifact": package_bytes(package), "weights": weight_bytes(package)}, notes=notes)
    spec = "; ".join(f"{name} upper bounds {ups}" for name, ups in recorded.items())
    return _predicted_at_two_batches(target, prepared, ctx, bounds, change,
                                     f"coremltools converted it without the warning; the spec records {spec}")


def _predicted_at_two_batches(target: Target, prepared: Prepared, ctx: Context, bounds: dict[str, list[int | None]],
                              change: str, converted: str) -> RemedyTried:
    """macOS: Core ML predicts the sample's first row and the largest batch declared, each output
    with that many rows; elsewhere the conversion's verdict, with coremltools' refusal to predict."""
    import numpy as np

    largest = max((dims[0] for dims in bounds.values() if dims and dims[0] is not None), default=1)
    with target.load(prepared) as deployed:
        rows = []
        for batch in sorted({1, largest}):
            feed = {name: np.resize(value, (batch, *value.shape[1:])) for name, value in ctx.inputs.items()}
            try:
                got = deployed.predict({name: feed[name] for name in deployed.signature().input_names()})
            except NotApplicable as exc:
                cause = exc.__cause__ if exc.__cause__ is not None else exc
                return RemedyTried(BOUNDED.name, "works", f"{converted} (prediction at two batch sizes not run: "
                                   f"coremltools said: {str(cause).strip()[:300]})", change)
            sizes = {name: int(np.shape(value)[0]) if np.ndim(value) else 0 for name, value in got.items()}
            if any(size != batch for size in sizes.values()):
                return RemedyTried(BOUNDED.name, "does not work", f"{converted}, but a batch of {batch} gave "
                                   f"outputs of {sizes} rows", change)
            rows.append(batch)
    return RemedyTried(BOUNDED.name, "works", f"{converted}; Core ML predicted batches of {rows[0]} and {rows[-1]}", change)


CONCRETE_FUNCTION = Remedy(
    "concrete-function route", "convert `[tf.function(model).get_concrete_function(spec)]` (tf.saved_model.save "
    "of one traced function) instead of the Keras 3 model",
    "coremltools' converter on that SavedModel", _concrete_function, scenarios=AS_GIVEN_REFUSED,
    step=f"prepare {NAME}")
FLOAT32 = Remedy(
    "compute precision float32", "ct.convert(..., compute_precision=ct.precision.FLOAT32)",
    "Core ML's prediction compared with the reference (macOS only)", _float32, when=_diverged_or_unchecked,
    severities=("blocker", "warning", "info"))

BOUNDED = Remedy(
    "bounded flexible shapes", "ct.convert(..., inputs=[ct.TensorType(shape=(ct.RangeDim(1, N), ...))]), N the "
    "largest size this check fed the dimension", "coremltools' converter (no warning, the bound in the spec); "
    "Core ML's prediction at two batch sizes (macOS only)", _bounded, pattern=FLEXIBLE_DEFAULTS, step="prepare")

REMEDIES: tuple[Remedy, ...] = (CONCRETE_FUNCTION, FLOAT32, BOUNDED)
