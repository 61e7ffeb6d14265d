"""`pitfalls matrix`: the matrix file, uv's resolution (feasible and infeasible cells), bad input.

The resolution tests ask the package registry through uv (what the set-up installs); they do not
install anything.  The end-to-end test runs a real two-cell matrix on one small scenario.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crafted import run_to_the_end
from harness.errors import UsageError
from harness.matrix import env as cellenv
from harness.matrix.spec import DEFAULT_MATRIX, Cell, matrix_from_data, parse_matrix
from harness.paths import REPO_ROOT

BASE = {"defaults": {"tensorflow": "2.19.0", "tf-keras": "2.19.0", "tensorflowjs": "4.22.0",
                     "@tensorflow/tfjs": "4.22.0", "coremltools": "9.0", "ai-edge-litert": "2.3.0",
                     "constraints": ["ydf<0.14"]}}


def _matrix(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _cli(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    return run_to_the_end([sys.executable, "-m", "harness", *args], timeout=1500, what=f"pitfalls {' '.join(args)}",
                          cwd=cwd)


# --- the matrix file ------------------------------------------------------------------------

def test_default_matrix_covers_what_the_issue_asks() -> None:
    matrix = parse_matrix(DEFAULT_MATRIX)
    requested = [c.requested for c in matrix.cells]
    tf_minors = {".".join(r["tensorflow"].split(".")[:2]) for r in requested}
    assert {"2.18", "2.19", "2.20", "2.21"} <= tf_minors
    for package in ("tensorflowjs", "@tensorflow/tfjs", "coremltools", "ai-edge-litert"):
        assert len({r[package] for r in requested} - {"none"}) >= 2, package
    assert all(r["serving-tf"] == r["tensorflow"] for r in requested)


def test_defaults_cells_and_compare() -> None:
    m = matrix_from_data(Path("m.toml"), {**BASE, "cell": [
        {"name": "base"}, {"name": "old", "tensorflow": "2.18.0", "compare": "base", "targets": ["litert"]}]})
    base, old = m.cells
    assert base.packages["tensorflow"] == "2.19.0" and old.packages["tensorflow"] == "2.18.0"
    assert old.packages["coremltools"] == "9.0" and old.compare == "base" and old.targets == ("litert",)
    assert old.constraints == ("ydf<0.14",)
    assert old.requested["serving-tf"] == "2.18.0"
    assert m.pick(["old"]).names() == ["old"]


def test_axes_and_exclusions() -> None:
    m = matrix_from_data(Path("m.toml"), {**BASE, "axes": {"tensorflow": ["2.18.0", "2.19.0"],
                                                             "coremltools": ["8.3.0", "9.0"]},
                                          "exclude": [{"tensorflow": "2.18.0", "coremltools": "8.3.0",
                                                       "reason": "not wanted"}]})
    assert m.names() == ["tf2.18.0-coreml8.3.0", "tf2.18.0-coreml9.0", "tf2.19.0-coreml8.3.0", "tf2.19.0-coreml9.0"]
    excluded = {c.name: c.excluded for c in m.cells}
    assert excluded == {"tf2.18.0-coreml8.3.0": "not wanted", "tf2.18.0-coreml9.0": None,
                        "tf2.19.0-coreml8.3.0": None, "tf2.19.0-coreml9.0": None}


@pytest.mark.parametrize("text, message", [
    ("[[cell]\nname='x'", "is not valid TOML"),
    ("[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\ntorch='2.1.0'", "unknown package or key 'torch'"),
    ("[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\ncoremltools='latest'", "is not an exact version"),
    ("[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\n[[cell]]\nname='a'", "is used twice"),
    ("[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\ncompare='b'", "compare = 'b' names no cell above it"),
    ("[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\ntargets=['gpu']", "unknown target 'gpu'"),
    ("[defaults]\ntensorflow='none'\n[[cell]]\nname='a'", "tensorflow cannot be \"none\""),
    ("[[cell]]\nname='a'", "has no tensorflow version"),
    ("[defaults]\ntensorflow='2.19.0'", "no cells"),
    ("[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\n[[exclude]]\ntensorflow='2.19.0'", "needs a reason"),
    ("[defaults]\ntensorflow='2.19.0'\n[tables]\nx=1\n[[cell]]\nname='a'", "unknown table 'tables'"),
])
def test_malformed_matrix_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("[", r"\[")) as info:
        parse_matrix(_matrix(tmp_path, text))
    assert "\n" not in str(info.value)


def test_unknown_cell_name() -> None:
    with pytest.raises(UsageError, match="no cell named 'tf9'"):
        parse_matrix(DEFAULT_MATRIX).pick(["tf9"])


# --- what uv is asked -----------------------------------------------------------------------

def test_cell_requirements_replace_the_pinned_stack() -> None:
    cell = Cell(name="c", packages={"tensorflow": "2.21.0", "tensorflowjs": "none", "numpy": "2.1.3"})
    wanted = cellenv.cell_requirements(cell)
    names = [cellenv._name(r) for r in wanted]
    assert "tensorflow==2.21.0" in wanted and "tensorflow-serving-api==2.21.*" in wanted
    assert "numpy==2.1.3" in wanted and names.count("numpy") == 1  # the cell's pin replaces the harness's range
    assert "tensorflowjs" not in names and "tensorflow-decision-forests" not in names
    assert "pytest" in names and "playwright" in names  # the harness itself is still there


def test_an_infeasible_cell_carries_the_resolvers_own_text(tmp_path: Path) -> None:
    m = matrix_from_data(Path("m.toml"), {**BASE, "cell": [{"name": "tf2.21", "tensorflow": "2.21.0",
                                                             "tf-keras": "2.21.0"}]})
    resolution = cellenv.resolve(m.cells[0], scratch=tmp_path)
    assert not resolution.feasible
    assert "No solution found" in resolution.reason
    assert "tensorflow-decision-forests" in resolution.reason and "unsatisfiable" in resolution.reason


def test_a_feasible_cell_is_locked(tmp_path: Path) -> None:
    m = matrix_from_data(Path("m.toml"), {**BASE, "cell": [{"name": "c83", "coremltools": "8.3.0"}]})
    resolution = cellenv.resolve(m.cells[0], scratch=tmp_path)
    assert resolution.feasible, resolution.reason
    versions = resolution.versions()
    assert versions["coremltools"] == "8.3.0" and versions["tensorflow"] == "2.19.0"
    assert versions["tensorflow-serving-api"].startswith("2.19.")


def test_a_version_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    m = matrix_from_data(Path("m.toml"), {**BASE, "cell": [{"name": "c", "coremltools": "8.99.0"}]})
    with pytest.raises(UsageError, match="coremltools 8.99.0 does not exist"):
        cellenv.resolve(m.cells[0], scratch=tmp_path)


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bad = _matrix(tmp_path, "[defaults]\ntensorflow='2.19.0'\n[[cell]]\nname='a'\ncoremltools='8.99.0'\n")
    for args, message in (([str(bad)], "coremltools 8.99.0 does not exist"),
                          ([str(_matrix(tmp_path, "nope = [", "broken.toml"))], "is not valid TOML"),
                          (["--cells", "tf9"], "no cell named 'tf9'"),
                          (["no-such-scenario"], "")):
        proc = _cli("matrix", *args, "--out", str(out))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("pitfalls: error: ") and message in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not out.exists()


@pytest.mark.slow
def test_a_two_cell_matrix_end_to_end(tmp_path: Path) -> None:
    """Two real cells (coremltools 9.0 and 8.3.0) on one Core ML scenario; a third is infeasible."""
    matrix = _matrix(tmp_path, "\n".join([
        "[defaults]", "tensorflow = '2.19.0'", "tf-keras = '2.19.0'", "tensorflowjs = '4.22.0'",
        "'@tensorflow/tfjs' = '4.22.0'", "coremltools = '9.0'", "ai-edge-litert = '2.3.0'",
        "constraints = ['ydf<0.14']",
        "[[cell]]", "name = 'coreml9'",
        "[[cell]]", "name = 'tf2.21'", "tensorflow = '2.21.0'", "tf-keras = '2.21.0'",
        "[[cell]]", "name = 'coreml8'", "coremltools = '8.3.0'", "compare = 'coreml9'", ""]))
    out = tmp_path / "out"
    scenario = "mobile/model-conversion/conversion-of-unsupported-models/coreml"
    proc = _cli("matrix", str(matrix), scenario, "--out", str(out), "-n", "0")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = json.loads((out / "matrix.json").read_text())
    status = {c["name"]: c["status"] for c in run["cells"]}
    assert status == {"coreml9": "ran", "tf2.21": "infeasible", "coreml8": "ran"}
    cells = {c["name"]: c for c in run["cells"]}
    assert cells["coreml8"]["versions"]["coremltools"] == "8.3.0"
    results = json.loads((out / cells["coreml8"]["results"]).read_text())
    assert results["environment"]["cell"]["name"] == "coreml8"
    assert results["environment"]["packages"]["coremltools"] == "8.3.0"  # the cell's own venv ran it
    assert {r["scenario"] for r in results["records"]} == {scenario}
    assert "unsatisfiable" in cells["tf2.21"]["reason"]
    assert (out / "matrix.html").exists() and (out / "matrix-report.json").exists()


def _part(root: Path, matrix: Path, ran: str, infeasible: str | None = None, selection: list[str] | None = None) -> Path:
    from harness.matrix.record import CellRecord, MatrixRun, write_matrix
    from harness.results import RunResults, write_run

    (root / "cells").mkdir(parents=True)
    write_run(root / "cells" / f"{ran}.json", RunResults.build([], {"cell": {"name": ran}}))
    (root / "cells" / f"{ran}.lock").write_text("tensorflow==2.19.0\n")
    cells = [CellRecord(name=ran, status="ran", results=f"cells/{ran}.json", lock=f"cells/{ran}.lock")]
    if infeasible:
        cells.append(CellRecord(name=infeasible, status="infeasible", reason="No solution found"))
    write_matrix(root / "matrix.json", MatrixRun.build(str(matrix), selection or [], cells))
    return root


def test_combine_joins_one_job_per_cell_in_the_files_order(tmp_path: Path) -> None:
    from harness.matrix.record import load_matrix
    from harness.matrix.run import combine_runs

    text = "[defaults]\ntensorflow='2.19.0'\n" + "".join(f"[[cell]]\nname='{n}'\n" for n in ("a", "b", "c", "d"))
    path = _matrix(tmp_path, text)
    matrix = parse_matrix(path)
    one, two = _part(tmp_path / "p1", path, "c"), _part(tmp_path / "p2", path, "a", infeasible="b")
    out = tmp_path / "out"
    combine_runs([one, two], out_dir=out, matrix=matrix)
    run = load_matrix(out / "matrix.json")
    assert [(c.name, c.status) for c in run.cells] == [("a", "ran"), ("b", "infeasible"), ("c", "ran"), ("d", "not-run")]
    assert (out / "cells" / "a.json").exists() and (out / "cells" / "c.lock").read_text() == "tensorflow==2.19.0\n"
    with pytest.raises(UsageError, match="cell 'c' is in both"):
        combine_runs([one, _part(tmp_path / "p3", path, "c")], out_dir=tmp_path / "o2", matrix=matrix)
    with pytest.raises(UsageError, match="same matrix file and selection only"):
        combine_runs([one, _part(tmp_path / "p4", path, "d", selection=["mobile"])], out_dir=tmp_path / "o3",
                     matrix=matrix)
    assert not (tmp_path / "o2").exists() and not (tmp_path / "o3").exists()


def test_the_matrix_workflow_runs_every_cell_of_the_default_matrix() -> None:
    import yaml

    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "matrix.yml").read_text())
    cells = workflow["jobs"]["cell"]["strategy"]["matrix"]["cell"]
    assert cells == parse_matrix(DEFAULT_MATRIX).names()
