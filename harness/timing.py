"""Timing symptoms measured the way benchmarks measure them: interleaved pairs and a robust ratio.

A scenario whose symptom (or remedy) is "the faulty path is N times slower than the fixed one"
must hold on a busy machine too.  Two paths timed one after the other in blocks (all of A, then all
of B) are compared across different moments of the machine's load; a burst of other work during
one block moves the ratio at will.  As TFLite's ``benchmark_model`` (warm-up runs discarded, then
timed runs, median and spread reported) and the tfjs benchmarks (warm-up, then interleaved runs of
each backend) do it, :func:`interleaved` here

* runs ``warmup`` pairs first and discards them (first calls compile, allocate, fill caches);
* then times A and B in pairs, alternating the order within a pair (A B, B A, A B ...) so that
  a load that rises or falls over the run slows both sides alike;
* takes the ratio of each pair (``a / b``), so that a pair shares its moment of load, and keeps
  adding pairs (``repeats`` to ``max_repeats``) until the ratios' relative spread (IQR / median) is
  within ``spread_within``;
* reports the median of the paired ratios (the verdict's statistic) and their quartiles and range
  (the evidence) as :class:`PairedRatios`; :func:`record_ratios` writes them into a variant's evidence.

Where each call measures its own duration (in a worker process, a browser page), the same loop is
:func:`interleaved_measured`; where the samples were taken elsewhere in pairs already (a server's
log), the caller gives them to :func:`paired_ratios`.  The clock is a parameter so that the
tests feed made-up durations; nothing here sleeps or imports more than the standard library.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Clock = Callable[[], float]


class _Evidence(Protocol):
    extra: dict[str, Any]


class RecordsEvidence(Protocol):
    """What :func:`record_ratios` writes to: a scenario's ``Run``."""

    @property
    def evidence(self) -> _Evidence: ...

    def figure(self, name: str, value: float) -> float: ...

    def note(self, name: str, value: Any) -> Any: ...


@dataclass(frozen=True)
class PairedRatios:
    """Paired durations of two paths (seconds, warm-up already discarded) and their ratios a/b."""

    a_seconds: tuple[float, ...]
    b_seconds: tuple[float, ...]
    warmup: int = 0

    def __post_init__(self) -> None:
        if len(self.a_seconds) != len(self.b_seconds):
            raise ValueError(f"paired samples must have equal counts, not {len(self.a_seconds)} and {len(self.b_seconds)}")
        if not self.a_seconds:
            raise ValueError("no paired samples to take a ratio of")
        if min(self.b_seconds) <= 0 or min(self.a_seconds) < 0:
            raise ValueError("durations must be positive (the ratio's denominator) and not negative")

    @property
    def pairs(self) -> int:
        return len(self.a_seconds)

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(a / b for a, b in zip(self.a_seconds, self.b_seconds))

    @property
    def median(self) -> float:
        """The verdict's statistic: the median of the paired ratios."""
        return statistics.median(self.ratios)

    @property
    def quartiles(self) -> tuple[float, float]:
        """(Q1, Q3) of the paired ratios; with one pair both are that ratio."""
        if self.pairs < 2:
            return self.ratios[0], self.ratios[0]
        q = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return q[0], q[2]

    @property
    def relative_spread(self) -> float:
        """(Q3 - Q1) / median: how far the ratios scatter, relative to the statistic."""
        q1, q3 = self.quartiles
        return (q3 - q1) / self.median if self.median > 0 else float("inf")

    def inverted(self) -> "PairedRatios":
        """The same pairs as b/a (e.g. a remedy's speed-up from a symptom's slowdown)."""
        return PairedRatios(self.b_seconds, self.a_seconds, warmup=self.warmup)

    def figures(self, name: str) -> dict[str, float]:
        """``name`` (the median ratio) plus its spread, for a scenario's evidence figures."""
        q1, q3 = self.quartiles
        return {name: self.median, f"{name}_q1": q1, f"{name}_q3": q3, f"{name}_min": min(self.ratios),
                f"{name}_max": max(self.ratios), f"{name}_pairs": float(self.pairs)}

    def describe(self, name: str) -> str:
        """One line for a note: the statistic, its spread and how it was measured."""
        q1, q3 = self.quartiles
        return (f"{name}: median of {self.pairs} paired ratios {self.median:.3g} (IQR {q1:.3g}-{q3:.3g}, "
                f"range {min(self.ratios):.3g}-{max(self.ratios):.3g}); {self.warmup} warm-up pair(s) discarded, "
                "the two paths timed interleaved")


