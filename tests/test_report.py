"""The reports rendered from a crafted results file: HTML (opened in headless Chromium) and JUnit."""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterator

import pytest

from crafted import ASYNC, COREML, DEMO_ID, PREDICT_ERROR, SERVER, old_records, record, write_results, write_scenario_tree
from harness.cli import main
from harness.report import anchor, render_html, render_junit
from harness.results import RunResults, build_results, load_run
from harness.taxonomy import load_taxonomy

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "report.png"


@pytest.fixture
def report_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PITFALLS_SCENARIOS", str(write_scenario_tree(tmp_path)))  # a catalog of one demo
    results = write_results(tmp_path / "latest.json", old_records())
    assert main(["report", str(results), "--out", str(tmp_path / "out")]) == 0
    return tmp_path / "out"


def test_report_command_writes_html_and_junit(report_dir: Path) -> None:
    assert sorted(p.name for p in report_dir.iterdir()) == ["junit.xml", "report.html"]
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert PREDICT_ERROR in text and f'id="{anchor(ASYNC)}"' in text


def test_junit_counts_follow_the_outcomes() -> None:
    suite = ET.fromstring(render_junit(RunResults.from_json(build_results(old_records(), env={}))))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("8", "2", "1", "0")
    failed = {c.get("classname") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert failed == {SERVER.replace("/", ".")}


def test_html_without_figures_says_so() -> None:
    text = render_html(RunResults.from_json(build_results([r for r in old_records() if not r["evidence"]["figures"]], env={})))
    assert "No latency, parity or size figures" in text


@pytest.fixture
def page(report_dir: Path, pitfalls_targets: Any) -> Iterator[object]:
    """The report in a page of the session's Chromium (the tfjs target's: one Playwright per process)."""
    from harness.targets.tfjs.target import TfjsTarget

    reason = TfjsTarget.unavailable_reason()
    if reason:
        pytest.skip(f"Chromium/Playwright not available here: {reason}")
    with pitfalls_targets.get("tfjs").browser_context(viewport={"width": 1200, "height": 760}) as context:
        page = context.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto((report_dir / "report.html").as_uri())
        page.requests = requests  # type: ignore[attr-defined]
        yield page


def test_html_report_in_chromium(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cell = page.locator(f'td.cell[data-node="{ASYNC}"][data-target="tfjs"]')
    assert cell.get_attribute("data-status") == "ok" and cell.inner_text().strip() == "✓"
    node = COREML.rsplit("/", 1)[0]
    assert page.locator(f'td.cell[data-node="{node}"][data-target="coreml"]').get_attribute("data-status") == "partial"
    assert page.locator(f'td.cell[data-node="{node}"][data-target="litert"]').get_attribute("data-status") == "ok"
    assert page.locator(f'td.cell[data-node="{SERVER}"][data-target="tfserving"]').get_attribute("data-status") == "fail"
    assert page.locator('td.cell[data-node="browser/model-security"]').get_attribute("data-status") == "none"
    demo = page.locator('td.cell[data-node="mobile/data-extraction"]')
    assert [demo.nth(i).get_attribute("data-status") for i in range(2)] == ["none", "notrun"]  # litert, coreml
    mobile = sum(1 for c in load_taxonomy() if c.platform == "mobile")
    assert page.locator("td.cell").count() == 80 + mobile  # one column per target; mobile has two

    cell.locator("a").click()
    section = page.locator(f"#{anchor(ASYNC)}")
    assert page.url.endswith(f"#{anchor(ASYNC)}")
    faulty = section.locator('.variant[data-variant="faulty"]')
    assert faulty.locator(".error-text").inner_text() == PREDICT_ERROR and faulty.is_visible()
    assert "reproduced" in faulty.locator(".badge").first.inner_text()
    assert "max_abs_diff" in section.locator('.variant[data-variant="fixed"] .figures').inner_text()

    bars = {css: page.locator(f"svg#{css} rect.bar").count() for css in ("plot-latency", "plot-parity", "plot-size")}
    assert bars == {"plot-latency": 3, "plot-parity": 2, "plot-size": 2}
    assert page.locator("svg#plot-latency").is_visible()
    assert page.locator('svg#plot-size rect.bar[data-target="coreml"]').count() == 1
    assert all(url.startswith("file://") for url in page.requests), page.requests

    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), clip={"x": 0, "y": 0, "width": 1200, "height": 760})
    assert shot.stat().st_size > 10_000
    if os.environ.get("PITFALLS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)


def test_report_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "pitfalls-results/0", "records": []}')
    out = tmp_path / "never"
    assert main(["report", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "schema 'pitfalls-results/0'" in err
    assert not out.exists()
    good = write_results(tmp_path / "r.json", old_records())
    assert load_run(good).summary["reproduced"] == 3
    assert main(["report", str(good), "--out", str(good)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_html_states_how_many_challenges_reproduce() -> None:
    text = render_html(RunResults.from_json(build_results(old_records(), env={})))
    assert "<b>2 of 80</b> challenges reproduced on at least one target in this run (3 with a scenario" in text


def test_plot_axes_use_round_ticks_and_switch_to_log_for_wide_ranges() -> None:
    import re

    from harness.report import Bar, svg_bar_chart

    def ticks(svg: str) -> list[str]:
        return re.findall(r'class="tick" text-anchor="middle">([^<]+)<', svg)[:-1]  # the last is the unit

    linear = svg_bar_chart([Bar("tfjs · a · fixed · load_ms", 3.2, "tfjs", "#a"),
                            Bar("tfjs · b · fixed · load_ms", 37.0, "tfjs", "#b")], "ms", False, "p1")
    assert ticks(linear) == ["0", "10", "20", "30", "40"] and "log scale" not in linear
    wide = svg_bar_chart([Bar("litert · a · fixed · invoke_ms", 0.5, "litert", "#a"),
                          Bar("litert · b · fixed · invoke_ms", 1500.0, "litert", "#b")], "ms", False, "p2")
    assert "ms (log scale)" in wide and ticks(wide)[0] == "0.1" and ticks(wide)[-1] == "10000"
    tiny = svg_bar_chart([Bar("tfjs · a · fixed · max_abs_diff", 1e-21, "tfjs", "#a"),
                          Bar("tfjs · b · fixed · max_abs_diff", 4e-3, "tfjs", "#b")], "", True, "p3")
    assert ticks(tiny)[0] == "1e-10" and len(ticks(tiny)) <= 7


def test_html_shows_each_scenarios_faulty_and_fixed_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.registry import load_catalog

    monkeypatch.setenv("PITFALLS_SCENARIOS", str(write_scenario_tree(tmp_path)))
    scenarios = load_catalog().scenarios
    run = RunResults.from_json(build_results([record(DEMO_ID, "coreml", "faulty", "reproduced", error="x"),
                                              record(DEMO_ID, "coreml", "fixed", "works")], env={}))
    text = render_html(run, scenarios)
    section = text[text.index(f'id="{anchor(DEMO_ID)}"'):]
    faulty = section[section.index('<div class="code" data-variant="faulty">'):section.index('data-variant="fixed"')]
    # escaped, with the constant only the faulty variant uses above its function
    assert "BROKEN_DOCUMENT = &#34;{&#39;rgba&#39;: true}&#34;" in faulty
    assert faulty.index("BROKEN_DOCUMENT =") < faulty.index("def faulty(run: Run) -&gt; None:")
    fixed = section[section.index('<div class="code" data-variant="fixed">'):]
    assert "def fixed(run: Run) -&gt; dict[str, float]:" in fixed[:fixed.index("</pre>")]
    assert "symptom" not in faulty and "raises an error matching" in faulty  # the expectation heads each side
