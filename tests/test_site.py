"""The lesson site (``pitfalls site``), built from the real catalog and a crafted results file, read as a
student would: in Chromium from disk, following a challenge, reading the code and the evidence, searching
an error text; and the terminal diff view of ``pitfalls explain --layout diff``."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from crafted import ASYNC, LITERT, PREDICT_ERROR, old_records, write_results
from harness.cli import main
from harness.registry import load_catalog, scenario_files, scenario_root
from harness.site import MARKER, diff_rows, highlighted_lines, page_url, unified_diff
from harness.taxonomy import load_taxonomy

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "site.png"


@pytest.fixture(autouse=True)
def real_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PITFALLS_SCENARIOS", raising=False)  # the repository's scenarios


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's catalog as a site with made-up outcomes, built once: the tests only read it."""
    root = tmp_path_factory.mktemp("site")
    results = write_results(root / "latest.json", old_records())
    out = root / "site"
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
        patch.delenv("PITFALLS_SCENARIOS", raising=False)  # the repository's scenarios
        assert main(["site", "--results", str(results), "--out", str(out)]) == 0
    assert f"with outcomes from {results}" in printed.getvalue()
    return out


def test_every_scenario_has_its_page(site_dir: Path) -> None:
    catalog = load_catalog()
    assert not catalog.problems
    pages = {p.relative_to(site_dir).as_posix() for p in (site_dir / "scenarios").rglob("*.html")}
    assert pages == {page_url(s.id) for s in catalog.scenarios}
    assert len(pages) == len(scenario_files(scenario_root())) == len(catalog.scenarios)
    assert sorted(p.name for p in site_dir.iterdir()) == sorted(
        [MARKER, "index.html", "scenarios", "search-index.js", "site.css", "site.js"])
    index = (site_dir / "index.html").read_text(encoding="utf-8")
    assert index.count('<li class="challenge') == len(load_taxonomy()) == 80
    for text in (index, (site_dir / page_url(ASYNC)).read_text(encoding="utf-8")):
        loaded = re.findall(r'<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)="([^"]*)"', text)
        assert loaded and all("//" not in url and ":" not in url for url in loaded), loaded
    assert "url(" not in (site_dir / "site.css").read_text(encoding="utf-8")  # no font, no image to fetch


def test_site_bad_inputs_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "pitfalls-results/0", "records": []}')
    out = tmp_path / "site"
    assert main(["site", "--results", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "schema 'pitfalls-results/0'" in err and not out.exists()
    assert main(["site", "--results", str(tmp_path / "missing.json"), "--out", str(out)]) == 2
    assert "results file not found" in capsys.readouterr().err and not out.exists()
    assert main(["site", "--out", str(bad)]) == 2
    assert "is a file" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["site", "--out", str(mine)]) == 2
    assert "holds no earlier site" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep me"
    assert main(["site"]) == 2
    assert "--out" in capsys.readouterr().err


def test_site_without_results_and_rebuilt_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("harness.cli.DEFAULT_RESULTS", tmp_path / "none.json")
    out = tmp_path / "site"
    assert main(["site", "--out", str(out)]) == 0
    assert main(["site", "--out", str(out)]) == 0  # an earlier site is replaced
    assert "with outcomes" not in capsys.readouterr().out
    lesson = (out / page_url(ASYNC)).read_text(encoding="utf-8")
    assert f"No results file was given when this site was built; <code>pitfalls run {ASYNC}</code>" in lesson
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]  # no temporary left behind


def test_diff_rows_align_equal_lines_and_highlighting_keeps_lines() -> None:
    faulty = 'JS = """a\nb"""\n\ndef faulty(run):\n    go(JS)'
    fixed = 'JS = """a\nc"""\n\ndef fixed(run):\n    x = 1\n    go(JS)'
    rows = diff_rows(faulty.split("\n"), fixed.split("\n"))
    assert [(r.left, r.right, r.kind) for r in rows] == [
        (0, 0, "same"), (1, 1, "chg"), (2, 2, "same"), (3, 3, "chg"), (None, 4, "chg"), (4, 5, "same")]
    lines = highlighted_lines(fixed)
    assert len(lines) == len(fixed.split("\n")) and '<span class="s2">c"""</span>' in lines[1]
    assert "&lt;/script&gt;" in highlighted_lines('X = "</script>"')[0]  # escaped: code never becomes markup
    diff = unified_diff(faulty, fixed)
    assert diff.startswith("--- faulty\n+++ fixed\n@@") and "-b\"\"\"" in diff and "+    x = 1" in diff


