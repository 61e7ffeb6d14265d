"""Remedies tried on the user's model, each judged by the runtime after the change.

A target declares its remedies (``harness/targets/<name>/remedies.py``, registered through its
:class:`~harness.check.steps.TargetChecks`): each :class:`Remedy` says which findings it applies to
(by the lesson a rule named, by the runtime's text, by the step and the path), what it changes,
how its verdict is obtained, and an ``attempt`` that makes the change and asks the runtime.  After
a target's paths, :func:`try_remedies` tries every remedy that applies to a finding of that target
(a blocker or a warning) and attaches a :class:`~harness.check.report.RemedyTried` to the finding:
``works`` / ``does not work`` / ``not applicable`` with the runtime's text or figures as evidence.
Only a remedy whose verdict is ``works`` is called a fix.  This module names no target.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.rules import rule_for
from harness.check.steps import Context, RemedyDeclaration, _text_of, deploy_and_compare, prepare_path
from harness.compare import tolerance_for
from harness.errors import NotApplicable

if TYPE_CHECKING:
    from harness.targets.base import Prepared, Target

#: ``--remedies``: ``auto`` tries the remedies that apply to the findings, ``none`` tries none
REMEDY_MODES = ("auto", "none")

#: ``attempt(target, report, finding, ctx)``: make the change, ask the runtime, say what it said
Attempt = Callable[["Target", TargetReport, Finding, Context], RemedyTried]

#: the probe a finding's source names after the path's label (``"<label> [wide]"``)
_PROBE_SUFFIX = re.compile(r" \[[^\]]*\]$")


@dataclass(frozen=True)
class Remedy:
    """One remedy a target knows: the findings it applies to, the change, how the verdict is had.

    A finding is one the remedy applies to when every selector given matches it: ``scenarios``
    (the catalog lesson a rule named), ``pattern`` (searched in the runtime's text), ``step`` and
    ``source`` (full matches of the finding's step and source), ``when`` (any other test).  At
    least one selector must be given.
    """

    name: str
    change: str  # what it changes, in words
    verdict_by: str  # how the runtime gives the verdict, in words
    attempt: Attempt
    scenarios: tuple[str, ...] = ()
    pattern: str = ""
    step: str = ""
    source: str = ""
    when: Callable[[Finding], bool] | None = None
    severities: tuple[str, ...] = ("blocker", "warning")  # the findings worth a remedy

    def __post_init__(self) -> None:
        if not (self.scenarios or self.pattern or self.step or self.source or self.when):
            raise ValueError(f"remedy {self.name!r} names no finding it applies to")

    def applies(self, finding: Finding) -> bool:
        if finding.severity not in self.severities:
            return False
        return ((not self.scenarios or finding.scenario in self.scenarios)
                and (not self.pattern or re.search(self.pattern, finding.text, flags=re.DOTALL) is not None)
                and (not self.step or re.fullmatch(self.step, finding.step) is not None)
                and (not self.source or re.fullmatch(self.source, path_of(finding)) is not None)
                and (self.when is None or self.when(finding)))


def path_of(finding: Finding) -> str:
    """The path a finding is about: its source without the probe (``"<label> [wide]"`` -> ``"<label>"``)."""
    return _PROBE_SUFFIX.sub("", finding.source)


def try_remedies(target: "Target", report: TargetReport, ctx: Context,
                 remedies: "tuple[RemedyDeclaration, ...]") -> None:
    """Try each remedy that applies to a finding of ``report``; attach what the runtime said.

    One attempt per remedy and path (the sample's finding and the probes' findings on the same
    path share it); a remedy's own failure is its verdict, never the end of the check.
    """
    if not ctx.remedies or not remedies:
        return
    tried: dict[tuple[str, str, str], RemedyTried] = {}
    for index, finding in enumerate(list(report.findings)):
        results: list[RemedyTried] = []
        for remedy in remedies:
            if not remedy.applies(finding):
                continue
            key = (remedy.name, _PROBE_SUFFIX.sub("", finding.step), path_of(finding))
            if key not in tried:
                what = f"parity of {path_of(finding)}" if finding.step == "parity" else finding.step
                ctx.say(f"{report.target}: trying {remedy.name} for {what}")
                tried[key] = _with_lesson(report.target, _attempt(remedy, target, report, finding, ctx))
                ctx.say(f"{report.target}: {remedy.name}: {tried[key].verdict}")
            results.append(tried[key])
        if results:
            report.findings[index] = replace(finding, remedies=tuple(results))


def _with_lesson(target: str, result: RemedyTried) -> RemedyTried:
    """``result`` with the catalog lesson its evidence matches (e.g. a runtime that refuses what the
    remedy made teaches a lesson of its own: an interpreter built without the Flex delegate)."""
    if result.verdict != "does not work":
        return result
    rule = rule_for(target, result.evidence)
    return replace(result, scenario=rule.scenario) if rule is not None else result


def _attempt(remedy: "RemedyDeclaration", target: "Target", report: TargetReport, finding: Finding,
             ctx: Context) -> RemedyTried:
    """The remedy's verdict; what it raises is its verdict too (the runtime's text: does not work;
    pitfalls' own error, a usage error included, since the user asked for no remedy by name: not applicable)."""
    from harness.counts import on_behalf_of

    try:
        with on_behalf_of("remedies"):  # its loads and builds are counted apart from the paths' own
            return remedy.attempt(target, report, finding, ctx)
    except NotApplicable as exc:
        return RemedyTried(remedy.name, "not applicable", str(exc), remedy.change)
    except Exception as exc:  # noqa: BLE001 - a remedy that raises is a verdict, not a crash
        text, source, runtime = _text_of(exc)
        if runtime:
            return RemedyTried(remedy.name, "does not work", f"{source}: {text.strip()[:2000]}", remedy.change)
        return RemedyTried(remedy.name, "not applicable",
                           f"pitfalls could not try it (its own error, not a verdict): {text.strip()[:1000]}",
                           remedy.change)


def not_applicable(remedy: Remedy, why: str) -> RemedyTried:
    """The verdict of a remedy that cannot be tried here, with the reason."""
    return RemedyTried(remedy.name, "not applicable", why, remedy.change)


def verdict_of_path(remedy: Remedy, trial: TargetReport, label: str, path: str = "float32",
                    change: str = "") -> RemedyTried:
    """The verdict of a path run on a scratch report: works when it prepared, loaded, predicted and
    stayed within the path's tolerance; else does not work, quoting the first problem the runtime showed."""
    problems = [f for f in trial.findings if f.severity in ("blocker", "warning")]
    change = change or remedy.change
    if problems:
        first = problems[0]
        if first.verified != "runtime":
            return RemedyTried(remedy.name, "not applicable",
                               f"pitfalls could not try it ({first.step}): {first.text[:1000]}", change)
        where = f"{first.step} ({first.source})" if first.step == "parity" else first.step
        return RemedyTried(remedy.name, "does not work", f"{where}: {first.text[:2000]}", change)
    parity = trial.parity.get(label)
    unavailable = [f for f in trial.findings if f.severity == "info"]
    if parity is None and unavailable:  # the runtime cannot run the path here (Core ML prediction off macOS)
        return RemedyTried(remedy.name, "not applicable", f"{unavailable[0].step}: {unavailable[0].text[:1000]}",
                           change)
    if parity is None:
        return RemedyTried(remedy.name, "does not work", f"{label}: no outputs to compare", change)
    return RemedyTried(remedy.name, "works", describe_parity(label, parity, path, trial.figures), change)


def describe_parity(label: str, parity: dict[str, Any], path: str, figures: dict[str, float] | None = None) -> str:
    """``"<label>: max |diff| 3.1e-07 within the float32 tolerance (atol ..., rtol ...); 2.7 kB"``."""
    tolerance = tolerance_for(path)
    size = [v for k, v in (figures or {}).items() if k.startswith(f"{label}.") and k.endswith("bytes")]
    shown = f"; {size[0] / 1e3:.1f} kB" if size else ""
    return (f"{label}: max |diff| {parity['max_abs_diff']:.3g} against the reference, within the {path} tolerance "
            f"(atol {tolerance.atol:g}, rtol {tolerance.rtol:g}){shown}")


def trial_path(remedy: Remedy, target: "Target", ctx: Context, label: str, options: dict[str, Any], *,
               path: str = "float32", load_options: dict[str, Any] | None = None,
               prepared: "Prepared | None" = None) -> RemedyTried:
    """Prepare ``options`` (or take ``prepared``), load, predict the sample and compare, all on a
    scratch report; the verdict is what the runtime showed (see :func:`verdict_of_path`)."""
    trial = TargetReport(target.name)
    sample_only = replace(ctx, probes=())
    made = prepared if prepared is not None else prepare_path(target, trial, sample_only, label, options)
    if made is not None:
        deploy_and_compare(target, trial, made, sample_only, label, path=path, load_options=load_options)
    return verdict_of_path(remedy, trial, label, path)


def path_result(remedy: Remedy, report: TargetReport, label: str, path: str = "float32") -> RemedyTried | None:
    """The verdict of a path this check already ran on the runtime (``label``), or None when it did not
    run: works when it compared within tolerance and no blocker or warning names it."""
    if label not in report.parity:
        return None
    problems = [f for f in report.findings if f.severity in ("blocker", "warning")
                and (path_of(f) == label or re.search(rf" {re.escape(label)}( \[.*\])?$", f.step))]
    if problems:
        return RemedyTried(remedy.name, "does not work", f"{problems[0].step} ({problems[0].source}): "
                           f"{problems[0].text[:2000]}", remedy.change)
    return RemedyTried(remedy.name, "works", describe_parity(label, report.parity[label], path, report.figures)
                       + " (run by this check on the same sample)", remedy.change)
