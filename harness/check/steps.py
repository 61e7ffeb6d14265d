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

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from harness.check.model import LoadedModel, reference_outputs
from harness.check.report import Finding, RemedyTried, Severity, TargetReport
from harness.check.rules import Rule, rule_for
from harness.compare import Parity, is_classifier_output, non_finite, pair_outputs, parity, tolerance_for
from harness.counts import count
from harness.errors import HarnessError, NotApplicable, RuntimeFailure, UsageError
from harness.targets.base import Deployment, ModelSource, Prepared, Target

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache

Progress = Callable[[str], None]


@dataclass
class Context:
    """What every path of one check shares: the model, its sample inputs and reference outputs."""

    model: LoadedModel
    inputs: "dict[str, np.ndarray]"
    reference: "list[np.ndarray] | None"  # None when TensorFlow could not run the model itself
    cache: "ArtifactCache"
    profiles: tuple[str, ...]  # the device profiles asked for that can run here
    say: Progress
    probe: str = "synthesised"  # which inputs these are: "synthesised", "--inputs FILE"; findings name it
    probes: "tuple[Probe, ...]" = ()  # further probes every path is also fed (wide, edge, calibration)
    calibration: "dict[str, np.ndarray] | None" = None  # --calibration: the int8 representative set
    remedies: bool = True  # --remedies auto: try the target's remedies on its findings (none: False)


@dataclass(frozen=True)
class Probe:
    """A further set of inputs every path is fed besides the sample, with its own reference."""

    name: str  # "wide", "edge", "--calibration FILE"
    inputs: "dict[str, np.ndarray]"
    reference: "list[np.ndarray] | None"

    def rows(self, model: LoadedModel, rows: int) -> "Probe":
        inputs = {k: v[:rows] for k, v in self.inputs.items()}
        return Probe(f"{self.name}, first {rows} row{'s' if rows > 1 else ''}", inputs, reference_or_none(model, inputs)[0])


@dataclass(frozen=True)
class Load:
    """One way the common path loads, predicts and compares the prepared model."""

    label: str  # the name of the path in the report ("<target>", "<target>@<backend>")
    options: Mapping[str, Any] | None = None  # the target's load options
    tolerance: str = "float32"  # a key of harness.compare.TOLERANCES
    rows: int | None = None  # predict only the first rows of the sample (None: all)
    probe_rows: int | None = None  # predict only the first rows of each further probe (None: as ``rows``)
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
Overlap = Callable[[Target, Prepared, Sequence["tuple[Load, Context]"]], AbstractContextManager[None]]
Early = Callable[[Target, ModelSource, "ArtifactCache", Callable[[], bool]], None]


class RemedyDeclaration(Protocol):
    """What a target declares it tries for a finding: a :class:`harness.check.remedies.Remedy`."""

    @property
    def name(self) -> str: ...

    @property
    def change(self) -> str: ...

    @property
    def attempt(self) -> "Callable[[Target, TargetReport, Finding, Context], RemedyTried]": ...

    def applies(self, finding: Finding) -> bool: ...


