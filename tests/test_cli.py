"""`pitfalls list|run|explain` and the command line's handling of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from crafted import DEMO_ID, record, write_results, write_scenario_tree
from harness.cli import main
from harness.report import CATALOG_END, CATALOG_START
from harness.paths import REPO_ROOT
from harness.taxonomy import load_taxonomy


@pytest.fixture
def demo_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_scenario_tree(tmp_path)
    monkeypatch.setenv("PITFALLS_SCENARIOS", str(root))
    return root


def _one_line_error(capsys: pytest.CaptureFixture[str], words: str, quiet: bool = True) -> None:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pitfalls: error:") and words in lines[0], captured.err
    assert captured.out == "" or not quiet


def test_list_tree_shows_every_platform_and_target_availability(demo_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("server  (0/") and "\nmobile  (1/" in out and "\nbrowser  (0/" in out
    assert f"* {DEMO_ID}  [coreml" in out and "no scenario yet" in out
    assert out.rstrip().splitlines()[-1].startswith("targets here: tfserving")


def test_list_json_has_exactly_the_documented_shape(demo_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {"scenarios", "taxonomy"}
    assert data["scenarios"] == [{"id": DEMO_ID, "taxonomy": "mobile/data-extraction", "platform": "mobile",
                                  "targets": ["coreml"], "title": "Demo: a document with single quotes is not JSON",
                                  "applies": [], "ranges": []}]
    assert len(data["taxonomy"]) == 80
    assert all(set(n) == {"id", "platform", "category", "name"} for n in data["taxonomy"])


def test_list_markdown_and_update(demo_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--markdown"]) == 0
    table = capsys.readouterr().out
    rows = [ln for ln in table.splitlines() if ln.startswith("| `")]
    assert len(rows) == len(load_taxonomy()) == 80
    demo_row = next(r for r in rows if r.startswith("| `mobile/data-extraction`"))
    assert f"[demo](scenarios/{DEMO_ID}.py)" in demo_row and "| coreml |" in demo_row
    assert "Expecting property name enclosed in double quotes" in demo_row
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{CATALOG_START}\nold\n{CATALOG_END}\n\nafter\n")
    assert main(["list", "--markdown", "--update", str(readme)]) == 0
    assert readme.read_text() == f"# x\n\n{CATALOG_START}\n{table}{CATALOG_END}\n\nafter\n"
    capsys.readouterr()
    readme.write_text("no markers")
    assert main(["list", "--markdown", "--update", str(readme)]) == 2
    _one_line_error(capsys, "has no <!-- catalog:start -->")


def test_list_warns_about_a_broken_scenario_file(demo_tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_scenario_tree(demo_tree.parent, {"browser/inference-speed": "SCENARIO = 1\n"})
    assert main(["list", "--json"]) == 1
    captured = capsys.readouterr()
    assert "defines no `SCENARIO = Scenario(...)`" in captured.err
    assert [s["id"] for s in json.loads(captured.out)["scenarios"]] == [DEMO_ID]


@pytest.mark.parametrize("args, words", [
    (["run", "mobile/nonexistent"], "unknown selection 'mobile/nonexistent'"),
    (["run", "server"], "no scenario covers 'server' yet"),
    (["run", "mobile", "--target", "tfjs"], "no selected scenario runs on tfjs"),
    (["run", "--target", "onnx"], "argument --target: invalid choice: 'onnx'"),
    (["run", "-n", "-1"], "-n must be 0 or more"),
    (["explain", "mobile/data-extraction/nope"], "unknown scenario id 'mobile/data-extraction/nope'"),
    (["explain", DEMO_ID, "--results", "missing.json"], "results file not found: missing.json"),
    (["report", "missing.json"], "results file not found: missing.json"),
    (["list", "--update", "README.md"], "--update FILE goes with --markdown"),
    (["list", "--json", "--markdown"], "not allowed with argument"),
    (["explain", DEMO_ID, "--", "-x"], "only goes with `run`"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_arguments_get_one_line_and_exit_2(demo_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str], args: list[str], words: str) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    assert main(args) == 2
    _one_line_error(capsys, words)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_explain_shows_cause_code_side_by_side_symptom_and_fix(demo_tree: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    results = write_results(tmp_path / "r.json", [
        record(DEMO_ID, "coreml", "faulty", "reproduced", error="Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        record(DEMO_ID, "coreml", "fixed", "works", figures={"max_abs_diff": 0.0})])
    assert main(["explain", DEMO_ID, "--results", str(results), "--width", "140", "--layout", "side"]) == 0
    out = capsys.readouterr().out
    order = [out.index(h) for h in ("== The challenge: mobile/data-extraction ==", "== Cause ==",
                                    "== Faulty and fixed code ==", "== Symptom last observed ==", "== Fix ==",
                                    "== References ==")]
    assert order == sorted(order)
    header = next(ln for ln in out.splitlines() if ln.startswith("faulty"))
    assert header.split("│")[1].strip() == "fixed"
    # the constant only the faulty variant uses is shown on its side, with the real function source
    code = out[out.index("─┼─"):out.index("== Symptom")].splitlines()
    assert any(ln.split("│")[0].startswith('BROKEN_DOCUMENT = "{\'rgba\': true}"') for ln in code)
    assert any("def fixed(run: Run)" in ln.split("│")[1] for ln in code if "│" in ln)
    assert "[coreml] faulty: reproduced" in out and "line 1 column 2 (char 1)" in out
    assert "https://docs.python.org/3/library/json.html" in out and "\x1b[" not in out


def test_explain_stacked_without_results(demo_tree: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("harness.cli.DEFAULT_RESULTS", tmp_path / "none.json")
    assert main(["explain", f"scenarios/{DEMO_ID}.py", "--layout", "stacked"]) == 0
    out = capsys.readouterr().out
    assert out.index("--- faulty ---") < out.index("json.loads(BROKEN_DOCUMENT)") < out.index("--- fixed ---")
    assert f"no results file yet ({tmp_path / 'none.json'}); run `pitfalls run {DEMO_ID}`" in out


def test_run_one_cheap_scenario_end_to_end(demo_tree: Path, tmp_path: Path) -> None:
    """The console entry point in a subprocess: pytest runs, results and reports are written."""
    results = tmp_path / "out" / "latest.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "mobile/data-extraction", "--results", str(results)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"[2/2] ok   {DEMO_ID} fixed[coreml]" in proc.stdout
    assert "variants: reproduced 1, works 1" in proc.stdout
    assert sorted(p.name for p in results.parent.iterdir()) == ["junit.xml", "latest.json", "pytest.log", "report.html"]
    assert 'tests="2"' in (results.parent / "junit.xml").read_text()


def test_run_fails_when_a_scenario_misbehaves_and_k_can_select_nothing(demo_tree: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = (demo_tree / f"{DEMO_ID}.py").read_text().replace('"{\'rgba\': true}"', '"{}"')
    (demo_tree / f"{DEMO_ID}.py").write_text(source)
    results = tmp_path / "latest.json"
    assert main(["run", DEMO_ID, "--results", str(results), "--variant", "faulty"]) == 1
    out = capsys.readouterr().out
    assert "not-reproduced: mobile/data-extraction/demo faulty[coreml]" in out
    report_dir = tmp_path / "k"
    assert main(["run", DEMO_ID, "--report-dir", str(report_dir), "--results", str(report_dir / "r.json"),
                 "-k", "nothing_matches"]) == 2
    _one_line_error(capsys, "no scenario matched the selection and -k 'nothing_matches'", quiet=False)
    assert not report_dir.exists()


def test_python_dash_m_harness_is_the_cli() -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0 and all(c in proc.stdout for c in ("list", "run", "explain", "report", "diff"))


def test_side_by_side_keeps_columns_aligned_with_colours() -> None:
    pytest.importorskip("pygments")
    from harness.commands.explain import ANSI, side_by_side

    text = side_by_side('X = """a long string that\nspans lines"""\ndef f():\n    return X', "y = 2", 60, True, ("faulty", "fixed"))
    assert "\x1b[" in text
    bars = {ANSI.sub("", line).index("│") for line in text.splitlines() if "│" in line}
    assert bars == {(60 - 3) // 2 + 1}


def test_run_goes_on_past_a_scenario_file_that_cannot_be_collected(demo_tree: Path, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_scenario_tree(demo_tree.parent, {"mobile/model-update": "import no_such_module_for_pitfalls\n"})
    assert main(["run", "mobile", "--results", str(tmp_path / "r.json")]) == 1
    captured = capsys.readouterr()
    assert "variants: reproduced 1, works 1" in captured.out
    assert ("a scenario file could not be collected: " in captured.err
            and "mobile/model-update.py: ModuleNotFoundError: No module named 'no_such_module_for_pitfalls'" in captured.err)


def test_explain_shows_the_helpers_both_variants_share(demo_tree: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("harness.cli.DEFAULT_RESULTS", demo_tree / "none.json")
    source = (demo_tree / f"{DEMO_ID}.py").read_text().replace(
        "def faulty(run: Run) -> None:\n    import json\n\n    json.loads(BROKEN_DOCUMENT)",
        "def _parse(text: str) -> object:\n    import json\n\n    return json.loads(text)\n\n\n"
        "def faulty(run: Run) -> None:\n    _parse(BROKEN_DOCUMENT)")
    (demo_tree / f"{DEMO_ID}.py").write_text(source.replace("json.loads('{\"x\": 0.5}')", "_parse('{\"x\": 0.5}')"))
    assert main(["explain", DEMO_ID, "--layout", "stacked"]) == 0
    out = capsys.readouterr().out
    shared = out[out.index("--- used by both variants ---"):out.index("== Symptom")]
    assert "def _parse(text: str) -> object:" in shared and "BROKEN_DOCUMENT" not in shared
    assert out.index('BROKEN_DOCUMENT = "') < out.index("--- fixed ---")


def test_progress_follows_the_event_stream(tmp_path: Path) -> None:
    import io

    from harness.progress import Progress

    events, out = tmp_path / "events.jsonl", io.StringIO()
    progress = Progress(events, out, live=False)
    progress.poll()  # no file yet
    label = f"{DEMO_ID} faulty[coreml]"
    events.write_text(json.dumps({"event": "total", "count": 0}) + "\n" + json.dumps({"event": "total", "count": 2})
                      + "\n" + json.dumps({"event": "start", "nodeid": "n1", "label": label}) + "\n"
                      + '{"event": "done", "nodeid": "n1", "outc')  # a line still being written
    progress.poll()
    assert progress.total == 2 and list(progress.running) == ["n1"] and out.getvalue() == ""
    with events.open("a") as f:
        f.write('ome": "xfailed"}\n')
    progress.finish()
    assert out.getvalue().startswith(f"[1/2] gap  {label} (")
    assert progress.done == 1 and not progress.running


@pytest.mark.parametrize("content, words", [
    ("{not json", "is not valid JSON"),
    ('{"schema": "pitfalls-results/1", "records": [{"scenario": "x"}]}', "record 0 lacks taxonomy"),
    ('{"schema": "pitfalls-results/1"}', "has no list of records"),
    ("[]", "has schema 'list', expected 'pitfalls-results/1'"),
])
@pytest.mark.parametrize("command", ["report", "diff", "explain"])
def test_malformed_results_files(demo_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 content: str, words: str, command: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    args = {"report": ["report", str(bad), "--out", str(tmp_path / "out")],
            "diff": ["diff", str(bad), str(bad)],
            "explain": ["explain", DEMO_ID, "--results", str(bad)]}[command]
    assert main(args) == 2
    _one_line_error(capsys, words)
    assert not (tmp_path / "out").exists()


def test_run_takes_auto_workers_from_cores_and_memory() -> None:
    from harness.cli import build_parser
    from harness.shard import default_workers

    assert build_parser().parse_args(["run", "-n", "auto"]).workers == default_workers()
    assert build_parser().parse_args(["run", "-n", "3"]).workers == 3
