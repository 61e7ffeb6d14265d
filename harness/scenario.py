"""Scenario records, expectations (symptoms and remedies) and the per-variant run context.

A scenario file under ``scenarios/`` declares one ``SCENARIO = Scenario(...)``: data plus two small
functions, ``faulty(run)`` and ``fixed(run)``.  Each function does the work on a real target and
either raises (the runtime's own error) or returns figures; the scenario's expectations judge the
outcome.  Nothing here imports a heavy library.
"""

from __future__ import annotations

import fnmatch
import json
import re
import traceback
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Literal, Mapping, Protocol, TypeVar, get_args

from harness.errors import HarnessError, NotApplicable, RuntimeFailure
from harness.paths import REPO_ROOT
from harness.versions import VersionRange, installed_versions, parse_ranges

if TYPE_CHECKING:
    from harness.artifacts import ArtifactCache
    from harness.targets.base import Target

VARIANTS: tuple[str, ...] = ("faulty", "fixed")
T = TypeVar("T")
TargetT = TypeVar("TargetT", bound="Target")


class Outcome(str, Enum):
    """What a variant did, as recorded in the results file."""

    REPRODUCED = "reproduced"  # faulty variant showed the symptom
    NOT_REPRODUCED = "not-reproduced"  # faulty variant did not show it
    WORKS = "works"  # fixed variant met its remedy expectation
    BROKEN = "broken"  # fixed variant did not
    SKIPPED = "skipped"  # runtime not available here (reason recorded)
    ERROR = "error"  # the harness itself failed
    NOT_APPLICABLE = "not-applicable"  # the installed versions lie outside the scenario's ``applies``


#: What a figure measures, declared by the scenario that records it (``Scenario(figures=...)``);
#: ``pitfalls diff`` and the matrix judge a move by it (docs/writing-scenarios.md, "Figures"):
#:
#: ``parity``      a difference to a reference (max |diff|, SQNR...): moves of 10x above float noise
#: ``size``        bytes, megabytes, size ratios: any difference (sizes are deterministic)
#: ``latency_ms``  a time in milliseconds, ``seconds`` a time in seconds: beyond the noise band
#: ``ratio``       a ratio of times (a slowdown, x over y): beyond the noise band, no direction
#: ``speedup``     a ratio or rate where higher is better (speedup, throughput): beyond the band
#: ``events``      answers, requests, errors counted under load or in a race: zero vs non-zero
#: ``exact``       counts, flags, accuracies: any difference
#: ``evidence``    a single sample kept for the reader (one timing after warm-up, no statistic): never
#:                 judged by its move, only by a bound the expectation puts on it
FigureClass = Literal["parity", "size", "latency_ms", "seconds", "ratio", "speedup", "events", "exact", "evidence"]
FIGURE_CLASSES: tuple[str, ...] = get_args(FigureClass)
#: A bound a scenario's expectation states on a figure: (figure name, operator, bound).
Bound = tuple[str, str, float]


class VariantFn(Protocol):
    def __call__(self, run: "Run[Any]") -> Mapping[str, float] | None: ...


# --------------------------------------------------------------------------------------------
# Evidence and expectations


@dataclass(frozen=True)
class ObservedError:
    """The error a variant met, as recorded: who raised it, its type, its exact text and how it reached us."""

    type: str
    runtime: str
    kind: str
    message: str
    source: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "runtime": self.runtime, "kind": self.kind, "message": self.message,
                "source": self.source}

    @classmethod
    def from_json(cls, data: Any) -> "ObservedError":
        if not isinstance(data, Mapping):
            raise ValueError(f"evidence.error is a {type(data).__name__}, not an object")
        return cls(**{name: str(data.get(name) or "") for name in ("type", "runtime", "kind", "message", "source")})


EVIDENCE_FIELDS = ("error", "figures", "notes", "texts", "versions", "figure_classes", "bounds")


