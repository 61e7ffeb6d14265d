"""The matrix run file (harness.matrix.record) and the matrix report (harness.matrix.report).

Matrix folders are built in tmp from real Record / RunResults objects: cells whose records differ
in exactly one way each, so every change kind (and every non-change: identical records, volatile
error text, a timing within its noise) is asserted on its own row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UsageError
from harness.matrix.record import (SCHEMA, CellRecord, MatrixRun, cell_lock_name, cell_results_name, load_matrix,
                                   write_matrix)
from harness.matrix.report import (NO_RECORD, REPORT_SCHEMA, build_report, render_html, render_terminal,
                                   report_json, write_html)
from harness.paths import REPO_ROOT
from harness.results import Record, RunResults, write_json_atomically, write_run
from harness.scenario import Evidence, ObservedError, Outcome

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "results-v1-3dc8e15.json"
RESOLVER_TEXT = ("No solution found when resolving dependencies:\n"
                 "  ╰─▶ Because tensorflow==2.21.0 depends on keras>=3.10 and you require keras==3.5.0, "
                 "we can conclude that your requirements are unsatisfiable.")
OUTCOME_OF = {"faulty": "reproduced", "fixed": "works"}


def rec(scenario: str, variant: str, outcome: str | None = None, *, target: str = "litert", error: str = "",
        figures: dict[str, float] | None = None, expected: str = "", seconds: float = 1.0) -> Record:
    return Record(
        scenario=f"mobile/demo/{scenario}", taxonomy="mobile/demo", platform="mobile", target=target,
        variant=variant, outcome=Outcome(outcome or OUTCOME_OF[variant]),
        expected=expected or ("raises from litert an error matching /x/" if variant == "faulty" else "succeeds"),
        verdict="as recorded",
        evidence=Evidence(error=ObservedError("RuntimeFailure", "litert", "ValueError", error, "worker") if error else None,
                          figures=dict(figures or {})),
        seconds=seconds, nodeid=f"scenarios/mobile/demo/{scenario}.py::{variant}[{target}]")


def cell_a() -> list[Record]:
    return [
        rec("identical", "faulty", error="Cannot set tensor: Dimension mismatch. Got 3 but expected 4 for input 0."),
        rec("identical", "fixed", figures={"max_abs_diff": 1e-7, "model_bytes": 1024.0}),
        rec("volatile", "faulty", error="Could not open /tmp/pitfalls-run-a1b2c3/model.tflite at 127.0.0.1:40001 "
                                        "(pid 4711) 2026-12-01T07:25:46.123+00:00"),
        rec("reworded", "faulty", error="Op builtin_code out of range: 150. Are you using old TFLite binary "
                                        "with newer model?"),
        rec("vanishes", "faulty", error="Select TensorFlow op(s) not supported: FlexErf"),
        rec("breaks", "fixed"),
        rec("timing", "fixed", figures={"predict_ms": 10.0}, expected="succeeds with predict_ms <= 1000"),
        rec("ratio", "faulty", error="slow", figures={"slowdown_ratio": 4.0},
            expected="raises from litert an error matching /slow/ and slowdown_ratio >= 3"),
        rec("parity", "fixed", figures={"max_abs_diff": 1e-6}),
        rec("gone", "fixed"),
    ]


def cell_b() -> list[Record]:
    return [
        rec("identical", "faulty", error="Cannot set tensor: Dimension mismatch. Got 3 but expected 4 for input 0.",
            seconds=9.0),  # wall time is volatile
        rec("identical", "fixed", figures={"max_abs_diff": 1e-7, "model_bytes": 1024.0}, seconds=0.2),
        rec("volatile", "faulty", error="Could not open /tmp/pitfalls-run-zz9y8x/model.tflite at 127.0.0.1:51234 "
                                        "(pid 9001) 2026-12-02T11:00:00.999+00:00"),
        rec("reworded", "faulty", error="Didn't find op for builtin opcode 'STABLEHLO_COMPOSITE' version '1'."),
        rec("vanishes", "faulty", "not-reproduced"),
        rec("breaks", "fixed", "broken"),
        rec("timing", "fixed", figures={"predict_ms": 14.0}, expected="succeeds with predict_ms <= 1000"),
        rec("ratio", "faulty", error="slow", figures={"slowdown_ratio": 2.0},
            expected="raises from litert an error matching /slow/ and slowdown_ratio >= 3"),
        rec("parity", "fixed", figures={"max_abs_diff": 3e-2}),
        rec("added", "fixed"),
    ]


def write_cell(base: Path, name: str, records: list[Record] | None = None, data: dict[str, Any] | None = None,
               versions: dict[str, str] | None = None) -> CellRecord:
    path = base / cell_results_name(name)
    if data is not None:
        write_json_atomically(path, data)
    else:
        write_run(path, RunResults.build(records or [], env={"packages": versions or {}}))
    return CellRecord(name=name, status="ran", requested={"tensorflow": "~=" + (versions or {}).get("tensorflow", "2")},
                      versions=dict(versions or {}), results=cell_results_name(name), lock=cell_lock_name(name),
                      setup_seconds=12.5, run_seconds=30.0)


def make_matrix(base: Path, cells: list[CellRecord]) -> Path:
    path = base / "matrix.json"
    write_matrix(path, MatrixRun.build("matrix.toml", ["mobile/demo"], cells))
    return path


V218 = {"tensorflow": "2.18.1", "ai-edge-litert": "1.2.0"}
V219 = {"tensorflow": "2.19.0", "ai-edge-litert": "1.3.0"}
V220 = {"tensorflow": "2.20.0", "ai-edge-litert": "1.4.0"}


@pytest.fixture()
def matrix(tmp_path: Path) -> Path:
    """Cells tf218 (ran), tf219 (ran), tf221 (infeasible), tf220 (ran, a copy of tf219 but one record)."""
    later = [r for r in cell_b() if r.scenario != "mobile/demo/identical" or r.variant != "faulty"]
    later_json = RunResults.build(later, env={}).to_json()
    na = rec("identical", "faulty").to_json()
    na.update(outcome="not-applicable", verdict="the scenario declares tensorflow<2.20")
    later_json["records"].append(na)
    cells = [write_cell(tmp_path, "tf218", cell_a(), versions=V218),
             write_cell(tmp_path, "tf219", cell_b(), versions=V219),
             CellRecord(name="tf221", status="infeasible", requested={"tensorflow": "==2.21.0", "keras": "==3.5.0"},
                        reason=RESOLVER_TEXT, setup_seconds=3.0),
             write_cell(tmp_path, "tf220", data=later_json, versions=V220)]
    return make_matrix(tmp_path, cells)


def kinds(report: Any, cell: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for row in report.rows:
        for ch in row.changes_in(cell):
            found.setdefault(row.scenario.rsplit("/", 1)[1] + ":" + row.variant, set()).add(ch.kind)
    return found


# ---------------------------------------------------------------------------------- record


def test_matrix_file_round_trips_and_keeps_cell_order(matrix: Path) -> None:
    run = load_matrix(matrix)
    assert run.schema == SCHEMA
    assert [c.name for c in run.cells] == ["tf218", "tf219", "tf221", "tf220"]
    assert MatrixRun.from_json(json.loads(json.dumps(run.to_json()))) == run
    assert run.cell("tf221").status == "infeasible" and run.cell("tf221").results is None
    assert run.cell("tf219").results_path(matrix.parent) == matrix.parent / "cells" / "tf219.json"
    assert load_matrix(matrix.parent) == run  # the folder is enough
    umask = os.umask(0)
    os.umask(umask)
    assert matrix.stat().st_mode & 0o777 == 0o666 & ~umask
    assert not [p for p in matrix.parent.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_matrix_file_keeps_fields_a_newer_writer_added(tmp_path: Path) -> None:
    data = MatrixRun.build("m.toml", [], [CellRecord("c", "not-run")]).to_json()
    data["host"] = "ci-7"
    data["cells"][0]["image"] = "sha256:abc"
    run = MatrixRun.from_json(data)
    assert run.extra == {"host": "ci-7"} and run.cells[0].extra == {"image": "sha256:abc"}
    assert run.to_json() == data


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(schema="pitfalls-matrix/2"), "has schema 'pitfalls-matrix/2'"),
    (lambda d: d["cells"][0].update(status="done"), "status 'done'"),
    (lambda d: d["cells"][0].update(results=None), "ran but names no results file"),
    (lambda d: d["cells"][0].update(results="/abs/c.json"), "not a path inside the matrix folder"),
    (lambda d: d["cells"].append(dict(d["cells"][0])), "more than once"),
    (lambda d: d["cells"][0].update(versions={"tensorflow": 2.19}), "versions is not an object of texts"),
    (lambda d: d.pop("cells"), "has no list of cells"),
])
def test_bad_matrix_file_is_one_line_usage_error(tmp_path: Path, mutate: Any, message: str) -> None:
    data = MatrixRun.build("m.toml", [], [CellRecord("c", "ran", results="cells/c.json")]).to_json()
    mutate(data)
    path = tmp_path / "matrix.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError) as err:
        load_matrix(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_missing_or_broken_matrix_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^matrix run file .*nothing\.json not found; run `pitfalls matrix`"):
        load_matrix(tmp_path / "nothing.json")
    (tmp_path / "matrix.json").write_text("{not json")
    with pytest.raises(UsageError, match="is not valid JSON"):
        build_report(tmp_path)


# ---------------------------------------------------------------------------------- judging


def test_each_change_kind_on_its_own_row(matrix: Path) -> None:
    report = build_report(matrix)
    assert kinds(report, "tf218") == {}  # the first cell has nothing to its left
    assert kinds(report, "tf219") == {
        "reworded:faulty": {"new error wording"},
        "vanishes:faulty": {"symptom no longer reproduced"},
        "breaks:fixed": {"fixed variant now broken"},
        "ratio:faulty": {"ratio check flipped"},
        "parity:fixed": {"parity moved"},
        "gone:fixed": {"record missing"},
        "added:fixed": {"record appears"},
    }
    # identical records (other wall times), volatile-only error text and a timing within noise: no change
    unchanged = {r.scenario.rsplit("/", 1)[1] + ":" + r.variant for r in report.rows if not r.changes}
    assert {"identical:fixed", "volatile:faulty", "timing:fixed"} <= unchanged
    severities = {c.kind: c.severity for c in report.changes if c.cell == "tf219"}
    assert severities["symptom no longer reproduced"] == severities["fixed variant now broken"] == "regression"
    assert severities["ratio check flipped"] == "regression"
    flip = next(c for c in report.changes if c.kind == "ratio check flipped")
    assert (flip.old, flip.new) == (4.0, 2.0) and "slowdown_ratio >= 3" in flip.what
    wording = next(c for c in report.changes if c.kind == "new error wording")
    assert "STABLEHLO_COMPOSITE" in wording.new and "out of range" in wording.old


def test_infeasible_cell_is_skipped_as_a_neighbour(matrix: Path) -> None:
    report = build_report(matrix)
    columns = {c.name: c for c in report.columns}
    assert columns["tf221"].against is None and columns["tf221"].records is None
    assert columns["tf220"].against == "tf219"  # not the infeasible cell between them
    assert columns["tf220"].version_changes == {"ai-edge-litert": ("1.3.0", "1.4.0"),
                                                "tensorflow": ("2.19.0", "2.20.0")}
    row = next(r for r in report.rows if r.key == ("mobile/demo/identical", "litert", "faulty"))
    assert row.shown == ("reproduced", "reproduced", "infeasible", "not-applicable")
    assert [(c.cell, c.kind, c.what) for c in row.changes] == [
        ("tf220", "applicability", "now outside the scenario's version range")]
    # tf220 equals tf219 but for that record: nothing else changed against tf219
    assert kinds(report, "tf220") == {"identical:faulty": {"applicability"}}
    gone = next(r for r in report.rows if r.scenario.endswith("/gone"))
    assert gone.shown == ("works", NO_RECORD, "infeasible", NO_RECORD)


def test_symptom_appears_and_fixed_again_going_back(tmp_path: Path) -> None:
    cells = [write_cell(tmp_path, "new", cell_b(), versions=V219), write_cell(tmp_path, "old", cell_a(), versions=V218)]
    report = build_report(make_matrix(tmp_path, cells))
    found = kinds(report, "old")
    assert found["vanishes:faulty"] == {"symptom appears"} and found["breaks:fixed"] == {"fixed again"}
    assert {c.severity for c in report.changes if c.kind == "ratio check flipped"} == {"improvement"}


def test_timing_beyond_noise_band_is_reported(tmp_path: Path) -> None:
    slow = [rec("timing", "fixed", figures={"predict_ms": 10.0 * 50}, expected="succeeds with predict_ms <= 1000")]
    cells = [write_cell(tmp_path, "a", [cell_a()[6]]), write_cell(tmp_path, "b", slow)]
    report = build_report(make_matrix(tmp_path, cells))
    assert [c.kind for c in report.changes] == ["figure moved"]
    assert "noise band" in report.changes[0].what


def test_missing_results_file_is_one_line_error(matrix: Path) -> None:
    (matrix.parent / "cells" / "tf219.json").unlink()
    with pytest.raises(UsageError) as err:
        build_report(matrix)
    text = str(err.value)
    assert "tf219.json" in text and "'tf219'" in text and "not found" in text and "\n" not in text


def test_bad_results_file_names_the_cell(matrix: Path) -> None:
    path = matrix.parent / "cells" / "tf218.json"
    data = json.loads(path.read_text())
    data["records"][0]["outcome"] = "exploded"
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match=r"^cell 'tf218': results file .*tf218\.json: record 0 has unknown outcome 'exploded'$"):
        build_report(matrix)


def test_real_results_file_of_main(tmp_path: Path) -> None:
    """The fixture is a results file a real run wrote: as three cells that differ only in wall times and
    volatile error text it shows no change; a real rewording of its error is seen."""
    def fixture(message_suffix: str = "", seconds: float | None = None) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(FIXTURE.read_text())
        for r in data["records"]:
            if seconds is not None:
                r["seconds"] = seconds
            if r["evidence"]["error"]:
                r["evidence"]["error"]["message"] += message_suffix
        return data

    cells = [write_cell(tmp_path, "c0", data=fixture(" (log /tmp/pitfalls-run-a9s8d7/log at 09:00:00.000)")),
             write_cell(tmp_path, "c1", data=fixture(" (log /tmp/pitfalls-run-a9s8d7/log at 09:00:00.000)", 99.0)),
             write_cell(tmp_path, "c2", data=fixture(" (log /tmp/pitfalls-run-q1w2e3/log at 12:01:02.345)"))]
    report = build_report(make_matrix(tmp_path, cells))
    assert len(report.rows) == 2
    assert report.changes == ()
    assert {r.shown for r in report.rows} == {("reproduced",) * 3, ("works",) * 3}
    reworded = fixture()
    next(r for r in reworded["records"] if r["evidence"]["error"])["evidence"]["error"]["message"] = \
        "Unterminated string starting at: line 1 column 2 (char 1)"
    cells = [write_cell(tmp_path, "a", data=fixture()), write_cell(tmp_path, "b", data=reworded)]
    report = build_report(make_matrix(tmp_path, cells))
    assert [c.kind for c in report.changes] == ["new error wording"]


# ---------------------------------------------------------------------------------- renderers


def test_terminal_shows_changed_rows_collapses_the_rest(matrix: Path) -> None:
    report = build_report(matrix)
    text = render_terminal(report)
    lines = text.splitlines()
    assert "\033[" not in text
    assert any(line.startswith("  c2 tf219: tensorflow 2.19.0, ai-edge-litert 1.3.0") for line in lines)
    assert "  c3 tf221 [infeasible]: (no versions recorded)" in lines
    reason = " ".join(line[len("     | "):].strip() for line in lines if line.startswith("     | "))
    assert " ".join(RESOLVER_TEXT.split()) == reason  # the resolver's own text, whole
    assert "     vs tf219: ai-edge-litert 1.3.0 -> 1.4.0; tensorflow 2.19.0 -> 2.20.0" in lines
    vanish = next(line for line in lines if line.startswith("mobile/demo/vanishes"))
    assert vanish.split() == ["mobile/demo/vanishes", "litert", "faulty", "reproduced", "not-reproduced*",
                              "infeasible", "not-reproduced"]
    assert "    tf219: symptom no longer reproduced" in lines
    wording = lines.index("    tf219: new error wording — the runtime's error text differs")
    assert lines[wording + 1].startswith("      was: Op builtin_code out of range: 150.")
    assert lines[wording + 2] == "      now: Didn't find op for builtin opcode 'STABLEHLO_COMPOSITE' version '1'."
    assert not any(line.startswith("mobile/demo/volatile") or line.startswith("mobile/demo/timing") for line in lines)
    unchanged = len(report.rows) - len(report.changed_rows)
    assert unchanged >= 3 and f"{unchanged} unchanged row(s) not shown" in lines
    assert lines[-1].startswith(f"{len(report.changes)} change(s) in {len(report.changed_rows)} row(s), 3 regression(s)")
    assert "\033[31m" in render_terminal(report, colour=True)


def test_html_is_self_contained_and_marks_changes(matrix: Path, tmp_path: Path) -> None:
    report = build_report(matrix)
    out = tmp_path / "out" / "matrix.html"
    write_html(report, out)
    page = out.read_text()
    assert page == render_html(report)
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert 'data-cell="tf221" data-status="infeasible"' in page
    assert "we can conclude that your requirements are unsatisfiable" in page
    assert "tensorflow 2.19.0" in page
    assert ('title="vs tf218: symptom no longer reproduced"' in page)
    assert page.count('class="cell ') == len(report.rows) * len(report.columns)
    assert page.count(" changed sev-") == sum(1 for r in report.rows for c in report.columns if r.changes_in(c.name))
    for kind in ("new error wording", "ratio check flipped", "parity moved", "applicability"):
        assert kind in page


def test_json_report(matrix: Path) -> None:
    report = build_report(matrix)
    data = json.loads(json.dumps(report_json(report)))
    assert data["schema"] == REPORT_SCHEMA
    assert [(c["name"], c["status"], c["compared_with"]) for c in data["cells"]] == [
        ("tf218", "ran", None), ("tf219", "ran", "tf218"), ("tf221", "infeasible", None), ("tf220", "ran", "tf219")]
    assert data["cells"][2]["reason"] == RESOLVER_TEXT
    assert data["cells"][1]["versions"] == V219
    row = next(r for r in data["rows"] if r["scenario"] == "mobile/demo/breaks")
    assert row["outcomes"] == {"tf218": "works", "tf219": "broken", "tf221": "infeasible", "tf220": "broken"}
    assert row["changed"] is True
    assert data["summary"]["regressions"] == 3 and data["summary"]["kinds"]["symptom no longer reproduced"] == 1
    assert len(data["changes"]) == len(report.changes)
    assert {"scenario", "target", "variant", "cell", "against", "kind", "severity", "what", "old", "new"} == \
        set(data["changes"][0])


def test_a_target_whose_package_a_cell_leaves_out_is_no_change(tmp_path: Path) -> None:
    """tensorflowjs = "none" in a cell: its tfjs records skip, and that is not a change (nor a regression)."""
    from harness.matrix.record import CellRecord, MatrixRun, write_matrix
    from harness.matrix.report import build_report
    from harness.results import Record, RunResults, write_run
    from harness.scenario import Outcome

    def rec(outcome: Outcome) -> Record:
        return Record(scenario="browser/x", taxonomy="browser/x", platform="browser", target="tfjs", variant="faulty",
                      outcome=outcome, expected="e", verdict="v")

    (tmp_path / "cells").mkdir()
    write_run(tmp_path / "cells" / "a.json", RunResults.build([rec(Outcome.REPRODUCED)], {}))
    write_run(tmp_path / "cells" / "b.json", RunResults.build([rec(Outcome.SKIPPED)], {}))
    cells = [CellRecord(name="a", status="ran", results="cells/a.json", requested={"tensorflowjs": "4.22.0"}),
             CellRecord(name="b", status="ran", results="cells/b.json", requested={"tensorflowjs": "none"})]
    write_matrix(tmp_path / "matrix.json", MatrixRun.build("m.toml", [], cells))
    assert build_report(tmp_path).changes == ()
    cells[1] = CellRecord(name="b", status="ran", results="cells/b.json", requested={"tensorflowjs": "4.21.0"})
    write_matrix(tmp_path / "matrix.json", MatrixRun.build("m.toml", [], cells))
    assert [c.kind for c in build_report(tmp_path).changes] == ["outcome changed"]