@dataclass(frozen=True)
class TargetChecks:
    """What ``pitfalls check`` tries on one target; every field has a default (the common path only).

    The common path: ``notes`` (static findings) → prepare with no options (on failure ``fallback``,
    which may return another Prepared to go on with, or run its own path and return None) → for each
    of ``loads``: load, ``inspect`` the loaded model, predict and compare, ``after`` (more on the
    same loaded model) → ``paths`` (the extra paths; called with ``None`` when nothing prepared) →
    the ``remedies`` that apply to the findings, each tried on the model (unless ``--remedies none``).
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
    #: the op types a runtime text names as unsupported (converter refusals), to locate in the model
    unsupported_ops: Callable[[str], list[str]] | None = None
    #: what ``check`` tries on the user's model for the findings they apply to (harness.check.remedies)
    remedies: "tuple[RemedyDeclaration, ...]" = ()
    #: starts the work of several ``loads`` side by side before the common path goes through them one
    #: by one (a context manager around that loop; each load's context is the one it is fed): the
    #: loop's loads and predictions then collect what was started (:func:`planned_feeds`)
    overlap: Overlap | None = None
    #: after the sample's predict (alone: the first predict on the loaded model), send every further
    #: probe's at once (the deployment's ``start_predict``; its ``predict`` of the same feed collects it)
    probes_side_by_side: bool = False
    #: run by a target started side by side before its :class:`Context` is there, while the model
    #: loads for the reference: prepare the common path from the model file as given and start its
    #: loads (a served model, pages that load it), until the callable given says the check is ready
    #: for its paths; the target keeps what it started (or the error it met) and the common path's
    #: prepare and load of the same artifact take it (a model the check loads as another artifact,
    #: e.g. a fixed-batch export, starts anew)
    early: Early | None = None


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


#: the fix of a finding that is pitfalls' own error: never a verdict on the model
HARNESS_LIMITATION = ("a limitation of pitfalls check, not a verdict on the model: this path was not checked; "
                      "please report it with the model's shape (inputs, outputs, layers)")


def finding_from(target: str, exc: BaseException, step: str, *, severity: Severity = "blocker",
                 fix: str = "") -> Finding:
    text, source, runtime = _text_of(exc)
    if not runtime:  # our own error: says what was not checked, never blocks the model
        return Finding(severity="info" if severity == "info" else "warning", text=text.strip()[:4000],
                       source=source, verified="static", fix=HARNESS_LIMITATION, step=step)
    from harness.targets import TARGET_NAMES

    rule = rule_for(target, text) if target in TARGET_NAMES else None  # the model's own steps have no rules
    return Finding(severity=rule.severity if rule and severity == "blocker" else severity,
                   text=text.strip()[:4000], source=source, verified="runtime" if runtime else "static",
                   taxonomy=rule.taxonomy if rule else None, scenario=rule.scenario if rule else None,
                   fix=(rule.fix if rule else fix), step=step, quoted=target in TARGET_NAMES)


@contextmanager
def recorded(report: TargetReport, step: str, *, severity: Severity = "blocker") -> Iterator[list[BaseException]]:
    """Run a step; an exception becomes a finding (NotApplicable an info) and the check goes on."""
    caught: list[BaseException] = []
    started = time.perf_counter()
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
    finally:
        report.timings[step] = round(report.timings.get(step, 0.0) + time.perf_counter() - started, 3)


# ------------------------------------------------------------------------------------ steps

def feed_for(deployed: Deployment, ctx: Context, inputs: "dict[str, np.ndarray] | None" = None) -> "dict[str, np.ndarray]":
    """The sample inputs (or ``inputs``) keyed by the deployed model's input names (by name, else by position)."""
    names = deployed.signature().input_names()
    mine = [i.name for i in ctx.model.inputs]
    given = ctx.inputs if inputs is None else inputs
    if set(names) == set(mine):
        return {n: given[n] for n in names}
    if len(names) == len(mine):
        return {deployed_name: given[own] for deployed_name, own in zip(names, mine)}
    added = [n for n in names if n not in mine]
    raise HarnessError(f"the converted model takes inputs {names}, the model has {mine}: pitfalls check cannot "
                       f"feed {added} (the converter made them inputs; a lookup table's handle is one), so this "
                       "path was not run")


def outputs_in_order(got: "Mapping[str, np.ndarray]", deployed: Deployment, ctx: Context) -> "list[np.ndarray]":
    """The target's outputs in the order of the model's (``ctx.model.outputs``): paired by name,
    then by shape, then in the deployed signature's order (:func:`harness.compare.pair_outputs`)."""
    signed = deployed.signature().output_names()
    order = [n for n in signed if n in got] + [n for n in got if n not in signed]
    ordered = {n: got[n] for n in order}
    shapes = [tuple(r.shape) for r in ctx.reference] if ctx.reference is not None else []
    paired = pair_outputs(ordered, ctx.model.outputs, shapes) if len(shapes) == len(ctx.model.outputs) else None
    return [ordered[n] for n in paired] if paired is not None else list(ordered.values())


