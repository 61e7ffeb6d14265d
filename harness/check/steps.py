"""The steps a check path is made of, and the declaration through which a target names its paths.

``pitfalls check`` knows no target by name (:mod:`harness.check.run` only orchestrates).  Each
target package declares a :class:`TargetChecks` (``harness/targets/<name>/checks.py``, registered
in :mod:`harness.targets`): the rules that map its runtime's texts to catalog lessons, the ways the
common path loads the prepared model (:class:`Load`: label, load options, tolerance path, rows,
timings), what it inspects on a loaded model, what it falls back to when the conversion as given
fails, and its extra paths (quantisation, device profiles, backends, compression...).  The steps
below are the bricks those paths are built from: every exception a runtime raises inside
:func:`recorded` becomes a :class:`~harness.check.report.Finding` with the runtime's own text, and
the check goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness.check.model import LoadedModel
from harness.check.report import Finding, Severity, TargetReport
from harness.check.rules import Rule, rule_for
from harness.compare import Parity, parity, tolerance_for
from harness.errors import HarnessError, NotApplicable, RuntimeFailure, UsageError
from harness.targets.base import Deployment, Prepared, Target

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache

Progress = Callable[[str], None]


@dataclass
class Context:
    """What every path of one check shares: the model, its sample inputs and reference outputs."""

    model: LoadedModel
    inputs: "dict[str, np.ndarray]"
    reference: "list[np.ndarray]"
    cache: "ArtifactCache"
    profiles: tuple[str, ...]  # the device profiles asked for that can run here
    say: Progress


@dataclass(frozen=True)
class Load:
    """One way the common path loads, predicts and compares the prepared model."""

    label: str  # the name of the path in the report ("<target>", "<target>@<backend>")
    options: Mapping[str, Any] | None = None  # the target's load options
    tolerance: str = "float32"  # a key of harness.compare.TOLERANCES
    rows: int | None = None  # predict only the first rows of the sample (None: all)
    timings: bool = False  # record first and warm predict seconds
    time_load: bool = False  # record the seconds the load took


@dataclass(frozen=True)
class IntegerIO:
    """How an app feeds a model that takes or gives integers: quantise inputs, dequantise outputs."""

    encode: "Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]"
    decode: "Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]"


#: the hooks' signatures
Notes = Callable[[TargetReport, Context], None]
Fallback = Callable[[Target, TargetReport, Context], "Prepared | None"]
Inspect = Callable[[Target, TargetReport, Deployment, Context], None]
ExtraPaths = Callable[[Target, TargetReport, "Prepared | None", Context], None]
Loads = Callable[[Context], Sequence[Load]]
Profiles = Callable[[Sequence[str], Progress], tuple[str, ...]]


@dataclass(frozen=True)
class TargetChecks:
    """What ``pitfalls check`` tries on one target; every field has a default (the common path only).

    The common path: ``notes`` (static findings) → prepare with no options (on failure ``fallback``,
    which may return another Prepared to go on with, or run its own path and return None) → for each
    of ``loads``: load, ``inspect`` the loaded model, predict and compare, ``after`` (more on the
    same loaded model) → ``paths`` (the extra paths; called with ``None`` when nothing prepared).
    """

    rules: tuple[Rule, ...] = ()
    notes: Notes | None = None
    fallback: Fallback | None = None
    loads: Loads | None = None  # default: one Load labelled with the target's name
    inspect: Inspect | None = None
    after: Inspect | None = None
    integer_io: Callable[[Target, Deployment], IntegerIO | None] | None = None
    paths: ExtraPaths | None = None
    #: the requested device profiles this target can run here (unknown names: a UsageError)
    profiles: Profiles | None = None
    #: the device profiles ``check`` asks for when the user names none
    default_profiles: tuple[str, ...] = ()


COMMON_ONLY = TargetChecks()


def declared(name: str) -> TargetChecks:
    """The declaration of target ``name``; the common path only when it declares none."""
    from harness.targets import target_checks

    return target_checks(name) or COMMON_ONLY


# ------------------------------------------------------------------------------------ findings

def _text_of(exc: BaseException) -> tuple[str, str, bool]:
    """(text, source, from the runtime) of an exception met on a deploy path."""
    from harness.scenario import raised_by_project

    if isinstance(exc, RuntimeFailure):
        return exc.message, f"{exc.runtime} ({exc.source})" if exc.source else exc.runtime, True
    if not raised_by_project(exc):
        module = type(exc).__module__.split(".")[0]
        return f"{type(exc).__name__}: {exc}", f"raised in {module}", True
    return f"{type(exc).__name__}: {exc}", "pitfalls (a harness error, not a verdict on the model)", False


def finding_from(target: str, exc: BaseException, step: str, *, severity: Severity = "blocker",
                 fix: str = "") -> Finding:
    text, source, runtime = _text_of(exc)
    rule = rule_for(target, text)
    return Finding(severity=rule.severity if rule and severity == "blocker" else severity,
                   text=text.strip()[:4000], source=source, verified="runtime" if runtime else "static",
                   taxonomy=rule.taxonomy if rule else None, scenario=rule.scenario if rule else None,
                   fix=(rule.fix if rule else fix), step=step)


@contextmanager
def recorded(report: TargetReport, step: str, *, severity: Severity = "blocker") -> Iterator[list[BaseException]]:
    """Run a step; an exception becomes a finding (NotApplicable an info) and the check goes on."""
    caught: list[BaseException] = []
    try:
        yield caught
    except NotApplicable as exc:
        report.add(finding_from(report.target, exc, step, severity="info"))
        caught.append(exc)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        if isinstance(exc, UsageError):
            raise
        report.add(finding_from(report.target, exc, step, severity=severity))
        caught.append(exc)


# ------------------------------------------------------------------------------------ steps

def feed_for(deployed: Deployment, ctx: Context) -> "dict[str, np.ndarray]":
    """The sample inputs keyed by the deployed model's input names (by name, else by position)."""
    names = deployed.signature().input_names()
    mine = [i.name for i in ctx.model.inputs]
    if set(names) == set(mine):
        return {n: ctx.inputs[n] for n in names}
    if len(names) == len(mine):
        return {deployed_name: ctx.inputs[own] for deployed_name, own in zip(names, mine)}
    raise HarnessError(f"the deployed model takes inputs {names}, the model has {mine}")


