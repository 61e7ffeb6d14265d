"""The pre-flight itself: the user's model through every target's deploy path, for real.

For each target: prepare (convert/export), load, read the deployed signature, predict on the
sample inputs, compare with the Keras/TensorFlow reference; every error a runtime raises becomes a
finding with its own text (matched to a catalog lesson where a rule knows it), and the check goes
on to the next step or path instead of stopping.  The paths a target adds (quantisation, device
profiles, backends, signature checks...) are declared by the target's package
(:class:`harness.check.steps.TargetChecks`); this module names no target.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.check.model import PROBES, hash_inputs, load_model, read_inputs, synthesise_inputs, synthesise_probes
from harness.check.report import CheckReport, Finding, TargetReport
from harness.check.stateful import fixed_batch_export
from harness.check.steps import Context, Probe, Progress, declared, finding_from, reference_or_none, run_declared
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
          calibration: str | Path | None = None) -> CheckReport:
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
    """
    from harness.artifacts import ArtifactCache

    say = progress or (lambda message: None)
    started = time.perf_counter()
    wanted = list(targets or TARGET_NAMES)
    unknown = [t for t in wanted if t not in TARGET_NAMES]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}: choose from {', '.join(TARGET_NAMES)}")
    probe_names = list(PROBES) if probes is None else list(probes)
    unknown = [p for p in probe_names if p not in PROBES]
    if unknown:
        raise UsageError(f"unknown probe(s) {', '.join(unknown)}: choose from {', '.join(PROBES)} (or none)")
    source = ModelSource.from_path(path, trusted=trust, imports=tuple(imports))
    if not trust:
        say(f"scanning {source.path} ({source.format}) for code it carries")
        concerns = model_concerns(source)
        if concerns and source.format != "saved_model":
            raise ModelRefused(source.path, concerns)
        if concerns:
            return _not_run(source, concerns, wanted, started)
    say(f"loading {source.path} ({source.format})")
    cache = cache or ArtifactCache()
    model, exported = fixed_batch_export(load_model(source), cache)
    report = CheckReport(model=model.describe(), inputs={}, created=_now(), trusted=trust)
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
        synthetic = synthesise_probes(model)
    except Exception as exc:  # noqa: BLE001 - the sample still runs; say which probes did not
        report.findings.append(finding_from("check", exc, "probes", severity="info"))
        synthetic = {}
    for name, probe_inputs in synthetic.items():
        if name in probe_names:
            further.append(Probe(name, probe_inputs, reference_or_none(model, probe_inputs)[0]))
    how["probes"] = {p.name: PROBES.get(p.name, "the file's arrays") for p in further}
    asked = default_profiles() if profiles is None else profiles
    ctx = Context(model, feed, reference, cache, _runnable(asked, say), say, probe,
                  tuple(further), calibration_set)
    for name in wanted:
        report.targets[name] = check_one(name, ctx, active)
    report.seconds = time.perf_counter() - started
    return report


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
    report = TargetReport(name)
    cls = target_class(name)
    reason = cls.unavailable_reason()
    if reason:
        report.verdict, report.reason = "skipped", reason
        ctx.say(f"{name}: skipped ({reason})")
        return report
    started = time.perf_counter()
    ctx.say(f"{name}: checking")
    try:
        with ExitStack() as stack:
            target = active.get(name) if active is not None else stack.enter_context(cls())
            report.versions = target.versions()
            run_declared(target, report, ctx, declared(name))
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a target's check never ends the whole check
        report.add(finding_from(name, exc, "check", severity="warning"))
    report.settle()
    report.seconds = time.perf_counter() - started
    ctx.say(f"{name}: {report.verdict} in {report.seconds:.1f}s ({len(report.findings)} findings)")
    return report