def test_explain_diff_layout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    results = write_results(tmp_path / "r.json", old_records())
    assert main(["explain", ASYNC, "--results", str(results), "--layout", "diff"]) == 0
    out = capsys.readouterr().out
    code = out[out.index("== Faulty and fixed code =="):out.index("== Symptom last observed ==")]
    assert "--- faulty\n+++ fixed\n@@ " in code and "\x1b[" not in code
    assert any(ln.startswith("-") and "const m = tf.loadLayersModel(url);" in ln for ln in code.splitlines())
    assert any(ln.startswith("+") and "await tf.loadLayersModel(url)" in ln for ln in code.splitlines())
    assert any(ln.startswith(" ") and "return m.predict(tf.tensor(x)).array();" in ln for ln in code.splitlines())
    assert PREDICT_ERROR in out


@pytest.fixture
def browser(site_dir: Path, pitfalls_targets: Any) -> Iterator[Any]:
    """A page of the session's Chromium (the tfjs target's: one Playwright per process) that records every
    request and every console error."""
    from harness.targets.tfjs.target import TfjsTarget

    reason = TfjsTarget.unavailable_reason()
    if reason:
        pytest.skip(f"Chromium/Playwright not available here: {reason}")
    with pitfalls_targets.get("tfjs").browser_context(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()
        page.requests, page.errors = [], []
        page.on("request", lambda r: page.requests.append(r.url))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        yield page


def test_a_student_reads_the_site_in_chromium(browser: Any, site_dir: Path, tmp_path: Path) -> None:
    page = browser
    page.goto((site_dir / "index.html").as_uri())
    assert page.locator("li.challenge").count() == 80
    node = page.locator(f'li.challenge[data-node="{ASYNC}"]')
    assert node.locator('.badge[data-target="tfjs"]').get_attribute("data-status") == "ok"
    assert "Promise" in node.locator(".note").inner_text()
    litert_node = page.locator(f'li.challenge[data-node="{LITERT.rsplit("/", 1)[0]}"]')
    assert litert_node.locator("a.lesson").count() == 2  # the Core ML and the LiteRT lesson of one challenge

    node.locator("a.lesson").click()
    page.wait_for_load_state()
    assert page.url == (site_dir / page_url(ASYNC)).as_uri()
    diff = page.locator("table.diff")
    assert diff.is_visible()
    faulty_code = "\n".join(diff.locator("td.code.faulty").all_inner_texts())
    fixed_code = "\n".join(diff.locator("td.code.fixed").all_inner_texts())
    assert "def faulty(" in faulty_code and "const m = tf.loadLayersModel(url);" in faulty_code
    assert "def fixed(" in fixed_code and "const m = await tf.loadLayersModel(url);" in fixed_code
    assert diff.locator("td.code.faulty.del span").count() > 0  # coloured by Pygments, marked as removed
    assert diff.locator("td.code.fixed.add").count() > 0
    evidence = page.locator('#observed .obs[data-variant="faulty"][data-target="tfjs"]')
    assert evidence.locator("pre.error-text").inner_text() == PREDICT_ERROR and evidence.is_visible()
    assert "page error event" in evidence.inner_text() and "tensorflowjs 4.22.0" in evidence.inner_text()
    assert page.locator('#observed svg.mini[data-figure="load_ms"] rect.bar').count() == 1
    assert f"pitfalls run {ASYNC}" in page.locator("#run pre.cmd").inner_text()

    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "site.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 20_000
    if os.environ.get("PITFALLS_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, SCREENSHOT)

    # a course: next, then previous, comes back
    page.locator('nav.course a[rel="next"]').click()
    page.wait_for_load_state()
    assert page.url != (site_dir / page_url(ASYNC)).as_uri() and page.locator("table.diff").count() == 1
    page.locator('nav.course a[rel="prev"]').click()
    page.wait_for_load_state()
    assert page.url == (site_dir / page_url(ASYNC)).as_uri()

    # a student pastes the error they got (their variable is not `m`) and lands on the lesson
    page.goto((site_dir / "index.html").as_uri())
    page.fill("#search", "Uncaught TypeError: model.predict is not a function at main.js:12")
    first = page.locator("#search-results a").first
    assert first.get_attribute("data-id") == ASYNC
    assert "predict is not a function" in first.inner_text()
    page.press("#search", "Enter")
    page.wait_for_load_state()
    assert page.url == (site_dir / page_url(ASYNC)).as_uri()

    # from a lesson page, deeper in the tree, by id
    page.fill("#search", LITERT)
    page.locator("#search-results a").first.click()
    page.wait_for_load_state()
    assert page.url == (site_dir / page_url(LITERT)).as_uri()
    assert "Cannot set tensor: Dimension mismatch." in page.locator("#observed pre.error-text").first.inner_text()

    assert page.errors == []
    assert page.requests and all(url.startswith("file://") for url in page.requests), page.requests