def compare_outputs(report: TargetReport, label: str, outputs: "list[np.ndarray]", ctx: Context,
                    path: str = "float32", severity: Severity = "blocker") -> Parity | None:
    """Parity of ``outputs`` with the reference, output by output (by name, in the model's order),
    each judged against the path's tolerance scaled by that output's own magnitude; a divergence,
    an overflow to inf/NaN or a classifier whose top-1 label moves is a finding naming the output
    and the probe.  ``report.parity[label]`` is the worst output's figures (``outputs``: each one's)."""
    import numpy as np

    if ctx.reference is None:
        report.add(Finding("info", "outputs not compared: TensorFlow could not run the model itself to give a "
                           "reference (see the model's findings)", label, "static", step="parity"))
        return None
    if len(outputs) != len(ctx.reference):
        report.add(Finding("blocker", f"{len(outputs)} outputs, the reference has {len(ctx.reference)}",
                           label, "runtime", step="parity"))
        return None
    tolerance = tolerance_for(path)
    probe = ctx.probe
    worst: Parity | None = None
    each: dict[str, Any] = {}
    for name, got, want in zip(ctx.model.outputs, outputs, ctx.reference):
        p = parity(got, want, on_shape_mismatch="inf")
        each[name] = p.to_json()
        if worst is None or _badness(p) > _badness(worst):
            worst = p
        which = f"output {name!r}" if len(outputs) > 1 else "outputs"
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if not p.shape_match:
            report.add(Finding("blocker", f"{which}: shape {list(p.shape)} differs from the reference's "
                               f"{list(want.shape)} (probe {probe})", label, "runtime", step="parity"))
            continue
        overflow = non_finite(got, want)
        if overflow:
            report.add(Finding(severity if path == "float32" else "warning",
                               f"{which} overflow: {overflow} of {got.size} values are inf or NaN where the reference "
                               f"is finite (largest reference magnitude {scale:.3g}; probe {probe})", label, "runtime",
                               step="parity", fix="a float16 or int8 path cannot hold these magnitudes: keep float32 "
                                                  "for this layer or scale the activations down"))
        elif not p.within(tolerance, scale):
            agreement = (f", top-1 agreement {p.label_agreement:.0%}"
                         if p.label_agreement is not None and is_classifier_output(want) else "")
            report.add(Finding(severity if path == "float32" else "warning",
                               f"{which} diverge from the reference: max |diff| {p.max_abs_diff:.3g} "
                               f"(tolerance {tolerance.atol:g} + {tolerance.rtol:g}*{scale:.3g} for {path}){agreement}; "
                               f"probe {probe}", label, "runtime", step="parity",
                               fix="see the divergence table for the first layer that fails"))
        elif is_classifier_output(want) and p.label_agreement is not None and p.label_agreement < 1.0:
            report.add(Finding("warning", f"{which}: the top-1 class differs on {1 - p.label_agreement:.0%} of the rows "
                               f"though values are within tolerance (max |diff| {p.max_abs_diff:.3g}; probe {probe})",
                               label, "runtime", step="parity", fix="compare the decisions your app makes, not only "
                               "the scores: near-ties flip between runtimes"))
    assert worst is not None  # at least one output: the reference always has one
    report.parity[label] = worst.to_json()
    if len(each) > 1:
        report.parity[label]["outputs"] = each
    return worst