def outputs_in_order(got: "Mapping[str, np.ndarray]", deployed: Deployment, ctx: Context) -> "list[np.ndarray]":
    names = list(got)
    if set(ctx.model.outputs) <= set(names):
        return [got[n] for n in ctx.model.outputs]
    order = [n for n in deployed.signature().output_names() if n in got] or names
    return [got[n] for n in order]


def compare_outputs(report: TargetReport, label: str, outputs: "list[np.ndarray]", ctx: Context,
                    path: str = "float32", severity: Severity = "blocker") -> Parity | None:
    """Parity of ``outputs`` with the reference; a divergence beyond the path's tolerance is a finding."""
    if len(outputs) != len(ctx.reference):
        report.add(Finding("blocker", f"{len(outputs)} outputs, the reference has {len(ctx.reference)}",
                           label, "runtime", step="parity"))
        return None
    worst: Parity | None = None
    for got, want in zip(outputs, ctx.reference):
        p = parity(got, want, on_shape_mismatch="inf")
        if worst is None or p.max_abs_diff > worst.max_abs_diff:
            worst = p
    assert worst is not None  # at least one output: the reference always has one
    report.parity[label] = worst.to_json()
    tolerance = tolerance_for(path)
    scale = max(float(abs(w).max()) for w in ctx.reference if w.size)
    if not worst.shape_match:
        report.add(Finding("blocker", f"output shape {list(worst.shape)} differs from the reference's "
                           f"{[list(w.shape) for w in ctx.reference]}", label, "runtime", step="parity"))
    elif not worst.within(tolerance, scale):
        report.add(Finding(severity if path == "float32" else "warning",
                           f"outputs diverge from the reference: max |diff| {worst.max_abs_diff:.3g} "
                           f"(tolerance {tolerance.atol:g} + {tolerance.rtol:g}*{scale:.3g} for {path}), "
                           f"label agreement {worst.label_agreement}", label, "runtime", step="parity",
                           fix="see the divergence table for the first layer that fails"))
    return worst


def prepare_path(target: Target, report: TargetReport, ctx: Context, label: str,
                 options: Mapping[str, Any] | None = None, *, severity: Severity = "blocker") -> Prepared | None:
    """Prepare (convert/export) for one path; its sizes become figures; a failure a finding."""
    with recorded(report, f"prepare {label}", severity=severity):
        prepared = target.prepare(ctx.model.source, ctx.cache, options=options)
        for name, value in prepared.sizes.items():
            report.figures[f"{label}.{name}_bytes" if not name.endswith("bytes") else f"{label}.{name}"] = float(value)
        return prepared
    return None


