"""The pre-flight itself: the user's model through every target's deploy path, for real.

For each target: prepare (convert/export), load, read the deployed signature, predict on the
sample inputs, compare with the Keras/TensorFlow reference; every error a runtime raises becomes a
finding with its own text (matched to a catalog lesson where a rule knows it), and the check goes
on to the next step or path instead of stopping.  The paths a target adds (quantisation, device
profiles, backends, signature checks...) are declared by the target's package
(:class:`harness.check.steps.TargetChecks`); this module names no target.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.check.localise import locate_unsupported_ops
from harness.check.model import PROBES, hash_inputs, load_model, read_inputs, synthesise_inputs, synthesise_probes
from harness.check.remedies import REMEDY_MODES, try_remedies
from harness.check.report import CheckReport, Finding, TargetReport
from harness.check.stateful import fixed_batch_export
from harness.check.steps import Context, Probe, Progress, declared, finding_from, reference_or_none, run_declared
from harness.counts import as_dict, counting
from harness.errors import UsageError
from harness.targets import TARGET_NAMES, target_class
from harness.targets.base import ModelSource, Target
from harness.trust import Concern, ModelRefused, model_concerns

if TYPE_CHECKING:
    from harness.artifacts import ArtifactCache



def default_profiles() -> tuple[str, ...]:
    """The device profiles asked for by default: those the declarations name (each keeps those it can run)."""
    return tuple(dict.fromkeys(p for name in TARGET_NAMES for p in declared(name).default_profiles))


def __getattr__(name: str) -> Any:
    """``DEFAULT_PROFILES``: :func:`default_profiles`, read when asked (the declarations import this package)."""
    if name == "DEFAULT_PROFILES":
        return default_profiles()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _stderr(message: str) -> None:
    print(f"check: {message}", file=sys.stderr, flush=True)


class ActiveTargets(Protocol):
    """Targets already active in this process (the pytest plugin's session pool): ``get(name)``."""

    def get(self, name: str) -> Target: ...


def check(path: str | Path, *, targets: Sequence[str] | None = None, inputs: str | Path | None = None,
          profiles: Sequence[str] | None = None, cache: "ArtifactCache | None" = None,
          imports: Sequence[str] = (), progress: Progress | None = _stderr,
          active: ActiveTargets | None = None, trust: bool = False, probes: Sequence[str] | None = None,
          calibration: str | Path | None = None, remedies: str = "auto") -> CheckReport:
    """Check the model at ``path`` on ``targets`` (default: all); see ``docs/check-schema.md``.

    Unless ``trust``, the model file is scanned first (:mod:`harness.trust`, nothing is loaded):
    a Keras file that carries Python code is refused (:class:`~harness.trust.ModelRefused`, a
    UsageError); a SavedModel with ops that touch the file system, the network or Python gets
    one finding per op and is not run (every target skipped, with the reason).

    ``active`` lends targets that are already running in this process (inside pytest, the
    session's: a second browser target would start a second sync Playwright, which Playwright
    refuses); without it each target is started and stopped here.

    Besides the sample (``inputs`` or synthesised), every path is fed the synthetic ``probes``
    (default: every one of :data:`~harness.check.model.PROBES`; ``()`` none) and the
    ``calibration`` set (an ``.npz`` like ``inputs``; also the representative set of quantisation),
    each compared with its own reference; a finding names the probe that showed it.  What the
    check cannot handle (inputs it cannot make, a model TensorFlow cannot run, its own error on a
    target) is a finding; the other targets still run.

    ``remedies`` ``auto`` tries, after each target's paths, the remedies it declares on the findings
    they apply to (:mod:`harness.check.remedies`); ``none`` tries none.
    """
    with counting() as tally:
        report = _check(path, targets=targets, inputs=inputs, profiles=profiles, cache=cache, imports=imports,
                        progress=progress, active=active, trust=trust, probes=probes, calibration=calibration,
                        remedies=remedies)
    report.counts = as_dict(tally)
    return report


def _check(path: str | Path, *, targets: Sequence[str] | None, inputs: str | Path | None,
           profiles: Sequence[str] | None, cache: "ArtifactCache | None", imports: Sequence[str],
           progress: Progress | None, active: ActiveTargets | None, trust: bool, probes: Sequence[str] | None,
           calibration: str | Path | None, remedies: str) -> CheckReport:
    say = progress or (lambda message: None)
    started = time.perf_counter()
    wanted = list(targets or TARGET_NAMES)
    unknown = [t for t in wanted if t not in TARGET_NAMES]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}: choose from {', '.join(TARGET_NAMES)}")
    if remedies not in REMEDY_MODES:
        raise UsageError(f"unknown --remedies {remedies!r}: choose from {', '.join(REMEDY_MODES)}")
    probe_names = list(PROBES) if probes is None else list(probes)
    unknown = [p for p in probe_names if p not in PROBES]
    if unknown:
        raise UsageError(f"unknown probe(s) {', '.join(unknown)}: choose from {', '.join(PROBES)} (or none)")
    check_jobs(len(wanted))  # a bad PITFALLS_CHECK_JOBS is said before anything is loaded
    source = ModelSource.from_path(path, trusted=trust, imports=tuple(imports))
    if not trust:
        say(f"scanning {source.path} ({source.format}) for code it carries")
        concerns = model_concerns(source)
        if concerns and source.format != "saved_model":
            raise ModelRefused(source.path, concerns)
        if concerns:
            return _not_run(source, concerns, wanted, started)
    from harness.artifacts import ArtifactCache

    cache = cache or ArtifactCache()
    with SideBySide(wanted, active, say, source, cache) as side:  # the targets start while the model loads
        return _check_model(source, side, wanted=wanted, inputs=inputs, profiles=profiles, cache=cache, say=say,
                            trust=trust, probe_names=probe_names, calibration=calibration, started=started,
                            remedies=remedies)


