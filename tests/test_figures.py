"""Figures declare their class where the scenario states them; diff and the matrix read the declaration.

A record written by this harness carries ``evidence.figure_classes`` (from ``Scenario(figures=...)``)
and ``evidence.bounds`` (from the expectation's ``Figure`` checks); a results file written before
either existed still loads and diffs, through the explicit fallbacks (the name rules of
``diff.LEGACY_FIGURE_CLASSES``, the bounds read from the ``expected`` text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crafted import LITERT, record
from harness import diff
from harness.diff import diff_results, figure_class_in
from harness.registry import all_scenarios
from harness.results import RunResults, build_results
from harness.scenario import FIGURE_CLASSES, AllOf, ByVersion, Evidence, Figure, Raises, Run, Scenario, succeeds


def _variant(run: Run[Any]) -> dict[str, float]:
    return {"max_abs_diff": 0.5, "median_ms_float": 3.0, "loose": 1.0}


SCENARIO = Scenario(title="t", targets=("litert",), faulty=_variant, fixed=_variant,
                    symptom=AllOf((Figure("max_abs_diff", ">", 0.1), Raises("never"))),
                    remedy=ByVersion((("tensorflow<2.20", succeeds(Figure("median_ms_float", "<", 50))),
                                      ("tensorflow>=2.20", succeeds(Figure("median_ms_float", "<", 80))))),
                    figures={"max_abs_diff": "parity", "median_ms_*": "latency_ms"})


def _run(variant: str, tmp_path: Path) -> Run[Any]:
    return Run(scenario=SCENARIO, variant=variant, target=None, workdir=tmp_path, cache=None)  # type: ignore[arg-type]  # only evidence is used


def test_a_run_records_the_declared_classes_and_the_expectations_bounds(tmp_path: Path) -> None:
    run = _run("fixed", tmp_path)
    for name, value in _variant(run).items():
        run.figure(name, value)
    assert run.evidence.figure_classes == {"max_abs_diff": "parity", "median_ms_float": "latency_ms"}  # "loose": undeclared
    assert run.evidence.bounds == [("median_ms_float", "<", 50.0), ("median_ms_float", "<", 80.0)]  # every case
    assert _run("faulty", tmp_path).evidence.bounds == [("max_abs_diff", ">", 0.1)]
    again = Evidence.from_json(run.evidence.to_json())
    assert (again.figure_classes, again.bounds) == (run.evidence.figure_classes, run.evidence.bounds)


def test_an_older_evidence_has_no_classes_and_no_bounds() -> None:
    older = Evidence.from_json({"error": None, "figures": {"max_abs_diff": 0.5}, "notes": {}, "texts": [], "versions": {}})
    assert older.figure_classes is None and older.bounds is None
    assert "figure_classes" not in older.to_json() and "bounds" not in older.to_json()  # it stays older


@pytest.mark.parametrize("bad", [{"figure_classes": {"x": "speed"}}, {"bounds": [{"figure": "x", "op": "~", "bound": 1}]},
                                 {"bounds": [{"figure": "x"}]}])
def test_malformed_classes_or_bounds_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="evidence"):
        Evidence.from_json({"figures": {}, **bad})


def test_a_scenario_declaring_an_unknown_class_fails_to_load() -> None:
    with pytest.raises(ValueError, match="declare no figure class"):
        Scenario(title="t", targets=("litert",), faulty=_variant, fixed=_variant, symptom=Raises("x"),
                 figures={"max_abs_diff": "tiny"})  # type: ignore[dict-item]  # what mypy would refuse, at load time


def _typed(figures: dict[str, float], classes: dict[str, str] | None, bounds: list[dict[str, Any]] | None = None,
           expected: str = "") -> dict[str, Any]:
    rec = record(LITERT, "litert", "fixed", "works", figures=figures, expected=expected)
    if classes is not None:
        rec["evidence"]["figure_classes"] = classes
    if bounds is not None:
        rec["evidence"]["bounds"] = bounds
    return rec


def _whats(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [c.what for c in diff_results(build_results([old], env={}), build_results([new], env={}))]


def test_diff_judges_by_the_declared_class_not_the_name() -> None:
    # named like a parity figure, declared exact: a 2x move is a change (parity would call it noise)
    assert _whats(_typed({"max_abs_diff": 1e-3}, {"max_abs_diff": "exact"}),
                  _typed({"max_abs_diff": 2e-3}, {"max_abs_diff": "exact"})) == ["max_abs_diff rose by +100% (exact: changed)"]
    # a name no rule knows, declared parity: a 2x move is noise, 100x is not
    assert _whats(_typed({"gap": 1e-3}, {"gap": "parity"}), _typed({"gap": 2e-3}, {"gap": "parity"})) == []
    assert "parity" in _whats(_typed({"gap": 1e-3}, {"gap": "parity"}), _typed({"gap": 0.1}, {"gap": "parity"}))[0]
    # declared: what is not declared is exact, whatever its name says
    assert figure_class_in(_typed({"median_ms": 1.0}, {}), "median_ms") == "exact"
    assert figure_class_in(_typed({"median_ms": 1.0}, None), "median_ms") == "latency_ms"  # older: its name


def test_diff_reads_the_recorded_bounds_not_the_expected_text() -> None:
    bounds = [{"figure": "speedup", "op": ">", "bound": 3.0}]
    old = _typed({"speedup": 4.0}, {"speedup": "speedup"}, bounds, expected="whatever the words say")
    new = _typed({"speedup": 2.5}, {"speedup": "speedup"}, bounds, expected="whatever the words say")
    assert diff.figure_bounds(new) == {"speedup": [(">", 3.0)]}
    found = diff_results(build_results([old], env={}), build_results([new], env={}))
    assert [(c.severity, c.what) for c in found] == [("regression", "speedup fell by -38% (speedup: now violates its bound)")]
    # an older record: the same bound read from its text
    assert diff.figure_bounds(_typed({}, None, expected="succeeds with speedup > 3")) == {"speedup": [(">", 3.0)]}


def test_results_round_trip_keeps_old_and_new_records_apart() -> None:
    old, new = _typed({"x_ms": 1.0}, None), _typed({"x_ms": 1.0}, {"x_ms": "latency_ms"}, [])
    loaded = RunResults.from_json(build_results([old, {**new, "variant": "faulty", "outcome": "reproduced"}], env={})).to_json()
    assert "figure_classes" not in loaded["records"][1]["evidence"]
    assert loaded["records"][0]["evidence"]["figure_classes"] == {"x_ms": "latency_ms"}


def test_every_class_is_judged_and_every_bounded_figure_of_the_catalog_is_declared() -> None:
    assert set(diff.JUDGED) == set(FIGURE_CLASSES)
    undeclared = [f"{s.id}: {name}" for s in all_scenarios() for variant in ("faulty", "fixed")
                  for name, _, _ in s.expectation(variant).bounds() if s.figure_class(name) is None]
    assert not undeclared, f"figures the expectations bound but the scenarios do not declare: {undeclared}"
