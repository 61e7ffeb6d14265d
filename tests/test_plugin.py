"""The pytest plugin, tested with pytester on a temporary scenarios tree."""

from __future__ import annotations

import json

import pytest

from crafted import DEMO_ID, DEMO_SCENARIO, demo_scenario_source, write_scenario_tree

pytest_plugins = ["pytester"]


@pytest.fixture
def tree(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    root = write_scenario_tree(pytester.path)
    monkeypatch.setenv("PITFALLS_SCENARIOS", str(root))
    return root


def test_a_scenario_file_becomes_one_item_per_target_and_variant(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    result = pytester.runpytest("--collect-only", "-q", "scenarios")
    result.stdout.fnmatch_lines([f"scenarios/{DEMO_ID}.py::faulty?coreml?", f"scenarios/{DEMO_ID}.py::fixed?coreml?"])
    assert result.ret == 0


def test_target_and_variant_options_filter(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    result = pytester.runpytest("--collect-only", "-q", "--pitfalls-variant", "fixed", "scenarios")
    result.stdout.fnmatch_lines(["*::fixed?coreml?", "1 test collected*"])
    result = pytester.runpytest("--collect-only", "-q", "--pitfalls-target", "litert", "scenarios")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_markers_select_by_platform(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    assert pytester.runpytest("--collect-only", "-q", "-m", "mobile and faulty", "scenarios").ret == 0
    assert pytester.runpytest("--collect-only", "-q", "-m", "browser", "scenarios").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_path_outside_the_taxonomy_is_a_collection_error(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    write_scenario_tree(pytester.path, {"mobile/no-such-challenge": demo_scenario_source()})
    result = pytester.runpytest("--collect-only", "-q", "scenarios")
    result.stdout.fnmatch_lines(["*names no challenge node of the taxonomy*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_running_writes_the_results_file(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    result = pytester.runpytest("-q", "--pitfalls-results", "out/r.json", "scenarios")
    result.assert_outcomes(passed=2)
    data = json.loads((pytester.path / "out" / "r.json").read_text())
    assert [(r["variant"], r["outcome"]) for r in data["records"]] == [("faulty", "reproduced"), ("fixed", "works")]
    faulty = data["records"][0]["evidence"]["error"]
    assert "Expecting property name enclosed in double quotes" in faulty["message"]
    result.stdout.fnmatch_lines(["*pitfalls*", "variants: reproduced 1, works 1*"])


def test_the_results_file_holds_typed_records_readable_by_others(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from harness.results import load_run
    from harness.scenario import ObservedError, Outcome

    old = os.umask(0o022)
    try:
        pytester.runpytest("-q", "-n", "1", "--pitfalls-results", "out/r.json", "scenarios").assert_outcomes(passed=2)
    finally:
        os.umask(old)
    path = pytester.path / "out" / "r.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    faulty, fixed = load_run(path).records
    assert (faulty.outcome, fixed.outcome) == (Outcome.REPRODUCED, Outcome.WORKS)
    assert isinstance(faulty.evidence.error, ObservedError) and faulty.evidence.error.kind == "JSONDecodeError"
    assert faulty.nodeid == f"scenarios/{DEMO_ID}.py::faulty[coreml]" and fixed.evidence.figures["max_abs_diff"] == 0.0


def test_a_known_gap_is_a_strict_xfail(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    source = demo_scenario_source(known_gap="demo: the fixed variant passes, so strict xfail fails it")
    write_scenario_tree(pytester.path, {DEMO_ID: source})
    result = pytester.runpytest("-q", "--pitfalls-results", "", "scenarios")
    result.assert_outcomes(failed=2)  # both variants behave, so the strict xfails XPASS and fail
    result.stdout.fnmatch_lines(["*XPASS(strict)*demo: the fixed variant passes*"])


def test_a_known_gap_that_fails_as_stated_is_recorded_as_such(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    source = (demo_scenario_source(known_gap="demo: the parser accepts this here")
              .replace('"{\'rgba\': true}"', '"{}"').replace('"<=", 1e-9', '">", 1.0'))
    write_scenario_tree(pytester.path, {DEMO_ID: source})
    result = pytester.runpytest("-q", "--pitfalls-results", "r.json", "scenarios")
    result.assert_outcomes(xfailed=2)
    records = json.loads((pytester.path / "r.json").read_text())["records"]
    assert [r["outcome"] for r in records] == ["not-reproduced", "broken"]
    assert all(r["verdict"].endswith("(a known gap, xfail)") for r in records)


def test_records_hold_plain_json_values(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    """A runtime can hand back objects JSON lacks (a page returns JS Dates as datetimes); xdist must
    still be able to ship the record from the worker."""
    source = demo_scenario_source().replace(
        '    return {"max_abs_diff"',
        '    import datetime\n\n    run.note("saved", datetime.datetime(2026, 1, 2))\n    return {"max_abs_diff"')
    write_scenario_tree(pytester.path, {DEMO_ID: source})
    result = pytester.runpytest("-q", "-n", "1", "--pitfalls-results", "r.json", "scenarios")
    result.assert_outcomes(passed=2)
    records = json.loads((pytester.path / "r.json").read_text())["records"]
    assert records[1]["evidence"]["notes"]["saved"] == "2026-01-02 00:00:00"


def test_scenario_files_named_on_the_command_line_sharing_a_base_name(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    """pytest makes a test module of every file given as an argument; two `…/litert.py` would clash."""
    write_scenario_tree(pytester.path, {f"{DEMO_ID}/litert": demo_scenario_source(),
                                        "mobile/model-update/litert": demo_scenario_source()})
    result = pytester.runpytest("--collect-only", "-q", f"scenarios/{DEMO_ID}/litert.py",
                                "scenarios/mobile/model-update/litert.py")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*4 tests collected*"])


# --------------------------------------------------------------------------------------------
# Version ranges


def _numpy() -> str:
    from importlib import metadata

    return metadata.version("numpy")


def _with_applies(*ranges: str) -> str:
    return DEMO_SCENARIO.replace("KNOWN_GAP", f"applies={ranges!r},")


@pytest.mark.parametrize("workers", [(), ("-n", "1")])
def test_a_scenario_outside_its_version_range_is_recorded_not_applicable_and_skipped(
        pytester: pytest.Pytester, tree, workers: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    write_scenario_tree(pytester.path, {DEMO_ID: _with_applies("numpy<1.0")})
    result = pytester.runpytest("-q", "-rs", *workers, "--pitfalls-results", "r.json", "scenarios")
    result.assert_outcomes(skipped=2)
    reason = f"not applicable on these versions: numpy {_numpy()} is outside numpy<1.0"
    result.stdout.fnmatch_lines(["variants: not-applicable 2"])
    result.stdout.fnmatch_lines([f"SKIPPED*{reason}"])
    data = json.loads((pytester.path / "r.json").read_text())
    assert [(r["variant"], r["outcome"], r["verdict"]) for r in data["records"]] == [
        ("faulty", "not-applicable", reason), ("fixed", "not-applicable", reason)]
    assert data["records"][0]["evidence"]["versions"] == {"numpy": _numpy()}
    assert data["summary"]["not-applicable"] == 2


def test_a_scenario_within_its_version_range_runs(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    write_scenario_tree(pytester.path, {DEMO_ID: _with_applies(f"numpy>={_numpy()}", "numpy<1000")})
    result = pytester.runpytest("-q", "--pitfalls-results", "r.json", "scenarios")
    result.assert_outcomes(passed=2)
    records = json.loads((pytester.path / "r.json").read_text())["records"]
    assert [r["outcome"] for r in records] == ["reproduced", "works"]
    assert records[0]["evidence"]["versions"]["numpy"] == _numpy()


def test_a_by_version_symptom_is_judged_on_the_recorded_versions(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    source = DEMO_SCENARIO.replace("KNOWN_GAP", "").replace(
        'symptom=Raises(r"Expecting property name enclosed in double quotes"),',
        'symptom=ByVersion((("numpy<1.0", Raises("a wording of long ago")),'
        ' ("numpy>=1.0", Raises(r"Expecting property name enclosed in double quotes")))),').replace(
        "from harness.scenario import ", "from harness.scenario import ByVersion, ")
    write_scenario_tree(pytester.path, {DEMO_ID: source})
    result = pytester.runpytest("-q", "--pitfalls-results", "r.json", "scenarios")
    result.assert_outcomes(passed=2)
    faulty = json.loads((pytester.path / "r.json").read_text())["records"][0]
    assert faulty["outcome"] == "reproduced" and f"numpy {_numpy()} is within numpy>=1.0" in faulty["verdict"]
    assert faulty["expected"].startswith("on numpy<1.0: raises an error matching /a wording of long ago/")
    assert faulty["evidence"]["versions"]["numpy"] == _numpy()


def test_a_bad_version_range_is_a_collection_error_naming_it(pytester: pytest.Pytester, tree) -> None:  # type: ignore[no-untyped-def]
    write_scenario_tree(pytester.path, {DEMO_ID: _with_applies("numpy=>1")})
    result = pytester.runpytest("-q", "scenarios")
    result.stdout.fnmatch_lines(["*version range 'numpy=>1' is not a requirement*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_not_applicable_reads_as_such_in_every_report(pytester: pytest.Pytester, tree,  # type: ignore[no-untyped-def]
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main
    from harness.registry import load_catalog
    from harness.report import catalog_json, catalog_tree, render_html, render_junit
    from harness.results import load_run
    from harness.site import build_site

    write_scenario_tree(pytester.path, {DEMO_ID: _with_applies("numpy<1.0")})
    pytester.runpytest("-q", "--pitfalls-results", "r.json", "scenarios").assert_outcomes(skipped=2)
    run = load_run(pytester.path / "r.json")
    scenarios = load_catalog(tree).scenarios
    page = render_html(run, scenarios)
    assert page.count('<span class="badge o-not-applicable">n/a on these versions</span>') == 2
    assert 'data-status="na"' in page and "versions: applies on numpy&lt;1.0" in page
    junit = render_junit(run)
    assert 'skipped="2"' in junit and 'failures="0"' in junit and "is outside numpy&lt;1.0" in junit
    site = "".join(build_site(scenarios, run, "r.json").values())
    assert 'data-status="na"' in site and "n/a on these versions</span>" in site
    assert catalog_json(scenarios)["scenarios"][0]["applies"] == ["numpy<1.0"]
    assert "[applies on numpy<1.0]" in catalog_tree(scenarios, {})
    assert main(["explain", DEMO_ID, "--results", str(pytester.path / "r.json"), "--width", "120"]) == 0
    out = capsys.readouterr().out
    assert "versions: applies on numpy<1.0" in out and "faulty: n/a on these versions — not applicable" in out
