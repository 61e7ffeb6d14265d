"""Markup smuggled into what the pages show, written as the attack.

A results file, a matrix run or a model path is untrusted: whoever wrote it may put
``<img src=x onerror=alert(1)>`` into any text.  The target and the scenario id are refused at load with
one line (exit 2, nothing written); every other text reaches the pages escaped.  Each page is parsed with
the standard library's ``html.parser`` and must hold no ``<img>`` element and no ``on*`` attribute:
the markup is shown as text, never becomes an element.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from crafted import DEMO_ID, ENV, record, write_scenario_tree
from harness.cli import main
from harness.results import build_results

PAYLOAD = '"><img src=x onerror=alert(1)>'
SCRIPTS_ALLOWED = {"search-index.js", "site.js"}  # the site's own files, by name


class Elements(HTMLParser):
    """Every element of a page with its attributes, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Elements:
    parser = Elements()
    parser.feed(page)
    parser.close()
    return parser


def assert_inert(page: str, *, where: str) -> Elements:
    """No element and no attribute came from the payload; the payload is there as text."""
    dom = parse(page)
    assert not [tag for tag, _ in dom.elements if tag == "img"], f"{where}: an <img> element came through"
    handlers = [(tag, name) for tag, attrs in dom.elements for name in attrs if name.lower().startswith("on")]
    assert not handlers, f"{where}: event handler attributes {handlers}"
    scripts = [attrs.get("src") for tag, attrs in dom.elements if tag == "script"]
    assert all(src is None or src.rsplit("/", 1)[-1] in SCRIPTS_ALLOWED for src in scripts), scripts
    return dom


def hostile_record(scenario: str, target: str, variant: str, outcome: str) -> dict[str, Any]:
    """A well-formed record whose every free text holds the payload (target and scenario stay valid)."""
    r = record(scenario, target, variant, outcome, error=f"error {PAYLOAD}", verdict=f"verdict {PAYLOAD}",
               expected=f"expected {PAYLOAD}", figures={f"load_ms{PAYLOAD}": 3.0, "max_abs_diff": 1e-6})
    r["evidence"]["error"]["kind"] = f"Kind{PAYLOAD}"
    r["evidence"]["error"]["runtime"] = f"runtime{PAYLOAD}"
    r["evidence"]["error"]["source"] = f"source{PAYLOAD}"
    r["evidence"]["texts"] = [f"console: {PAYLOAD}"]
    r["evidence"]["notes"] = {f"note{PAYLOAD}": PAYLOAD}
    r["evidence"]["versions"] = {f"pkg{PAYLOAD}": f"1.0{PAYLOAD}"}
    r["nodeid"] = f"node{PAYLOAD}"
    r["variant"] = variant
    return r


def hostile_results(path: Path, records: list[dict[str, Any]]) -> Path:
    data = build_results(records, env={**ENV, "python": f"3.11{PAYLOAD}", "platform": PAYLOAD,
                                       "packages": {f"tensorflow{PAYLOAD}": PAYLOAD}})
    data["created"] = f"2026-12-07{PAYLOAD}"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def hostile_file(tmp_path: Path, field: str) -> Path:
    r = record(DEMO_ID, "coreml", "faulty", "reproduced", error="x")
    r[field] = f"{r[field]}{PAYLOAD}" if field == "scenario" else PAYLOAD
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps({"schema": "pitfalls-results/1", "created": "now", "records": [r]}), encoding="utf-8")
    return path