def _badness(p: Parity) -> tuple[bool, bool, float]:
    """Order of outputs from the least to the most wrong: shape, then NaN, then max |diff|."""
    nan = math.isnan(p.max_abs_diff)
    return (not p.shape_match, nan, 0.0 if nan else p.max_abs_diff)


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
    """Predict the sample on a loaded model and compare it with the reference (see deploy_and_compare);
    then each further probe (``ctx.probes``), whose divergences are warnings naming the probe."""
    outputs: list[np.ndarray] | None = None
    report.figures.setdefault(f"{label}.inputs", float(len(deployed.signature().inputs)))
    feed = feed_for(deployed, ctx)
    hook = declared(target.name).integer_io
    integer_io = hook(target, deployed) if hook is not None else None
    if integer_io is not None:  # as an app does with a full-integer model: quantise, run, dequantise
        feed = integer_io.encode(feed)
    warm = f"{label}.warm_predict_s"
    # the warm predict timed: the first further probe's (fed anyway), else the sample's again
    warm_probe = ctx.probes[0] if timings and ctx.probes else None
    with recorded(report, f"predict {label}", severity=severity):
        started = time.perf_counter()
        got = predict_counted(deployed, feed)
        first = _predict_seconds(deployed, started)
        if integer_io is not None:
            got = integer_io.decode(got)
        outputs = outputs_in_order(got, deployed, ctx)
        if timings:
            report.figures[f"{label}.first_predict_s"] = round(first, 4)
            if warm_probe is None:
                started = time.perf_counter()
                predict_counted(deployed, feed)
                report.figures[warm] = round(_predict_seconds(deployed, started), 4)
                report.figures[f"{label}.warm_predict_rows"] = float(_rows_of(feed))
    if outputs is not None:
        p = compare_outputs(report, label, outputs, ctx, path, severity=severity)
        if label == report.target or report.max_abs_diff is None:
            report.max_abs_diff = p.max_abs_diff if p is not None and p.shape_match else report.max_abs_diff
    if outputs is not None and declared(target.name).probes_side_by_side:
        for probe in ctx.probes:
            try:
                probe_feed = feed_for(deployed, ctx, probe.inputs)
                getattr(deployed, "start_predict")(integer_io.encode(probe_feed) if integer_io is not None else probe_feed)
            except Exception:  # noqa: BLE001 - not sent ahead: the loop below meets the same error and records it
                pass
    for probe in ctx.probes if outputs is not None else ():  # a path that cannot predict the sample: said once
        probed: list[np.ndarray] | None = None
        with recorded(report, f"predict {label} [{probe.name}]", severity="warning"):
            probe_feed = feed_for(deployed, ctx, probe.inputs)
            started = time.perf_counter()
            got = predict_counted(deployed, integer_io.encode(probe_feed) if integer_io is not None else probe_feed)
            if probe is warm_probe:
                report.figures[warm] = round(_predict_seconds(deployed, started), 4)
                report.figures[f"{label}.warm_predict_rows"] = float(_rows_of(probe_feed))
            probed = outputs_in_order(integer_io.decode(got) if integer_io is not None else got, deployed, ctx)
        if probed is not None:
            compare_outputs(report, f"{label} [{probe.name}]", probed,
                            replace(ctx, inputs=probe.inputs, reference=probe.reference, probe=probe.name, probes=()),
                            path, severity="warning")
    return outputs


def _predict_seconds(deployed: Deployment, started: float) -> float:
    """The last predict's seconds: as the runtime timed it itself when it says (``predict_seconds``: a
    prediction started ahead, side by side with others, is timed where it ran), else since ``started``."""
    measured = getattr(deployed, "predict_seconds", None)
    return float(measured) if measured is not None else time.perf_counter() - started


def planned_feeds(target: Target, deployed: Deployment, ctx: Context, timings: bool) -> "list[dict[str, np.ndarray]]":
    """The feeds :func:`predict_and_compare` gives ``deployed`` on ``ctx``, in its order (the sample,
    the sample again when the warm predict has no probe to time, each probe): what a target that
    starts its predictions ahead (:attr:`TargetChecks.overlap`) queues.  A feed that cannot be made
    is left out (the path says why when it gets there)."""
    hook = declared(target.name).integer_io
    try:
        integer_io = hook(target, deployed) if hook is not None else None
        feeds = [feed_for(deployed, ctx)]
        if timings and not ctx.probes:
            feeds.append(feeds[0])
        feeds.extend(feed_for(deployed, ctx, probe.inputs) for probe in ctx.probes)
    except Exception:  # noqa: BLE001 - not planned; predict_and_compare meets the same error and records it
        return []
    return [integer_io.encode(feed) for feed in feeds] if integer_io is not None else feeds