@dataclass
class Evidence:
    """What a variant observed: the error it met, its figures, notes and runtime texts."""

    error: ObservedError | None = None
    figures: dict[str, float] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    texts: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    #: figure name -> its declared :data:`FigureClass`; None: written before figures declared classes
    figure_classes: dict[str, str] | None = None
    #: the bounds the variant's expectation states on figures; None: written before bounds were recorded
    bounds: list[Bound] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer writer added, kept as read

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values only: a note JSON cannot hold (a page may hand back a datetime) becomes its str()."""
        typed: dict[str, Any] = {}
        if self.figure_classes is not None:
            typed["figure_classes"] = dict(self.figure_classes)
        if self.bounds is not None:
            typed["bounds"] = [{"figure": name, "op": op, "bound": bound} for name, op, bound in self.bounds]
        return {"error": self.error.to_json() if self.error else None, "figures": dict(self.figures),
                "notes": json.loads(json.dumps(self.notes, default=str)), "texts": list(self.texts),
                "versions": dict(self.versions), **typed, **json.loads(json.dumps(self.extra, default=str))}

    @classmethod
    def from_json(cls, data: Any) -> "Evidence":
        """The inverse of :meth:`to_json`; a missing part is empty, a malformed one raises ValueError."""
        if not isinstance(data, Mapping):
            raise ValueError(f"evidence is a {type(data).__name__}, not an object")
        figures, notes = data.get("figures") or {}, data.get("notes") or {}
        texts, versions = data.get("texts") or [], data.get("versions") or {}
        if not isinstance(figures, Mapping) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in figures.values()):
            raise ValueError("evidence.figures is not an object of numbers")
        if not isinstance(notes, Mapping) or not isinstance(versions, Mapping):
            raise ValueError("evidence.notes and evidence.versions must be objects")
        if not isinstance(texts, list):
            raise ValueError("evidence.texts is not a list")
        error = data.get("error")
        return cls(error=ObservedError.from_json(error) if error else None,
                   figures={str(k): float(v) for k, v in figures.items()}, notes=dict(notes),
                   texts=[str(t) for t in texts], versions={str(k): str(v) for k, v in versions.items()},
                   figure_classes=_classes_from_json(data.get("figure_classes")),
                   bounds=_bounds_from_json(data.get("bounds")),
                   extra={k: v for k, v in data.items() if k not in EVIDENCE_FIELDS})


def _classes_from_json(data: Any) -> dict[str, str] | None:
    if data is None:
        return None
    if not isinstance(data, Mapping) or not all(v in FIGURE_CLASSES for v in data.values()):
        raise ValueError(f"evidence.figure_classes is not an object of figure classes ({', '.join(FIGURE_CLASSES)})")
    return {str(k): str(v) for k, v in data.items()}


def _bounds_from_json(data: Any) -> list[Bound] | None:
    if data is None:
        return None
    try:
        found = [(str(b["figure"]), str(b["op"]), float(b["bound"])) for b in data]
    except (TypeError, KeyError, ValueError):
        raise ValueError("evidence.bounds is not a list of {figure, op, bound} objects") from None
    if any(op not in _OPS for _, op, _ in found):
        raise ValueError(f"evidence.bounds has an operator that is not one of {', '.join(_OPS)}")
    return found


def _innermost_file(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    return frames[-1].filename if frames else ""


def raised_by_project(exc: BaseException) -> bool:
    """True when ``exc`` was raised by this project's own code rather than a third-party runtime.

    :class:`RuntimeFailure` is the one sanctioned conduit for runtime text that reaches us
    indirectly (a subprocess, a page, an HTTP body); any other exception counts as the runtime's
    only when its innermost frame lies outside this repository (site-packages, the TF C++ bridge).
    """
    if isinstance(exc, RuntimeFailure):
        return False
    if isinstance(exc, (HarnessError, AssertionError)):
        return True
    origin = _innermost_file(exc)
    if not origin:
        return True
    path = Path(origin).resolve()
    try:
        rel = path.relative_to(REPO_ROOT)
    except ValueError:
        return False
    return not str(rel).startswith(".venv")


def describe_error(exc: BaseException) -> ObservedError:
    if isinstance(exc, RuntimeFailure):
        return ObservedError(type=type(exc).__name__, runtime=exc.runtime, kind=exc.kind, message=exc.message,
                             source=exc.source)
    return ObservedError(type=f"{type(exc).__module__}.{type(exc).__qualname__}", runtime="",
                         kind=type(exc).__name__, message=str(exc), source=f"raised at {_innermost_file(exc)}")


@dataclass(frozen=True)
class Verdict:
    ok: bool
    detail: str


@dataclass
class VariantResult:
    """The raw result of running one variant, before judging."""

    error: BaseException | None
    evidence: Evidence


class Expectation(ABC):
    """What a variant must show: a symptom for the faulty variant, a remedy for the fixed one."""

    @abstractmethod
    def judge(self, result: VariantResult) -> Verdict: ...

    @abstractmethod
    def describe(self) -> str: ...

    def ranges(self) -> tuple[VersionRange, ...]:
        """The version ranges this expectation reads (from ``evidence.versions``); none by default."""
        return ()

    def bounds(self) -> tuple[Bound, ...]:
        """The bounds this expectation states on figures (every case of a ``ByVersion``); none by default."""
        return ()


@dataclass(frozen=True)
class Raises(Expectation):
    """The runtime raised an error whose text matches ``match`` (a regular expression).

    The error must come from the runtime (see :func:`raised_by_project`); ``runtime``, when set,
    must be a substring of the :class:`RuntimeFailure`'s runtime name.
    """

    match: str
    runtime: str | None = None

    def judge(self, result: VariantResult) -> Verdict:
        exc = result.error
        if exc is None:
            return Verdict(False, f"expected an error matching {self.match!r}, but none was raised")
        if raised_by_project(exc):
            return Verdict(False, f"the error came from pitfalls' own code, not a runtime: {exc!r}")
        if self.runtime and not (isinstance(exc, RuntimeFailure) and self.runtime in exc.runtime):
            return Verdict(False, f"expected an error from runtime {self.runtime!r}, got {exc!r}")
        text = exc.message if isinstance(exc, RuntimeFailure) else str(exc)
        if re.search(self.match, text, flags=re.DOTALL):
            return Verdict(True, f"runtime error matched {self.match!r}")
        return Verdict(False, f"runtime error did not match {self.match!r}: {text[:2000]}")

    def describe(self) -> str:
        where = f" from {self.runtime}" if self.runtime else ""
        return f"raises{where} an error matching /{self.match}/"


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class Figure(Expectation):
    """A recorded figure compared with a bound, e.g. ``Figure("max_abs_diff", ">", 0.1)``."""

    name: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"Figure op must be one of {sorted(_OPS)}, not {self.op!r}")

    def judge(self, result: VariantResult) -> Verdict:
        if result.error is not None:
            return Verdict(False, f"expected figure {self.name}, but an error was raised: {result.error!r}")
        value = result.evidence.figures.get(self.name)
        if value is None:
            return Verdict(False, f"figure {self.name!r} was not recorded "
                                  f"(have: {sorted(result.evidence.figures)})")
        ok = _OPS[self.op](float(value), self.bound)
        return Verdict(ok, f"{self.name} = {value:.6g} {'satisfies' if ok else 'violates'} {self.op} {self.bound:g}")

    def describe(self) -> str:
        return f"{self.name} {self.op} {self.bound:g}"

    def bounds(self) -> tuple[Bound, ...]:
        return ((self.name, self.op, float(self.bound)),)


@dataclass(frozen=True)
class Succeeds(Expectation):
    """No error was raised, and every figure check holds."""

    checks: tuple[Figure, ...] = ()

    def judge(self, result: VariantResult) -> Verdict:
        if result.error is not None:
            return Verdict(False, f"expected success, but an error was raised: {result.error!r}")
        details = []
        for check in self.checks:
            verdict = check.judge(result)
            if not verdict.ok:
                return verdict
            details.append(verdict.detail)
        return Verdict(True, "; ".join(details) or "ran without error")

    def describe(self) -> str:
        return "succeeds" + (" with " + ", ".join(c.describe() for c in self.checks) if self.checks else "")

    def bounds(self) -> tuple[Bound, ...]:
        return tuple(b for c in self.checks for b in c.bounds())


def succeeds(*checks: Figure) -> Succeeds:
    return Succeeds(tuple(checks))


@dataclass(frozen=True)
class AllOf(Expectation):
    parts: tuple[Expectation, ...]

    def judge(self, result: VariantResult) -> Verdict:
        details = []
        for part in self.parts:
            verdict = part.judge(result)
            if not verdict.ok:
                return verdict
            details.append(verdict.detail)
        return Verdict(True, "; ".join(details))

    def describe(self) -> str:
        return " and ".join(p.describe() for p in self.parts)

    def ranges(self) -> tuple[VersionRange, ...]:
        return tuple(r for p in self.parts for r in p.ranges())

    def bounds(self) -> tuple[Bound, ...]:
        return tuple(b for p in self.parts for b in p.bounds())


@dataclass(frozen=True)
class ByVersion(Expectation):
    """An expectation per version range, for a release that rewords an error or changes a figure::

        ByVersion((("tensorflow<2.20", Raises("old text")), ("tensorflow>=2.20", Raises("new text"))))

    The first case whose range holds for ``evidence.versions`` judges (the plugin records there the
    version of every package a range names); when none holds the verdict says so and fails.
    """

    cases: tuple[tuple[str, Expectation], ...]

    def __post_init__(self) -> None:
        if not self.cases:
            raise ValueError("ByVersion needs at least one (range, expectation) case")
        for case in self.cases:
            if not (isinstance(case, tuple) and len(case) == 2 and isinstance(case[1], Expectation)):
                raise ValueError(f"a ByVersion case is a (range, expectation) pair, not {case!r}")
            VersionRange.parse(case[0])  # a bad range fails when the scenario file loads

    def parsed(self) -> tuple[tuple[VersionRange, Expectation], ...]:
        return tuple((VersionRange.parse(text), expect) for text, expect in self.cases)

    def pick(self, versions: Mapping[str, str]) -> tuple[VersionRange, Expectation] | None:
        """The first case whose range holds for ``versions``, or None."""
        return next(((r, e) for r, e in self.parsed() if r.contains(versions)), None)

    def judge(self, result: VariantResult) -> Verdict:
        versions = result.evidence.versions
        picked = self.pick(versions)
        if picked is None:
            why = "; ".join(r.explain(versions) for r, _ in self.parsed())
            return Verdict(False, f"no version range of this expectation holds ({why}): "
                                  "the scenario states nothing for these versions")
        rng, expect = picked
        verdict = expect.judge(result)
        return Verdict(verdict.ok, f"[{rng.explain(versions)}] {verdict.detail}")

    def describe(self) -> str:
        return "; ".join(f"on {r}: {e.describe()}" for r, e in self.parsed())

    def ranges(self) -> tuple[VersionRange, ...]:
        cases = self.parsed()
        return tuple(r for r, _ in cases) + tuple(r for _, e in cases for r in e.ranges())

    def bounds(self) -> tuple[Bound, ...]:
        return tuple(b for _, e in self.cases for b in e.bounds())


# --------------------------------------------------------------------------------------------
# Scenario record


@dataclass(frozen=True)
class Scenario:
    """One challenge reproduced as a faulty/fixed pair.

    ``id`` and ``taxonomy`` are filled in by the loader from the file path (the path is the id).
    """

    title: str
    targets: tuple[str, ...]
    faulty: VariantFn
    fixed: VariantFn
    symptom: Expectation
    remedy: Expectation = field(default_factory=Succeeds)
    cause: str = ""
    fix: str = ""
    references: tuple[str, ...] = ()
    known_gap: str | None = None  # strict xfail with this reason, stated in one place
    applies: tuple[str, ...] = ()  # version ranges that must all hold, e.g. ("tensorflow<2.20",); none: always
    #: what each figure the variants record measures: name (or a shell pattern such as ``"median_ms_*"``)
    #: -> :data:`FigureClass`; an undeclared figure is ``exact`` (any difference is a change)
    figures: Mapping[str, FigureClass] = field(default_factory=dict)
    id: str = ""
    taxonomy: str = ""
    path: Path | None = None

    def __post_init__(self) -> None:
        if isinstance(self.applies, str):
            raise ValueError(f"applies is a tuple of version ranges, e.g. ({self.applies!r},), not a string")
        parse_ranges(self.applies)  # a bad range fails when the scenario file loads, naming the text
        bad = {name: cls for name, cls in self.figures.items() if cls not in FIGURE_CLASSES}
        if bad:
            raise ValueError(f"figures {bad} declare no figure class: use one of {', '.join(FIGURE_CLASSES)}")

    def figure_class(self, name: str) -> FigureClass | None:
        """The class the scenario declares for figure ``name`` (its name first, then its patterns)."""
        if name in self.figures:
            return self.figures[name]
        return next((cls for pattern, cls in self.figures.items() if fnmatch.fnmatchcase(name, pattern)), None)

    @property
    def platform(self) -> str:
        return self.id.split("/", 1)[0]

    def applies_ranges(self) -> tuple[VersionRange, ...]:
        return parse_ranges(self.applies)

    def ranges(self) -> tuple[VersionRange, ...]:
        """Every version range the scenario states: ``applies``, then its expectations' (``ByVersion``)."""
        found = (*self.applies_ranges(), *self.symptom.ranges(), *self.remedy.ranges())
        return tuple(dict.fromkeys(found))

    def version_names(self) -> tuple[str, ...]:
        """The packages the scenario's ranges name, once each."""
        return tuple(dict.fromkeys(r.name for r in self.ranges()))

    def installed_versions(self) -> dict[str, str]:
        """The installed version (or "missing") of every package the scenario's ranges name."""
        return installed_versions(self.version_names())

    def not_applicable_reason(self, versions: Mapping[str, str]) -> str | None:
        """None when every ``applies`` range holds for ``versions``, else why not (one line)."""
        outside = [r.explain(versions) for r in self.applies_ranges() if not r.contains(versions)]
        return "not applicable on these versions: " + "; ".join(outside) if outside else None

    def describe_ranges(self) -> str:
        """The version ranges in words, '' when the scenario states none."""
        parts = []
        if self.applies:
            parts.append("applies on " + ", ".join(str(r) for r in self.applies_ranges()))
        for variant, expect in (("symptom", self.symptom), ("remedy", self.remedy)):
            named = list(dict.fromkeys(str(r) for r in expect.ranges()))
            if named:
                parts.append(f"{variant} by version: " + ", ".join(named))
        return "; ".join(parts)

    def variant(self, name: str) -> VariantFn:
        if name not in VARIANTS:
            raise KeyError(name)
        return self.faulty if name == "faulty" else self.fixed

    def expectation(self, name: str) -> Expectation:
        return self.symptom if name == "faulty" else self.remedy