@pytest.mark.parametrize("field", ["target", "scenario"])
@pytest.mark.parametrize("command", ["report", "site"])
def test_markup_in_target_or_scenario_is_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              field: str, command: str) -> None:
    path = hostile_file(tmp_path, field)
    out = tmp_path / "out"
    args = ["report", str(path), "--out", str(out)] if command == "report" else \
        ["site", "--results", str(path), "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"record 0 has {field} " in err
    assert not out.exists()


@pytest.mark.parametrize("scenario", ["server/../../etc/passwd", "browser/a b", "/browser/x", "desktop/x", "browser",
                                      "browser/x\n<script>"])
def test_scenario_ids_not_shaped_like_a_catalog_id_are_refused(tmp_path: Path, scenario: str,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    r = record(DEMO_ID, "coreml", "faulty", "reproduced")
    r["scenario"] = scenario
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema": "pitfalls-results/1", "records": [r]}), encoding="utf-8")
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_well_formed_scenario_of_an_older_catalog_still_loads_for_diff(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    retired = "browser/model-loading/a-scenario-retired-since"
    old = tmp_path / "old.json"
    old.write_text(json.dumps(build_results([record(retired, "tfjs", "faulty", "reproduced")], env={})))
    new = tmp_path / "new.json"
    new.write_text(json.dumps(build_results([record(DEMO_ID, "coreml", "faulty", "reproduced")], env={})))
    code = main(["diff", str(old), str(new)])
    assert code in (0, 1), capsys.readouterr().err
    assert retired in capsys.readouterr().out


def test_report_shows_every_hostile_text_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITFALLS_SCENARIOS", str(write_scenario_tree(tmp_path)))
    path = hostile_results(tmp_path / "r.json", [hostile_record(DEMO_ID, "coreml", "faulty", "reproduced"),
                                                 hostile_record(DEMO_ID, "coreml", "fixed", "works")])
    assert main(["report", str(path), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    dom = assert_inert(page, where="report.html")
    assert not [tag for tag, _ in dom.elements if tag == "script"]
    text = "".join(dom.text)
    for shown in (f"error {PAYLOAD}", f"verdict: verdict {PAYLOAD}", f"console: {PAYLOAD}", f"load_ms{PAYLOAD}",
                  f"pkg{PAYLOAD}", f"2026-12-07{PAYLOAD}", f"tensorflow{PAYLOAD}"):
        assert shown in text, shown  # shown to the reader, as text


def test_site_shows_every_hostile_text_escaped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITFALLS_SCENARIOS", str(write_scenario_tree(tmp_path)))
    path = hostile_results(tmp_path / "r.json", [hostile_record(DEMO_ID, "coreml", "faulty", "reproduced"),
                                                 hostile_record(DEMO_ID, "coreml", "fixed", "works")])
    out = tmp_path / "site"
    assert main(["site", "--results", str(path), "--out", str(out)]) == 0
    pages = sorted(out.rglob("*.html"))
    assert len(pages) == 2  # the index and the demo's lesson
    for page in pages:
        assert_inert(page.read_text(encoding="utf-8"), where=str(page.relative_to(out)))
    lesson = "".join(parse((out / "scenarios" / f"{DEMO_ID}.html").read_text(encoding="utf-8")).text)
    for shown in (f"error {PAYLOAD}", f"console: {PAYLOAD}", f"load_ms{PAYLOAD}", f"pkg{PAYLOAD}"):
        assert shown in lesson, shown
    index_js = (out / "search-index.js").read_text(encoding="utf-8")
    assert "</" not in index_js  # the error texts in the search index cannot close a script element


def test_check_page_escapes_model_path_and_runtime_text() -> None:
    from harness.check.render import html_page
    from harness.check.report import CheckReport, Divergence, Finding, LayerError, TargetReport

    t = TargetReport("litert", max_abs_diff=0.2)
    t.add(Finding("blocker", f"runtime said {PAYLOAD}", f"Converter{PAYLOAD}", "runtime", taxonomy="mobile/x",
                  scenario=f"mobile/x{PAYLOAD}", fix=f"fix {PAYLOAD}", step=f"prepare{PAYLOAD}"))
    t.divergence = Divergence(f"litert{PAYLOAD}", {"atol": 0.05}, f"c1{PAYLOAD}",
                              [LayerError(f"c1{PAYLOAD}", "seq/c1", 1.2, 0.9, 0.1, False, "local")],
                              note=f"note {PAYLOAD}")
    t.figures[f"load{PAYLOAD}_s"] = 0.5
    t.settle()
    report = CheckReport(model={"path": f"/models/{PAYLOAD}.keras", "format": f"keras{PAYLOAD}",
                                "flavour": PAYLOAD, "parameters": 10, "inputs": [PAYLOAD], "outputs": []},
                         inputs={}, targets={"litert": t}, created=f"now{PAYLOAD}")
    page = html_page(report)
    dom = assert_inert(page, where="check.html")
    text = "".join(dom.text)
    for shown in (f"runtime said {PAYLOAD}", f"fix {PAYLOAD}", f"note {PAYLOAD}", f"{PAYLOAD}.keras"):
        assert shown in text, shown
    embedded = page[page.index('id="report">') + len('id="report">'):page.index("</script>")]
    assert json.loads(embedded)["model"]["path"] == f"/models/{PAYLOAD}.keras"  # the embedded JSON reads back exactly


def test_matrix_report_escapes_cell_texts(tmp_path: Path) -> None:
    from harness.matrix.record import CellRecord, MatrixRun, cell_lock_name, cell_results_name, write_matrix
    from harness.matrix.report import build_report, render_html
    from harness.results import write_json_atomically

    def cell(name: str, error: str, versions: dict[str, str]) -> CellRecord:
        records = [hostile_record("mobile/demo/x", "litert", "faulty", "reproduced")]
        records[0]["evidence"]["error"]["message"] = error
        write_json_atomically(tmp_path / cell_results_name(name), build_results(records, env={"packages": versions}))
        return CellRecord(name=name, status="ran", requested={"tensorflow": PAYLOAD}, versions=versions,
                          results=cell_results_name(name), lock=cell_lock_name(name), setup_seconds=1.0, run_seconds=1.0)

    cells = [cell("a", f"first {PAYLOAD}", {"tensorflow": f"2.18{PAYLOAD}"}),
             cell("b", f"second wording {PAYLOAD}", {"tensorflow": f"2.19{PAYLOAD}"}),
             CellRecord(name="c", status="infeasible", requested={}, reason=f"resolver {PAYLOAD}", setup_seconds=1.0)]
    write_matrix(tmp_path / "matrix.json", MatrixRun.build(f"matrix{PAYLOAD}.toml", ["mobile/demo"], cells))
    page = render_html(build_report(tmp_path / "matrix.json"))
    text = "".join(assert_inert(page, where="matrix.html").text)
    for shown in (f"second wording {PAYLOAD}", f"2.19{PAYLOAD}", f"resolver {PAYLOAD}", f"matrix{PAYLOAD}.toml"):
        assert shown in text, shown


def test_every_catalog_scenario_id_and_target_is_accepted() -> None:
    """The refusal never hits a real record: every id and target of today's catalog passes the check."""
    from harness.registry import all_scenarios
    from harness.results import check_identity

    scenarios = all_scenarios()
    assert len(scenarios) > 50
    for s in scenarios:
        for target in s.targets:
            check_identity(s.id, target)  # raises ValueError on a refusal