def paired_ratios(a_seconds: Sequence[float], b_seconds: Sequence[float], *, warmup: int = 0) -> PairedRatios:
    """Pair samples measured elsewhere (sample i of A with sample i of B), dropping ``warmup`` pairs."""
    if warmup < 0 or warmup >= min(len(a_seconds), len(b_seconds)):
        raise ValueError(f"warmup={warmup} leaves no pair of {len(a_seconds)} and {len(b_seconds)} samples")
    return PairedRatios(tuple(float(x) for x in a_seconds[warmup:]), tuple(float(x) for x in b_seconds[warmup:]),
                        warmup=warmup)


def interleaved(a: Callable[[], object], b: Callable[[], object], *, warmup: int = 2, repeats: int = 9,
                max_repeats: int = 31, spread_within: float = 0.25, clock: Clock = time.perf_counter) -> PairedRatios:
    """Time ``a`` and ``b`` (by ``clock``) in alternating pairs; the ratio a/b per pair (see the module docstring)."""

    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            started = clock()
            fn()
            return clock() - started
        return run

    return interleaved_measured(timed(a), timed(b), warmup=warmup, repeats=repeats, max_repeats=max_repeats,
                                spread_within=spread_within)


def interleaved_measured(a: Callable[[], float], b: Callable[[], float], *, warmup: int = 2, repeats: int = 9,
                         max_repeats: int = 31, spread_within: float = 0.25) -> PairedRatios:
    """As :func:`interleaved`, for calls that return their own duration in seconds (measured where
    they ran: a worker process, a browser page, a server's log).

    ``repeats`` pairs are always taken after the ``warmup`` ones; more follow, one at a time, while
    the ratios' relative spread exceeds ``spread_within`` and fewer than ``max_repeats`` were taken.
    """
    if warmup < 0 or repeats < 1 or max_repeats < repeats:
        raise ValueError(f"need warmup >= 0 and 1 <= repeats <= max_repeats, not {warmup}, {repeats}, {max_repeats}")

    def one_pair(index: int) -> tuple[float, float]:
        if index % 2 == 0:
            ta = a()
            return ta, b()
        tb = b()
        return a(), tb

    for i in range(warmup):
        one_pair(i)
    a_s: list[float] = []
    b_s: list[float] = []
    while True:
        ta, tb = one_pair(warmup + len(a_s))
        a_s.append(ta)
        b_s.append(tb)
        if len(a_s) < repeats:
            continue
        result = PairedRatios(tuple(a_s), tuple(b_s), warmup=warmup)
        if result.relative_spread <= spread_within or len(a_s) >= max_repeats:
            return result


def record_ratios(run: RecordsEvidence, name: str, result: PairedRatios) -> float:
    """Record ``result`` in a variant's evidence and return the statistic the verdict judges.

    The figure ``name`` is the median of the paired ratios; the note ``<name>_spread`` holds the
    quartiles, range, pairs and warm-up; ``evidence.repeats[name]`` holds every paired ratio, which
    ``pitfalls diff`` compares as samples (ranges apart and medians moved) instead of one number.
    """
    q1, q3 = result.quartiles
    run.note(f"{name}_spread", {"median": result.median, "q1": q1, "q3": q3, "min": min(result.ratios),
                                "max": max(result.ratios), "pairs": result.pairs, "warmup": result.warmup,
                                "how": result.describe(name)})
    run.evidence.extra.setdefault("repeats", {})[name] = list(result.ratios)
    return run.figure(name, result.median)