def outcome_for(variant: str, verdict: Verdict, error: BaseException | None) -> Outcome:
    """Map a verdict onto the recorded outcome."""
    if isinstance(error, HarnessError) or (error is not None and not verdict.ok and raised_by_project(error)):
        return Outcome.ERROR
    if variant == "faulty":
        return Outcome.REPRODUCED if verdict.ok else Outcome.NOT_REPRODUCED
    return Outcome.WORKS if verdict.ok else Outcome.BROKEN


# --------------------------------------------------------------------------------------------
# Run context


class Run(Generic[TargetT]):
    """What a variant function gets: its target, a work directory, the cache and an evidence log.

    Generic over its target, so that a scenario annotated ``run: Run[TfjsTarget]`` has every call
    into the target checked by mypy.
    """

    def __init__(self, *, scenario: Scenario, variant: str, target: TargetT, workdir: Path,
                 cache: "ArtifactCache") -> None:
        self.scenario = scenario
        self.variant = variant
        self.target = target
        self.workdir = workdir
        self.cache = cache
        self.evidence = Evidence(figure_classes={}, bounds=list(scenario.expectation(variant).bounds()))
        self._stack = ExitStack()

    # evidence -------------------------------------------------------------------------------
    def figure(self, name: str, value: float) -> float:
        """Record a figure; its class is the one the scenario declares (``Scenario(figures=...)``)."""
        self.evidence.figures[name] = float(value)
        declared = self.scenario.figure_class(name)
        if declared is not None and self.evidence.figure_classes is not None:
            self.evidence.figure_classes[name] = declared
        return float(value)

    def note(self, name: str, value: Any) -> Any:
        self.evidence.notes[name] = value
        return value

    def observe(self, text: str) -> str:
        """Record a text the runtime produced (a console line, a log line, a response body)."""
        self.evidence.texts.append(text)
        return text

    def skip(self, reason: str) -> None:
        raise NotApplicable(reason)

    # resources ------------------------------------------------------------------------------
    def enter(self, cm: AbstractContextManager[T]) -> T:
        """Enter a context manager that is closed when the variant ends, whatever happens."""
        return self._stack.enter_context(cm)

    def callback(self, fn: Callable[[], Any]) -> None:
        self._stack.callback(fn)

    def close(self) -> None:
        self._stack.close()