def _check_model(source: ModelSource, side: "SideBySide", *, wanted: list[str], inputs: str | Path | None,
                 profiles: Sequence[str] | None, cache: "ArtifactCache", say: Progress, trust: bool,
                 probe_names: list[str], calibration: str | Path | None, started: float,
                 remedies: str) -> CheckReport:
    from harness.artifacts import IN_PROCESS_WORK

    phases: dict[str, float] = {}
    say(f"loading {source.path} ({source.format})")
    with _phase(phases, "load model"):
        with IN_PROCESS_WORK:  # Keras in this process: one thread at a time (targets start early exports)
            loaded = load_model(source)
        model, exported = fixed_batch_export(loaded, cache)
    report = CheckReport(model=model.describe(), inputs={}, created=_now(), trusted=trust, timings=phases)
    report.findings.extend(model.notes + exported)
    probe = "synthesised"
    if inputs is not None:
        feed = read_inputs(Path(inputs), model)
        how: dict[str, Any] = {"file": str(Path(inputs).resolve())}
        probe = f"--inputs {Path(inputs).name}"
    else:
        try:
            feed = synthesise_inputs(model)
        except Exception as exc:  # noqa: BLE001 - an input this check cannot make yet: say so, run nothing
            report.findings.append(finding_from("check", exc, "inputs", severity="warning"))
            reason = "not run: pitfalls check cannot synthesise this model's inputs yet; pass --inputs FILE.npz"
            for name in wanted:
                report.targets[name] = TargetReport(name, verdict="skipped", reason=reason)
            report.seconds = time.perf_counter() - started
            return report
        how = {"synthesised": {i.name: i.kind for i in model.inputs}}
    how.update({"digest": hash_inputs(feed), "rows": int(next(iter(feed.values())).shape[0])})
    report.inputs = how
    with _phase(phases, "reference"):
        reference, failed = reference_or_none(model, feed)
    if failed is not None:
        report.findings.append(failed)
    further: list[Probe] = []
    calibration_set = None
    if calibration is not None:
        calibration_set = read_inputs(Path(calibration), model)
        further.append(Probe(f"--calibration {Path(calibration).name}", calibration_set,
                             reference_or_none(model, calibration_set)[0]))
        how["calibration"] = {"file": str(Path(calibration).resolve()), "digest": hash_inputs(calibration_set)}
    try:
        with _phase(phases, "probes"):
            synthetic = synthesise_probes(model)
    except Exception as exc:  # noqa: BLE001 - the sample still runs; say which probes did not
        report.findings.append(finding_from("check", exc, "probes", severity="info"))
        synthetic = {}
    for name, probe_inputs in synthetic.items():
        if name in probe_names:
            with _phase(phases, "reference"):
                further.append(Probe(name, probe_inputs, reference_or_none(model, probe_inputs)[0]))
    how["probes"] = {p.name: PROBES.get(p.name, "the file's arrays") for p in further}
    asked = default_profiles() if profiles is None else profiles
    ctx = Context(model, feed, reference, cache, _runnable(asked, say), say, probe,
                  tuple(further), calibration_set, remedies == "auto")
    with _phase(phases, "targets"):
        report.targets.update(side.run(ctx))
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the block took to ``phases[name]``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = round(phases.get(name, 0.0) + time.perf_counter() - started, 3)


