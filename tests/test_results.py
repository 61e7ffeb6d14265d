"""The results file: typed records and their JSON codec, atomic writes, validation of what is read back."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from harness.errors import UsageError
from harness.results import (SCHEMA, Record, RunResults, build_results, load_results, load_run,
                             write_json_atomically, write_run)
from harness.scenario import Evidence, ObservedError, Outcome

#: a results file written by the plugin of commit 3dc8e15 (main before typed records) for the
#: tests' demo scenario: files of this schema written then must still load
MAIN_3DC8E15 = Path(__file__).parent / "fixtures" / "results-v1-3dc8e15.json"


def record(outcome: str = "reproduced") -> dict[str, object]:
    return {"scenario": "browser/model-update", "taxonomy": "browser/model-update", "platform": "browser",
            "target": "tfjs", "variant": "faulty", "outcome": outcome, "expected": "e", "verdict": "v",
            "evidence": {"error": None, "figures": {}, "notes": {}, "texts": [], "versions": {}},
            "seconds": 0.1, "nodeid": "n"}


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "out" / "latest.json"
    write_json_atomically(path, build_results([record(), record("works")], env={"python": "3.11"}))
    data = load_results(path)
    assert data["schema"] == SCHEMA
    assert data["summary"]["reproduced"] == 1 and data["summary"]["works"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["latest.json"]


def test_failed_write_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text("old")
    with pytest.raises(TypeError):
        write_json_atomically(path, {"bad": object.__new__(type("X", (), {"__str__": None}))})
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.json"]


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"schema": "other"}), "has schema 'other'"),
    (json.dumps({"schema": SCHEMA, "records": [{"scenario": "x"}]}), "record 0 lacks"),
    (json.dumps({"schema": SCHEMA, "records": [dict(record(), outcome="great")]}), "unknown outcome"),
])
def test_bad_files_give_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message) as info:
        load_results(path)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_results(tmp_path / "nope.json")


def test_a_file_written_by_the_previous_code_loads_as_typed_records() -> None:
    run = load_run(MAIN_3DC8E15)
    assert run.schema == SCHEMA and run.summary == {"reproduced": 1, "not-reproduced": 0, "works": 1, "broken": 0,
                                                   "skipped": 0, "error": 0, "not-applicable": 0}
    faulty, fixed = run.records
    assert (faulty.variant, faulty.outcome, fixed.outcome) == ("faulty", Outcome.REPRODUCED, Outcome.WORKS)
    assert isinstance(faulty.evidence.error, ObservedError)
    assert faulty.evidence.error.message.startswith("Expecting property name enclosed in double quotes")
    assert fixed.evidence.error is None and "max_abs_diff" in fixed.evidence.figures
    original = json.loads(MAIN_3DC8E15.read_text())
    # the codec reads and writes exactly that shape; the summary gains the count of the newer outcome
    assert run.to_json() == {**original, "summary": {**original["summary"], "not-applicable": 0}}
    assert load_results(MAIN_3DC8E15) == run.to_json()


def test_records_round_trip_through_the_codec(tmp_path: Path) -> None:
    error = ObservedError(type="RuntimeFailure", runtime="tfjs/chromium", kind="TypeError",
                          message="m.predict is not a function", source="page error event")
    record = Record(scenario="browser/model-loading/asynchronous-loading", taxonomy="browser/model-loading/"
                    "asynchronous-loading", platform="browser", target="tfjs", variant="faulty",
                    outcome=Outcome.REPRODUCED, expected="raises", verdict="matched",
                    evidence=Evidence(error=error, figures={"load_ms": 4.0}, versions={"tfjs": "4.22.0"}),
                    seconds=1.5, nodeid="n")
    run = RunResults.build([record.as_known_gap(), record], env={"python": "3.11"})
    path = tmp_path / "r.json"
    write_run(path, run)
    back = load_run(path)
    assert back == run and back.records[0].evidence.error == error
    assert [r.known_gap for r in back.records] == [True, False]


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_results_and_reports_are_readable_by_others(tmp_path: Path, umask_022: None) -> None:
    """Like any new file (0644 under umask 022), not the 0600 a mkstemp file gets."""
    from harness.report import write_reports

    path = tmp_path / "results" / "latest.json"
    write_json_atomically(path, build_results([record()], env={}))
    written = [path, *write_reports(load_run(path), tmp_path / "results")]
    assert [stat.S_IMODE(p.stat().st_mode) for p in written] == [0o644, 0o644, 0o644]
    assert sorted(p.name for p in path.parent.iterdir()) == ["junit.xml", "latest.json", "report.html"]


@pytest.mark.parametrize("change, message", [
    ({"outcome": "great"}, "record 0 has unknown outcome 'great'"),
    ({"seconds": "slow"}, "record 0 has seconds 'slow', not a number"),
    ({"target": 3}, "record 0 has a non-text target"),
    ({"evidence": {"figures": {"x": "fast"}}}, "record 0 has bad evidence: evidence.figures is not an object of numbers"),
    ({"evidence": None}, "record 0 has bad evidence: evidence is a NoneType, not an object"),
])
def test_malformed_records_name_what_is_wrong(tmp_path: Path, change: dict[str, object], message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": SCHEMA, "records": [dict(record(), **change)]}))
    with pytest.raises(UsageError, match=message):
        load_run(path)


def test_fields_a_newer_writer_added_survive_the_codec(tmp_path: Path) -> None:
    """Readers accept extra fields, and keep them: the diff reads ``evidence.repeats`` when present."""
    evidence = {"error": None, "figures": {"predict_ms": 5.5}, "repeats": {"predict_ms": [5.0, 6.0]}}
    data = build_results([dict(record(), rerun=2, evidence=evidence)], env={})
    path = tmp_path / "r.json"
    write_json_atomically(path, data)
    (only,) = load_run(path).records
    assert only.extra == {"rerun": 2} and only.evidence.extra == {"repeats": {"predict_ms": [5.0, 6.0]}}
    assert load_results(path)["records"][0]["evidence"]["repeats"] == {"predict_ms": [5.0, 6.0]}
