"""The results file: atomic writes and validation of what is read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.results import SCHEMA, build_results, load_results, write_json_atomically


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
