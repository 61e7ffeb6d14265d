"""harness.timing with made-up durations: a fake clock that each timed call advances by a fixed step."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crafted import FakeClock
from harness.timing import PairedRatios, interleaved, interleaved_measured, paired_ratios, record_ratios


def test_interleaved_alternates_discards_warmup_and_takes_the_median_of_paired_ratios() -> None:
    clock = FakeClock()
    # warm-up pairs are slow (first calls compile); then A takes 3 s and B 1 s
    a = clock.path("a", [50.0, 40.0] + [3.0])
    b = clock.path("b", [9.0, 9.0] + [1.0])
    result = interleaved(a, b, warmup=2, repeats=5, clock=clock)
    assert clock.calls[:8] == ["a", "b", "b", "a", "a", "b", "b", "a"]  # A B, B A, A B ...
    assert result.warmup == 2 and result.pairs == 5 and len(clock.calls) == 2 * (2 + 5)
    assert result.ratios == (3.0,) * 5 and result.median == 3.0 and result.relative_spread == 0.0
    assert 50.0 not in result.a_seconds and 9.0 not in result.b_seconds


def test_a_burst_of_load_during_one_pair_does_not_move_the_median() -> None:
    clock = FakeClock()
    # pair 3 ran during a burst of other work: both sides 20 times slower, and B even more
    a = clock.path("a", [3.0, 3.0, 60.0, 3.0, 3.0, 3.0, 3.0])
    b = clock.path("b", [1.0, 1.0, 80.0, 1.0, 1.0, 1.0, 1.0])
    result = interleaved(a, b, warmup=0, repeats=7, clock=clock)
    assert result.median == 3.0 and min(result.ratios) == 0.75
    figures = result.figures("slowdown")
    assert figures["slowdown"] == 3.0 and figures["slowdown_min"] == 0.75 and figures["slowdown_pairs"] == 7.0
    assert "median of 7 paired ratios 3" in result.describe("slowdown")
    # the same samples timed in blocks and compared as totals would have said 1.47
    assert sum(result.a_seconds) / sum(result.b_seconds) < 1.5


def test_repeats_grow_until_the_spread_is_known_and_stop_at_max_repeats() -> None:
    clock = FakeClock()
    # scattered first, then steady: more pairs are timed until the IQR is within 25 % of the median
    a = clock.path("a", [1.0, 8.0, 2.0, 7.0] + [4.0] * 30)
    b = clock.path("b", [1.0])
    settled = interleaved(a, b, warmup=0, repeats=4, max_repeats=40, spread_within=0.25, clock=clock)
    assert 4 < settled.pairs < 40 and settled.relative_spread <= 0.25 and settled.median == 4.0
    clock = FakeClock()
    noisy = interleaved(clock.path("a", [1.0, 9.0] * 20), clock.path("b", [1.0]), warmup=1, repeats=3,
                        max_repeats=6, spread_within=0.1, clock=clock)
    assert noisy.pairs == 6 and noisy.relative_spread > 0.1


def test_interleaved_measured_takes_the_durations_the_calls_report() -> None:
    calls: list[str] = []
    reported = {"a": iter([7.0, 0.5, 0.2, 0.4, 0.2]), "b": iter([7.0, 0.1, 0.1, 0.1, 0.1])}

    def path(name: str) -> Callable[[], float]:
        def run() -> float:  # e.g. a worker's median invoke time
            calls.append(name)
            return next(reported[name])
        return run

    result = interleaved_measured(path("a"), path("b"), warmup=1, repeats=4, spread_within=1.0)
    assert calls == ["a", "b", "b", "a", "a", "b", "b", "a", "a", "b"]
    assert result.ratios == (5.0, 2.0, 4.0, 2.0) and result.median == 3.0


def test_paired_ratios_of_samples_measured_elsewhere() -> None:
    result = paired_ratios([10.0, 6.0, 2.0, 4.0], [1.0, 2.0, 1.0, 1.0], warmup=1)
    assert result.ratios == (3.0, 2.0, 4.0) and result.median == 3.0 and result.quartiles == (2.5, 3.5)
    assert result.figures("r")["r_q1"] == 2.5 and result.figures("r")["r_max"] == 4.0
    assert result.inverted().ratios == (1 / 3, 0.5, 0.25) and result.inverted().warmup == 1


@pytest.mark.parametrize("a, b, warmup, words", [
    ([1.0], [1.0, 2.0], 0, "equal counts"),
    ([1.0, 2.0], [1.0, 2.0], 2, "leaves no pair"),
    ([1.0], [0.0], 0, "must be positive"),
])
def test_bad_samples_are_refused(a: list[float], b: list[float], warmup: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        paired_ratios(a, b, warmup=warmup)
    with pytest.raises(ValueError, match="no paired samples"):
        PairedRatios((), ())
    with pytest.raises(ValueError, match="repeats"):
        interleaved(lambda: None, lambda: None, repeats=5, max_repeats=3)


def test_record_ratios_writes_the_median_the_spread_and_every_ratio_into_the_evidence() -> None:
    from harness.scenario import Evidence

    class RecordingRun:  # the part of a scenario's Run that record_ratios uses
        def __init__(self) -> None:
            self.evidence = Evidence()

        def figure(self, name: str, value: float) -> float:
            self.evidence.figures[name] = value
            return value

        def note(self, name: str, value: object) -> object:
            self.evidence.notes[name] = value
            return value

    run = RecordingRun()
    value = record_ratios(run, "load_time_ratio", paired_ratios([9.0, 6.0, 2.0, 4.0], [1.0, 2.0, 1.0, 1.0], warmup=1))
    assert value == 3.0 and run.evidence.figures == {"load_time_ratio": 3.0}
    spread = run.evidence.notes["load_time_ratio_spread"]
    assert (spread["q1"], spread["q3"], spread["min"], spread["max"], spread["pairs"], spread["warmup"]) == \
        (2.5, 3.5, 2.0, 4.0, 3, 1)
    assert run.evidence.to_json()["repeats"] == {"load_time_ratio": [3.0, 2.0, 4.0]}