def deploy_and_compare(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, label: str,
                       *, path: str = "float32", load_options: Mapping[str, Any] | None = None,
                       timings: bool = False, severity: Severity = "blocker") -> "list[np.ndarray] | None":
    """Load, predict, compare; ``severity`` is that of a failure on this path (an alternative path
    that fails while the default one works is a warning, not a blocker)."""
    outputs: list[np.ndarray] | None = None
    with recorded(report, f"load {label}", severity=severity):
        with target.load(prepared, options=load_options) as deployed:
            outputs = predict_and_compare(target, report, deployed, ctx, label, path=path, timings=timings,
                                          severity=severity)
    return outputs


def predict_and_compare(target: Target, report: TargetReport, deployed: Deployment, ctx: Context, label: str,
                        *, path: str = "float32", timings: bool = False,
                        severity: Severity = "blocker") -> "list[np.ndarray] | None":
    """Predict the sample on a loaded model and compare it with the reference (see deploy_and_compare)."""
    outputs: list[np.ndarray] | None = None
    report.figures.setdefault(f"{label}.inputs", float(len(deployed.signature().inputs)))
    feed = feed_for(deployed, ctx)
    hook = declared(target.name).integer_io
    integer_io = hook(target, deployed) if hook is not None else None
    if integer_io is not None:  # as an app does with a full-integer model: quantise, run, dequantise
        feed = integer_io.encode(feed)
    with recorded(report, f"predict {label}", severity=severity):
        started = time.perf_counter()
        got = deployed.predict(feed)
        first = time.perf_counter() - started
        if integer_io is not None:
            got = integer_io.decode(got)
        outputs = outputs_in_order(got, deployed, ctx)
        if timings:
            started = time.perf_counter()
            deployed.predict(feed)
            report.figures[f"{label}.first_predict_s"] = round(first, 4)
            report.figures[f"{label}.warm_predict_s"] = round(time.perf_counter() - started, 4)
    if outputs is not None:
        p = compare_outputs(report, label, outputs, ctx, path, severity=severity)
        if label == report.target or report.max_abs_diff is None:
            report.max_abs_diff = p.max_abs_diff if p is not None and p.shape_match else report.max_abs_diff
    return outputs


def first_rows(ctx: Context, rows: int = 1) -> Context:
    """The context cut to the sample's first ``rows`` (slow runtimes, batch-1 paths)."""
    return replace(ctx, inputs={k: v[:rows] for k, v in ctx.inputs.items()}, reference=[r[:rows] for r in ctx.reference])


def representative(ctx: Context) -> "np.ndarray | None":
    """The sample of a single-input model (a representative set for quantisation), else None."""
    if len(ctx.model.inputs) != 1:
        return None
    return ctx.inputs[ctx.model.inputs[0].name]


def diverged(report: TargetReport, label: str) -> bool:
    """Whether the path ``label``'s outputs left their tolerance (compare_outputs said so)."""
    return any(f.step == "parity" and f.source == label for f in report.findings)


# ------------------------------------------------------------------------------------ the common path

def run_declared(target: Target, report: TargetReport, ctx: Context, checks: TargetChecks) -> None:
    """The common deploy path, then the target's declared extra paths (see :class:`TargetChecks`)."""
    name = report.target
    if checks.notes is not None:
        checks.notes(report, ctx)
    prepared = prepare_path(target, report, ctx, name)
    if prepared is None and checks.fallback is not None:
        prepared = checks.fallback(target, report, ctx)
    if prepared is not None:
        for load in (checks.loads(ctx) if checks.loads is not None else (Load(name),)):
            run_load(target, report, prepared, ctx, load, checks)
    if checks.paths is not None:
        checks.paths(target, report, prepared, ctx)


def run_load(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, load: Load,
             checks: TargetChecks) -> None:
    """One :class:`Load` of the common path: load once, inspect, predict and compare, ``after``."""
    path_ctx = first_rows(ctx, load.rows) if load.rows is not None else ctx
    started = time.perf_counter()
    with recorded(report, f"load {load.label}"):
        with target.load(prepared, options=load.options) as deployed:
            if load.time_load:
                report.figures[f"{load.label}.load_s"] = round(time.perf_counter() - started, 3)
            if checks.inspect is not None:
                checks.inspect(target, report, deployed, path_ctx)
            predict_and_compare(target, report, deployed, path_ctx, load.label, path=load.tolerance,
                                timings=load.timings)
            if checks.after is not None:
                checks.after(target, report, deployed, path_ctx)
