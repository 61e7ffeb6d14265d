"""`pitfalls diff`: behaviour changes between two crafted results files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crafted import ASYNC, LITERT, SERVER, new_records, old_records, record, write_results
from harness.cli import main
from harness.diff import diff_results, regressions
from harness.results import build_results


def _changes(old: list, new: list, threshold: float = 20.0) -> dict:
    found = diff_results(build_results(old, env={}), build_results(new, env={}), threshold)
    return {(c.scenario, c.variant, c.kind, c.what.split(" by ")[0]): c for c in found}


def test_diff_finds_regressions_improvements_and_new_error_text() -> None:
    changes = _changes(old_records(), new_records())
    broken = changes[(LITERT, "fixed", "outcome", "fixed variant now broken")]
    assert (broken.severity, broken.old, broken.new) == ("regression", "works", "broken")
    assert changes[(LITERT, "fixed", "figure", "max_abs_diff rose")].severity == "regression"
    assert changes[(ASYNC, "fixed", "figure", "predict_ms rose")].severity == "regression"
    text = changes[(ASYNC, "faulty", "error-text", "new error text")]
    assert text.severity == "changed" and text.new.endswith("(new wording)")
    assert changes[(SERVER, "faulty", "outcome", "symptom reproduced again")].severity == "improvement"
    assert not any(key[0] == ASYNC and key[2] == "figure" and "load_ms" in key[3] for key in changes)


def test_symptom_no_longer_reproduced_is_a_regression() -> None:
    old = [record(ASYNC, "tfjs", "faulty", "reproduced", error="m.predict is not a function")]
    new = [record(ASYNC, "tfjs", "faulty", "not-reproduced")]
    (change,) = diff_results(build_results(old, env={}), build_results(new, env={}))
    assert (change.what, change.severity) == ("symptom no longer reproduced", "regression")


def test_threshold_and_noise_floor() -> None:
    assert not any(c.kind == "figure" for c in diff_results(
        build_results(old_records(), env={}), build_results(new_records(), env={}), 1000.0)
        if c.scenario == ASYNC)
    # 1e-7 -> 5e-7 is +400 % but below the parity noise floor of 1e-6
    old = [record(ASYNC, "tfjs", "fixed", "works", figures={"max_abs_diff": 1e-7})]
    new = [record(ASYNC, "tfjs", "fixed", "works", figures={"max_abs_diff": 5e-7})]
    assert diff_results(build_results(old, env={}), build_results(new, env={})) == []


def test_added_and_removed_records_are_changes_not_regressions() -> None:
    old, new = old_records(), old_records()[:-2]
    found = diff_results(build_results(old, env={}), build_results(new, env={}))
    assert {c.kind for c in found} == {"removed"} and not regressions(found)


def test_cli_diff_table_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.json", old_records())
    new = write_results(tmp_path / "new.json", new_records())
    data = json.loads(new.read_text())
    data["environment"]["packages"]["tensorflowjs"] = "4.23.0"
    new.write_text(json.dumps(data))
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("versions changed: tensorflowjs: 4.22.0 -> 4.23.0\n")
    assert "fixed variant now broken" in out and LITERT in out
    assert out.rstrip().endswith("regression(s)")
    assert main(["diff", str(old), str(old)]) == 0
    assert "no scenario changed behaviour" in capsys.readouterr().out


def test_cli_diff_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old = write_results(tmp_path / "old.json", old_records())
    new = write_results(tmp_path / "new.json", new_records())
    assert main(["diff", str(old), str(new), "--json", "--threshold", "50"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["threshold_pct"] == 50 and data["regressions"] == 3 and data["environment"] == {}
    assert {"scenario", "target", "variant", "kind", "severity", "what", "old", "new"} <= set(data["changes"][0])


@pytest.mark.parametrize("args, words", [
    (["diff", "missing-old.json", "missing-new.json"], "results file not found: missing-old.json"),
    (["diff", "OLD", "NEW", "--threshold", "-5"], "--threshold must be a percentage"),
    (["diff", "OLD"], "the following arguments are required: NEW"),
])
def test_cli_diff_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list, words: str) -> None:
    paths = {"OLD": str(write_results(tmp_path / "o.json", old_records())),
             "NEW": str(write_results(tmp_path / "n.json", new_records()))}
    assert main([paths.get(a, a) for a in args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and words in captured.err