#: how many targets a check runs side by side (1: one after the other); default: every target at once
JOBS_ENV = "PITFALLS_CHECK_JOBS"


def check_jobs(targets: int) -> int:
    """The targets run side by side: :data:`JOBS_ENV` if set, else all of them.

    Most of a target's time is spent in its runtime's own processes (a browser, a server, a worker,
    the converters), so they overlap well even on two cores; the work done in this
    process (the reference, in-process conversions) takes a lock and runs one at a time.
    """
    given = os.environ.get(JOBS_ENV, "").strip()
    if not given:
        return max(1, targets)
    if not given.isdigit() or int(given) < 1:
        raise UsageError(f"{JOBS_ENV}={given!r} is not a number of targets: give a whole number from 1 (one after the other)")
    return min(int(given), max(1, targets))


class SideBySide:
    """The targets of one check, started as soon as the model file has passed the trust scan.

    Targets the check starts itself run side by side, each in a thread of its own (:func:`check_jobs`)
    where it is started (:meth:`~harness.targets.base.Target.warm_up` too: a browser, a server
    process), used and stopped: their start overlaps the loading of the model and the reference.
    Each then waits for the :class:`Context` that :meth:`run` gives; a check that ends before (bad
    inputs) gives none, and they stop.  Targets lent by ``active`` were started in the caller's
    thread (a sync Playwright must stay in the thread that started it): they run one after the
    other in :meth:`run`, as with ``PITFALLS_CHECK_JOBS=1``.  Reports come in the order of
    ``wanted`` whatever order the targets finish in.
    """

    def __init__(self, wanted: Sequence[str], active: ActiveTargets | None, say: Progress,
                 source: ModelSource | None = None, cache: "ArtifactCache | None" = None) -> None:
        self.wanted = list(wanted)
        self.early = (source, cache) if source is not None and cache is not None else None
        self.active = active
        self.say = say
        self.jobs = check_jobs(len(self.wanted))
        self.context: Future[Context | None] = Future()
        self.pool: ThreadPoolExecutor | None = None
        self.futures: dict[str, Future[TargetReport | None]] = {}

    def __enter__(self) -> "SideBySide":
        if self.active is None and self.jobs > 1:
            self.pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="pitfalls-check")
            self.futures = {name: self.pool.submit(contextvars.copy_context().run, _check_one, name,
                                                   self.context.result, self.say, None, self._early(name))
                            for name in self.wanted}
        return self

    def _early(self, name: str) -> "Callable[[Target], None] | None":
        """What target ``name`` starts before its context is there (its declaration's ``early``, on the
        model file as given), until the check is ready for its paths."""
        hook = declared(name).early
        if hook is None or self.early is None:
            return None
        source, cache = self.early
        return lambda target: hook(target, source, cache, self.context.done)

    def run(self, ctx: Context) -> dict[str, TargetReport]:
        """Every target's report on ``ctx``."""
        if self.pool is None:
            return {name: check_one(name, ctx, self.active) for name in self.wanted}
        self.context.set_result(ctx)
        reports = {name: self.futures[name].result() for name in self.wanted}
        return {name: report for name, report in reports.items() if report is not None}

    def __exit__(self, *exc: object) -> None:
        if not self.context.done():
            self.context.set_result(None)  # the check ended before its targets ran: they stop
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _not_run(source: ModelSource, concerns: "list[Concern]", wanted: list[str], started: float) -> CheckReport:
    """The report of an untrusted SavedModel whose scan found denied ops: one finding per op, every
    target skipped (nothing loaded, converted or run)."""
    from harness.check.model import digest_of

    model: dict[str, Any] = {"path": str(source.path), "format": source.format, "flavour": "saved_model",
                             "digest": digest_of(source.path), "inputs": [], "outputs": [], "parameters": None, "layers": 0}
    report = CheckReport(model=model, inputs={}, created=_now(), trusted=False)
    for concern in concerns:
        report.findings.append(Finding("blocker", concern.describe(), "pitfalls trust scan of saved_model.pb",
                                       "static", fix="compute it with TensorFlow ops in the serving function, "
                                       "or pass --trust-model if you trust this file", step="scan"))
    reason = (f"not run: the SavedModel holds {len(concerns)} op(s) that touch the file system, the network or "
              "Python (see the model's findings); --trust-model runs it")
    for name in wanted:
        report.targets[name] = TargetReport(name, verdict="skipped", reason=reason)
    report.seconds = time.perf_counter() - started
    return report


