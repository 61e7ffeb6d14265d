"""bench/under_load.py: what it reads from a run (pytest's summary, JUnit, results files) and the
flips it reports, on crafted files; the busy processes it starts are ended by their ids."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from crafted import old_records, write_results
from harness.paths import REPO_ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("under_load", REPO_ROOT / "bench" / "under_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["under_load"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["under_load"]
    return module


def test_pytest_counts_come_from_the_last_summary_line(bench: ModuleType) -> None:
    log = ("==== 3 passed in 1.00s ====\n...\n"
           "========= 1 failed, 816 passed, 3 skipped, 2 warnings in 785.12s (0:13:05) =========\n")
    assert bench.pytest_counts(log) == {"failed": 1, "passed": 816, "skipped": 3, "warnings": 2}
    assert bench.pytest_counts("collected nothing, the run died") == {}


def test_junit_outcomes_and_their_flips(bench: ModuleType, tmp_path: Path) -> None:
    first, second = tmp_path / "1.xml", tmp_path / "2.xml"
    first.write_text('<testsuites><testsuite><testcase classname="tests.test_shard" name="test_a"/>'
                     '<testcase classname="tests.test_shard" name="test_b"><skipped/></testcase>'
                     '</testsuite></testsuites>')
    second.write_text('<testsuites><testsuite><testcase classname="tests.test_shard" name="test_a">'
                      '<failure message="assert 1 == 2"/></testcase>'
                      '<testcase classname="tests.test_shard" name="test_b"><skipped/></testcase>'
                      '<testcase classname="tests.test_new" name="test_c"/></testsuite></testsuites>')
    a, b = bench.junit_outcomes(first), bench.junit_outcomes(second)
    assert a == {"tests.test_shard::test_a": "passed", "tests.test_shard::test_b": "skipped"}
    assert bench.outcome_flips(a, b) == ["tests.test_new::test_c: absent -> passed",
                                         "tests.test_shard::test_a: passed -> failure"]
    assert bench.outcome_flips(a, a) == [] and bench.junit_outcomes(tmp_path / "none.xml") == {}


def test_catalog_flips_are_the_outcome_changes_of_the_diff(bench: ModuleType, tmp_path: Path) -> None:
    records = old_records()
    first = write_results(tmp_path / "catalog-1.json", records)
    changed = [dict(r) for r in records]
    changed[0] = {**changed[0], "outcome": "not-reproduced"}
    changed[1] = {**changed[1], "evidence": {**changed[1]["evidence"], "figures": {"max_abs_diff": 2.0e-7,
                                                                                    "predict_ms": 6.4,
                                                                                    "load_ms": 40.0}}}
    now = write_results(tmp_path / "catalog-2.json", changed)
    flips = bench.catalog_flips(first, now)
    assert flips == [f"{records[0]['scenario']} [tfjs/faulty]: reproduced -> not-reproduced"]  # a timing is no flip
    assert bench.catalog_counts(first)["reproduced"] == sum(r["outcome"] == "reproduced" for r in records)
    assert bench.catalog_flips(first, tmp_path / "missing.json") == [f"no results file {tmp_path / 'missing.json'}"]


def test_the_hog_is_busy_processes_in_their_own_groups_ended_by_id(bench: ModuleType) -> None:
    hogs = bench.start_hog(2)
    try:
        assert len(hogs) == 2 and all(h.poll() is None for h in hogs)
        assert all(os.getpgid(h.pid) == h.pid != os.getpgid(os.getpid()) for h in hogs)
    finally:
        bench.stop_hog(hogs)
    assert all(h.returncode is not None for h in hogs)


def test_the_commands_are_what_ci_calls(bench: ModuleType, tmp_path: Path) -> None:
    py = tmp_path / "python"
    tests = bench.commands("tests", "python", REPO_ROOT, py, "2", tmp_path, 1, ["-k", "shard"])
    assert tests == [[str(py), "-m", "harness.typecheck"],
                     [str(py), "-m", "pytest", "-n", "2", "--durations=15", "--junitxml", str(tmp_path / "tests-1.xml"),
                      "-k", "shard"]]
    assert bench.commands("tests", "python", REPO_ROOT, py, "2", tmp_path, 1, ["-k", "shard"], typecheck=False) == tests[1:]
    assert bench.commands("tests", "run.sh", REPO_ROOT, py, "2", tmp_path, 2, []) == \
        [[str(REPO_ROOT / "run.sh"), "test", "--junitxml", str(tmp_path / "tests-2.xml")]]
    assert bench.commands("catalog", "python", REPO_ROOT, py, "2", tmp_path, 3, []) == \
        [[str(py), "-m", "harness", "run", "-n", "2", "--results", str(tmp_path / "catalog-3.json")]]
