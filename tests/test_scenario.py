"""Expectations, the runtime-origin rule and outcome mapping."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError, RuntimeFailure
from harness.scenario import (AllOf, ByVersion, Evidence, Figure, ObservedError, Outcome, Raises, Scenario, Succeeds,
                              VariantResult, describe_error, outcome_for, raised_by_project, succeeds)


def result(error: BaseException | None = None, **figures: float) -> VariantResult:
    return VariantResult(error, Evidence(figures=dict(figures)))


def third_party_error() -> BaseException:
    """An exception raised inside a third-party library (json, outside this repository)."""
    try:
        json.loads("{not json")
    except ValueError as exc:
        return exc
    raise AssertionError("json.loads accepted bad input")


def project_error() -> BaseException:
    try:
        raise ValueError("The model is not a valid Flatbuffer buffer")
    except ValueError as exc:
        return exc


def test_raises_matches_runtime_failure_text() -> None:
    err = RuntimeFailure("litert", "Cannot set tensor: Dimension mismatch. Got 7 but expected 8",
                         kind="ValueError")
    verdict = Raises(r"Dimension mismatch", runtime="litert").judge(result(err))
    assert verdict.ok, verdict.detail


def test_raises_rejects_other_text_and_other_runtime() -> None:
    err = RuntimeFailure("tfjs/chromium", "TypeError: Failed to fetch")
    assert not Raises(r"Dimension mismatch").judge(result(err)).ok
    assert not Raises(r"Failed to fetch", runtime="litert").judge(result(err)).ok


def test_raises_rejects_no_error() -> None:
    verdict = Raises("anything").judge(result(None))
    assert not verdict.ok and "none was raised" in verdict.detail


def test_error_made_up_by_project_code_never_reproduces() -> None:
    """A string raised by our own code must not count, even if it matches the symptom."""
    err = project_error()
    assert raised_by_project(err)
    verdict = Raises(r"not a valid Flatbuffer").judge(result(err))
    assert not verdict.ok and "pitfalls' own code" in verdict.detail
    assert outcome_for("faulty", verdict, err) is Outcome.ERROR


def test_harness_errors_and_asserts_are_project_errors() -> None:
    assert raised_by_project(HarnessError("set-up missing"))
    assert raised_by_project(AssertionError("x"))


def test_error_raised_in_third_party_code_counts() -> None:
    err = third_party_error()
    assert not raised_by_project(err)
    assert Raises(r"Expecting property name").judge(result(err)).ok


def test_figure_bounds() -> None:
    assert Figure("max_abs_diff", "<=", 1e-4).judge(result(max_abs_diff=1e-6)).ok
    assert not Figure("max_abs_diff", "<=", 1e-4).judge(result(max_abs_diff=0.5)).ok
    missing = Figure("ratio", ">", 2).judge(result(other=1))
    assert not missing.ok and "not recorded" in missing.detail
    with pytest.raises(ValueError):
        Figure("x", "~", 1)


def test_succeeds_needs_no_error_and_all_checks() -> None:
    assert Succeeds().judge(result()).ok
    assert not Succeeds().judge(result(RuntimeFailure("litert", "boom"))).ok
    check = succeeds(Figure("a", ">", 1), Figure("b", "<", 1))
    assert check.judge(result(a=2, b=0)).ok
    assert not check.judge(result(a=2, b=3)).ok
    assert "a > 1" in check.describe()


def test_all_of() -> None:
    both = AllOf((Figure("a", ">", 1), Figure("b", ">", 1)))
    assert both.judge(result(a=2, b=2)).ok
    assert not both.judge(result(a=2, b=0)).ok


def test_outcomes() -> None:
    ok = Raises("x").judge(result(RuntimeFailure("r", "x")))
    assert outcome_for("faulty", ok, RuntimeFailure("r", "x")) is Outcome.REPRODUCED
    bad = Raises("y").judge(result(RuntimeFailure("r", "x")))
    assert outcome_for("faulty", bad, RuntimeFailure("r", "x")) is Outcome.NOT_REPRODUCED
    assert outcome_for("fixed", Succeeds().judge(result()), None) is Outcome.WORKS
    failed = Succeeds().judge(result(RuntimeFailure("r", "x")))
    assert outcome_for("fixed", failed, RuntimeFailure("r", "x")) is Outcome.BROKEN
    assert outcome_for("fixed", failed, HarnessError("h")) is Outcome.ERROR


def test_evidence_round_trips_through_plain_json() -> None:
    import datetime

    error = ObservedError(type="RuntimeFailure", runtime="litert", kind="ValueError", message="m", source="worker")
    ev = Evidence(error=error, figures={"x": 1.0}, notes={"n": [1, 2], "at": datetime.date(2026, 1, 2)}, texts=["t"])
    data = json.loads(json.dumps(ev.to_json()))  # no default=: the codec already made it plain JSON
    assert data["notes"]["at"] == "2026-01-02" and data["error"]["runtime"] == "litert"
    back = Evidence.from_json(data)
    assert back.error == error and back.figures == {"x": 1.0} and back.texts == ["t"]


@pytest.mark.parametrize("bad, words", [
    ([], "evidence is a list"),
    ({"figures": {"x": "fast"}}, "evidence.figures is not an object of numbers"),
    ({"texts": "t"}, "evidence.texts is not a list"),
    ({"error": "boom"}, "evidence.error is a str"),
])
def test_malformed_evidence_is_one_line(bad: object, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        Evidence.from_json(bad)


def test_describe_error_keeps_the_runtime_text() -> None:
    observed = describe_error(RuntimeFailure("tfjs/chromium", "m.predict is not a function", kind="TypeError",
                                             source="page error event"))
    assert (observed.runtime, observed.kind, observed.message) == ("tfjs/chromium", "TypeError",
                                                                   "m.predict is not a function")
    assert describe_error(third_party_error()).type == "json.decoder.JSONDecodeError"


# --------------------------------------------------------------------------------------------
# Version ranges: Scenario.applies and ByVersion


def _noop(run: object) -> None:
    return None


def _scenario(**fields: object) -> Scenario:
    base: dict[str, object] = dict(title="t", targets=("litert",), faulty=_noop, fixed=_noop, symptom=Raises("x"))
    base.update(fields)
    return Scenario(**base)  # type: ignore[arg-type]  # the fields under test, typed loosely


OLD_TEXT = "Cannot set tensor: Dimension mismatch"
NEW_TEXT = "Input shape mismatch for tensor 0"
REWORDED = ByVersion((("tensorflow<2.20", Raises(OLD_TEXT)), ("tensorflow>=2.20", Raises(NEW_TEXT))))


def versioned(error: BaseException | None, **versions: str) -> VariantResult:
    return VariantResult(error, Evidence(versions=dict(versions)))


def test_by_version_judges_with_the_first_range_that_holds() -> None:
    old = RuntimeFailure("litert", f"{OLD_TEXT}. Got 7 but expected 8", kind="ValueError")
    new = RuntimeFailure("litert", f"{NEW_TEXT}: got [7] expected [8]", kind="ValueError")
    verdict = REWORDED.judge(versioned(old, tensorflow="2.19.0"))
    assert verdict.ok and "tensorflow 2.19.0 is within tensorflow<2.20" in verdict.detail
    assert REWORDED.judge(versioned(new, tensorflow="2.21.0")).ok
    assert not REWORDED.judge(versioned(old, tensorflow="2.21.0")).ok  # the old text on a new release
    assert not REWORDED.judge(versioned(new, tensorflow="2.19.0")).ok
    first_wins = ByVersion((("tensorflow>=2", Raises(OLD_TEXT)), ("tensorflow>=2.20", Raises(NEW_TEXT))))
    assert not first_wins.judge(versioned(new, tensorflow="2.21.0")).ok


def test_by_version_without_a_matching_range_fails_saying_so() -> None:
    verdict = REWORDED.judge(versioned(RuntimeFailure("litert", OLD_TEXT), keras="3.0.0"))
    assert not verdict.ok
    assert "no version range of this expectation holds" in verdict.detail
    assert "tensorflow is not installed (tensorflow<2.20)" in verdict.detail
    assert outcome_for("faulty", verdict, RuntimeFailure("litert", OLD_TEXT)) is Outcome.NOT_REPRODUCED


def test_by_version_serves_as_a_remedy_and_inside_all_of() -> None:
    remedy = ByVersion((("numpy<2", succeeds(Figure("max_abs_diff", "<=", 1e-3))),
                        ("numpy>=2", succeeds(Figure("max_abs_diff", "<=", 1e-6)))))
    ev = Evidence(figures={"max_abs_diff": 1e-4}, versions={"numpy": "1.26.4"})
    assert remedy.judge(VariantResult(None, ev)).ok
    ev.versions["numpy"] = "2.1.3"
    assert not remedy.judge(VariantResult(None, ev)).ok
    both = AllOf((Raises(OLD_TEXT), REWORDED))
    assert [str(r) for r in both.ranges()] == ["tensorflow<2.20", "tensorflow>=2.20"]


def test_by_version_describes_its_ranges_and_refuses_bad_cases() -> None:
    assert REWORDED.describe() == (f"on tensorflow<2.20: raises an error matching /{OLD_TEXT}/; "
                                   f"on tensorflow>=2.20: raises an error matching /{NEW_TEXT}/")
    with pytest.raises(ValueError, match="'tensorflow=>2' is not a requirement"):
        ByVersion((("tensorflow=>2", Raises("x")),))
    with pytest.raises(ValueError, match="at least one"):
        ByVersion(())
    with pytest.raises(ValueError, match="pair"):
        ByVersion((("tensorflow>=2", "not an expectation"),))  # type: ignore[arg-type]  # the mistake under test


def test_applies_is_checked_when_the_scenario_is_made() -> None:
    with pytest.raises(ValueError, match="'tensorflow<<2' is not a requirement"):
        _scenario(applies=("tensorflow<<2",))
    with pytest.raises(ValueError, match="not a string"):
        _scenario(applies="tensorflow<2.20")


def test_applies_says_why_a_scenario_does_not_apply() -> None:
    s = _scenario(applies=("tensorflow<2.20", "ai-edge-litert>=1.2"))
    assert s.not_applicable_reason({"tensorflow": "2.19.0", "ai-edge-litert": "2.0.0"}) is None
    assert s.not_applicable_reason({"tensorflow": "2.21.0", "ai-edge-litert": "2.0.0"}) == (
        "not applicable on these versions: tensorflow 2.21.0 is outside tensorflow<2.20")
    assert _scenario().not_applicable_reason({}) is None  # no ranges: always applies


def test_a_scenario_names_the_packages_of_all_its_ranges() -> None:
    s = _scenario(applies=("numpy>=1",), symptom=REWORDED,
                  remedy=ByVersion((("@tensorflow/tfjs>=4", succeeds()),)))
    assert s.version_names() == ("numpy", "tensorflow", "@tensorflow/tfjs")
    assert s.describe_ranges() == ("applies on numpy>=1; symptom by version: tensorflow<2.20, tensorflow>=2.20; "
                                   "remedy by version: @tensorflow/tfjs>=4")
    installed = s.installed_versions()
    assert set(installed) == {"numpy", "tensorflow", "@tensorflow/tfjs"} and installed["numpy"] != "missing"
    assert _scenario().describe_ranges() == "" and _scenario().version_names() == ()