def _runnable(profiles: Sequence[str], say: Progress) -> tuple[str, ...]:
    """The requested device profiles that can run here, as each declaring target keeps them (an
    unknown name is a UsageError; one a target cannot run here is left out and said)."""
    kept = tuple(profiles)
    for name in TARGET_NAMES:
        hook = declared(name).profiles
        if hook is not None:
            kept = hook(kept, say)
    return kept


def check_one(name: str, ctx: Context, active: ActiveTargets | None = None) -> TargetReport:
    """One target's report on ``ctx`` (started here, or lent by ``active``)."""
    report = _check_one(name, lambda: ctx, ctx.say, active)
    assert report is not None  # a context was given
    return report


def _check_one(name: str, context: Callable[[], Context | None], say: Progress,
               active: ActiveTargets | None, early: "Callable[[Target], None] | None" = None) -> TargetReport | None:
    """Start the target (and warm it up, and ``early``: what it starts before its context is there),
    wait for ``context()``, run its declared paths; None when the check gives no context (it ended
    before its targets ran).  The seconds waited for the context are the report's ``waiting``
    timing, not part of its ``seconds``; those of ``early`` are its ``early`` timing."""
    report = TargetReport(name)
    cls = target_class(name)
    reason = cls.unavailable_reason()
    if reason:
        if context() is None:
            return None
        report.verdict, report.reason = "skipped", reason
        say(f"{name}: skipped ({reason})")
        return report
    started = time.perf_counter()
    say(f"{name}: starting")
    ctx: Context | None = None
    with counting() as tally:
        try:
            with ExitStack() as stack:
                if active is not None:
                    target = active.get(name)
                else:
                    with _phase(report.timings, "start"):
                        target = stack.enter_context(cls())
                        target.warm_up()
                    if early is not None:
                        with _phase(report.timings, "early"):
                            early(target)
                with _phase(report.timings, "waiting"):
                    ctx = context()
                if ctx is None:
                    return None
                say(f"{name}: checking")
                report.versions = target.versions()
                checks = declared(name)
                run_declared(target, report, ctx, checks)
                if checks.unsupported_ops is not None:  # the layers that hold the ops a converter refused
                    locate_unsupported_ops(report, ctx.model, checks.unsupported_ops)
                try_remedies(target, report, ctx, checks.remedies)
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - a target's check never ends the whole check
            if ctx is None:
                with _phase(report.timings, "waiting"):
                    ctx = context()
                if ctx is None:
                    return None
            report.add(finding_from(name, exc, "check", severity="warning"))
    report.counts = as_dict(tally)
    report.settle()
    report.seconds = time.perf_counter() - started - report.timings.get("waiting", 0.0)
    say(f"{name}: {report.verdict} in {report.seconds:.1f}s ({len(report.findings)} findings)")
    return report