def predict_counted(deployed: Deployment, feed: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
    """``deployed.predict(feed)``, counted: ``predictions`` and ``rows predicted`` (the costly part of a
    path on a slow runtime, which the counts tests pin)."""
    count("predictions")
    count("rows predicted", _rows_of(feed))
    return deployed.predict(feed)


def _rows_of(feed: "Mapping[str, np.ndarray]") -> int:
    """The rows of a feed: its first input's first dimension (1 for a scalar input)."""
    first = next(iter(feed.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim > 0 else 1


def first_rows(ctx: Context, rows: int = 1) -> Context:
    """The context cut to the sample's first ``rows`` (slow runtimes, batch-1 paths); its reference
    is the model run on exactly those rows (not the whole batch's reference sliced: a model whose
    output depends on the batch would show a divergence that is not there), its probes cut alike."""
    inputs = {k: v[:rows] for k, v in ctx.inputs.items()}
    return replace(ctx, inputs=inputs, reference=reference_or_none(ctx.model, inputs)[0],
                   probe=f"{ctx.probe}, first {rows} row{'s' if rows > 1 else ''}",
                   probes=tuple(probe.rows(ctx.model, rows) for probe in ctx.probes))


def rows_fed(ctx: Context, rows: int | None, probe_rows: int | None = None) -> Context:
    """The context of a path fed the sample's first ``rows`` (None: all) and each probe's first
    ``probe_rows`` (None: as many as the sample; fewer on a runtime that takes seconds per row)."""
    path_ctx = first_rows(ctx, rows) if rows is not None else ctx
    if probe_rows is None:
        return path_ctx
    return replace(path_ctx, probes=tuple(probe.rows(ctx.model, probe_rows) for probe in ctx.probes))


def reference_or_none(model: LoadedModel, inputs: "dict[str, np.ndarray]") -> "tuple[list[np.ndarray] | None, Finding | None]":
    """The reference on ``inputs``, or None and the finding that says why TensorFlow could not give it."""
    try:
        return reference_outputs(model, inputs), None
    except Exception as exc:  # noqa: BLE001 - the model's own run failing is a finding, not a crash
        text, source, runtime = _text_of(exc)
        return None, Finding("warning", f"the reference could not be computed: {text.strip()[:3000]}", source,
                             "runtime" if runtime else "static", step="reference",
                             fix="outputs are not compared on any path; check that the model runs with "
                                 "TensorFlow/Keras in a fresh process (saved functions, custom objects)")


def representative(ctx: Context) -> "np.ndarray | None":
    """The int8 representative set: the --calibration set, else the sample (one float input only)."""
    if len(ctx.model.inputs) != 1:
        return None
    return (ctx.calibration or ctx.inputs)[ctx.model.inputs[0].name]


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
        loads = checks.loads(ctx) if checks.loads is not None else (Load(name),)
        fed = [(load, rows_fed(ctx, load.rows, load.probe_rows)) for load in loads]
        ahead = checks.overlap is not None and len(fed) > 1
        overlap = checks.overlap(target, prepared, fed) if checks.overlap is not None and ahead else nullcontext()
        started = time.perf_counter()
        with overlap:
            if ahead:
                report.timings[f"ahead {name}"] = round(time.perf_counter() - started, 3)  # starting the loads' work
            for load, path_ctx in fed:
                run_load(target, report, prepared, ctx, load, checks, path_ctx)
    if checks.paths is not None:
        checks.paths(target, report, prepared, ctx)


def run_load(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, load: Load,
             checks: TargetChecks, path_ctx: Context | None = None) -> None:
    """One :class:`Load` of the common path: load once, inspect, predict and compare, ``after``
    (``path_ctx``: ``ctx`` as this load is fed, when already made)."""
    path_ctx = path_ctx or rows_fed(ctx, load.rows, load.probe_rows)
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
