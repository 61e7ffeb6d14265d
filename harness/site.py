"""The lesson site: ``pitfalls site --out DIR`` writes a static site for students.

An index by taxonomy (platform → category → challenge, all 80 nodes) with what each challenge is,
the targets that reproduce it and outcome badges from a results file; one page per scenario at
``scenarios/<id>.html`` with the challenge, the cause, the faulty and the fixed code as a
highlighted diff (Pygments for the colours, :mod:`difflib` for the alignment), the symptom last
observed (the runtime's text, where it came from, versions), its figures as small inline SVG plots,
the fix, the references and the commands to run it; previous/next links in taxonomy order; a search
by id, title and error text in plain JavaScript (``site_assets/site.js``) over an index in
``search-index.js`` (a script, not JSON: ``fetch`` is refused on ``file://``).

The pages open from disk and from any static host: relative links only, one stylesheet, no font,
no CDN, no request beyond the site's own files.  The pages come from the ``site/`` templates of
:mod:`harness.render` and ``site.css`` is its one stylesheet (this module computes what a page shows,
the templates lay it out).  The lessons come from :mod:`harness.lesson`, the catalog from
:mod:`harness.registry`, the badges from :mod:`harness.report`'s pair status.
"""

from __future__ import annotations

import difflib
import itertools
import json
import math
import os
import secrets
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from markupsafe import Markup, escape

from harness.errors import UsageError
from harness.lesson import variant_code
from harness.render import (format_number, highlight, highlighted_lines, pygments_stylesheet, render,
                            stylesheet as render_stylesheet)
from harness.render.charts import Chart, ChartBar, ChartLine, ChartText
from harness.report import STATUSES, CellStatus, outcome_label, pair_status, records_by_pair
from harness.results import Record, RunResults
from harness.scenario import Scenario
from harness.targets import TARGETS
from harness.taxonomy import PLATFORMS, Challenge, load_taxonomy

MARKER = ".pitfalls-site"  # written into every site: a directory holding it may be replaced
VARIANT_COLOURS = {"faulty": "#e0857b", "fixed": "#5fb47f"}  # the diff's colours
PLATFORM_TITLES = {"server": "Server", "mobile": "Mobile", "browser": "Browser"}


def page_url(scenario_id: str) -> str:
    """The stable address of a scenario's lesson, relative to the site's root."""
    return f"scenarios/{scenario_id}.html"


def _root_of(url: str) -> str:
    return "../" * url.count("/")


def course_order(scenarios: Iterable[Scenario]) -> list[Scenario]:
    """The scenarios as a course: taxonomy order, then by id within a challenge."""
    rank = {c.id: i for i, c in enumerate(load_taxonomy())}
    return sorted(scenarios, key=lambda s: (rank.get(s.taxonomy, len(rank)), s.id))


# --------------------------------------------------------------------------------------------
# Code: highlighted lines aligned by difflib


@dataclass(frozen=True)
class DiffRow:
    """One row of the side-by-side diff: a line number and kind per side (None: no line there)."""

    left: int | None
    right: int | None
    kind: str  # same | chg | del | add


def diff_rows(left: Sequence[str], right: Sequence[str]) -> list[DiffRow]:
    """Align two codes line by line (difflib's opcodes): equal lines face each other, changed ones too."""
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, list(left), list(right), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [DiffRow(i, j, "same") for i, j in zip(range(i1, i2), range(j1, j2))]
        elif tag == "delete":
            rows += [DiffRow(i, None, "del") for i in range(i1, i2)]
        elif tag == "insert":
            rows += [DiffRow(None, j, "add") for j in range(j1, j2)]
        else:
            rows += [DiffRow(i, j, "chg") for i, j in itertools.zip_longest(range(i1, i2), range(j1, j2))]
    return rows


def unified_diff(faulty: str, fixed: str, context: int = 3) -> str:
    """The faulty → fixed change as a unified diff (what ``pitfalls explain --layout diff`` prints)."""
    return "\n".join(difflib.unified_diff(faulty.split("\n"), fixed.split("\n"), "faulty", "fixed",
                                          n=context, lineterm=""))


@dataclass(frozen=True)
class DiffSide:
    name: str  # faulty | fixed
    number: int | None  # the line's number, None where the side has no line
    line: Markup  # the line as Pygments coloured it
    mark: str  # del | add: how a changed line of this side is marked


@dataclass(frozen=True)
class ShownDiffRow:
    kind: str  # same | chg | del | add
    sides: tuple[DiffSide, DiffSide]


def diff_table_rows(faulty: str, fixed: str) -> list[ShownDiffRow]:
    """The side-by-side diff as the lesson shows it: difflib's rows with each side's coloured line."""
    left, right = faulty.split("\n"), fixed.split("\n")
    hl_left, hl_right = highlighted_lines(faulty), highlighted_lines(fixed)
    empty = escape("")  # an empty Markup: a side without a line
    rows = []
    for row in diff_rows(left, right):
        sides = tuple(DiffSide(name, None if index is None else index + 1, empty if index is None else hl[index], mark)
                      for name, index, hl, mark in (("faulty", row.left, hl_left, "del"),
                                                    ("fixed", row.right, hl_right, "add")))
        rows.append(ShownDiffRow(row.kind, (sides[0], sides[1])))
    return rows


def stylesheet() -> str:
    """The site's ``site.css``: the one stylesheet of :mod:`harness.render` plus Pygments' colours (``.hl``)."""
    return render_stylesheet() + "\n/* Pygments (default style) */\n" + pygments_stylesheet(".hl") + "\n"


# --------------------------------------------------------------------------------------------
# Figures as small plots


def mini_chart(name: str, values: Sequence[tuple[str, str, float]]) -> Chart | None:
    """One figure of a scenario as a small horizontal bar chart: one bar per (label, variant, value),
    on a linear axis from zero, or a logarithmic one when the values span more than 100x."""
    finite = [(label, variant, v) for label, variant, v in values if math.isfinite(v)]
    if not finite:
        return None
    label_w, plot_w, row_h = 118, 170, 18
    height = 20 + row_h * len(finite) + 4
    positive = [v for _, _, v in finite if v > 0]
    log = bool(positive) and len(positive) == len(finite) and max(positive) / min(positive) > 100
    if log:
        lo, hi = math.floor(math.log10(min(positive))) - 1, math.ceil(math.log10(max(positive)))
        hi = max(hi, lo + 1)

        def x_of(v: float) -> float:
            return plot_w * (math.log10(v) - lo) / (hi - lo)
    else:
        top = max([abs(v) for _, _, v in finite] + [0.0]) or 1.0

        def x_of(v: float) -> float:
            return plot_w * max(v, 0.0) / top
    texts = [ChartText(0, 12, name + (" (log scale)" if log else ""), css_class="name")]
    bars = []
    for i, (label, variant, value) in enumerate(finite):
        y = 20 + i * row_h
        w = max(x_of(value), 1.0)
        texts.append(ChartText(label_w - 6, y + 12, label, anchor="end"))
        bars.append(ChartBar(label_w, y + 2, w, row_h - 5, VARIANT_COLOURS.get(variant, "#888"),
                             f"{label}: {format_number(value)}"))
        texts.append(ChartText(label_w + w + 4, y + 12, format_number(value)))
    return Chart(label_w + plot_w + 70, height, "mini", data_figure=name,
                 lines=(ChartLine(label_w, 16, label_w, height - 2, "axis"),), bars=tuple(bars), texts=tuple(texts))


def figure_charts(records: Sequence[Record]) -> list[Chart]:
    """One small chart per figure name the records hold."""
    by_name: dict[str, list[tuple[str, str, float]]] = {}
    for r in sorted(records, key=lambda r: (r.target, r.variant != "faulty")):
        for name, value in r.evidence.figures.items():
            by_name.setdefault(name, []).append((f"{r.variant} [{r.target}]", r.variant, value))
    return [c for c in (mini_chart(name, values) for name, values in by_name.items()) if c is not None]


# --------------------------------------------------------------------------------------------
# Pages


def _sentence(note: str) -> str:
    return (note[:1].upper() + note[1:] + ("" if note.endswith(".") else ".")) if note else ""


def _statuses(scenario: Scenario, pairs: Mapping[tuple[str, str], list[Record]],
              have_results: bool) -> dict[str, CellStatus] | None:
    """Per target of the scenario, its status in the results (None: no results file, the badges show targets)."""
    if not have_results:
        return None
    return {t: pair_status(pairs.get((scenario.id, t), [])) for t in scenario.targets}


def lesson_page(scenario: Scenario, prev: Scenario | None, nxt: Scenario | None,
                pairs: Mapping[tuple[str, str], list[Record]], results: RunResults | None, source: str) -> str:
    from harness.taxonomy import challenge

    url = page_url(scenario.id)
    node = challenge(scenario.taxonomy)
    code = variant_code(scenario)
    records = [r for t in scenario.targets for r in pairs.get((scenario.id, t), [])]
    return render("site/lesson.html.j2", root=_root_of(url), scenario=scenario, node=node,
                  platform_title=PLATFORM_TITLES[node.platform], challenge_note=_sentence(node.note),
                  statuses=_statuses(scenario, pairs, results is not None),
                  diff=diff_table_rows(code.faulty, code.fixed),
                  unified=highlight(unified_diff(code.faulty, code.fixed), "diff"),
                  shared=highlight(code.shared) if code.shared else "",
                  results=results, source=source,
                  records=sorted(records, key=lambda r: (r.target, r.variant != "faulty")),
                  plots=figure_charts(records), outcome_label=outcome_label, page_url=page_url,
                  course=((prev, "prev", "← previous"), (nxt, "next", "next →")))


def index_page(scenarios: Sequence[Scenario], pairs: Mapping[tuple[str, str], list[Record]],
               results: RunResults | None, source: str) -> str:
    nodes = load_taxonomy()
    by_node: dict[str, list[Scenario]] = {}
    for s in course_order(scenarios):
        by_node.setdefault(s.taxonomy, []).append(s)
    covered = sum(1 for c in nodes if c.id in by_node)
    if results is None:
        observed = "No results file was given: the badges show each scenario's targets, not outcomes."
    else:
        versions = results.environment.get("packages") or {}
        runtimes = ("tensorflow", *(p for t in TARGETS for p in t.matrix_packages))  # each target's runtime
        shown = ", ".join(f"{k} {v}" for k, v in versions.items() if k in runtimes)
        observed = f"Outcomes from {source}, run of {results.created}" + (f" ({shown})." if shown else ".")
    categories: dict[str, list[tuple[str, list[tuple[Challenge, list[Scenario], str]]]]] = {
        platform: [(category, [(node, by_node.get(node.id, []), _sentence(node.note)) for node in group])
                   for category, group in itertools.groupby((c for c in nodes if c.platform == platform),
                                                            key=lambda c: c.category)]
        for platform in PLATFORMS}
    return render("site/index.html.j2", root="", lessons=len(scenarios), covered=covered, nodes=nodes,
                  observed=observed, page_url=page_url,
                  legend=[STATUSES[k] for k in ("ok", "partial", "na", "gap", "skipped", "fail", "error", "notrun")]
                  if results else [],
                  platforms=[(p, PLATFORM_TITLES[p], categories[p]) for p in PLATFORMS],
                  statuses={s.id: _statuses(s, pairs, results is not None) for s in scenarios})


def search_index(scenarios: Sequence[Scenario], pairs: Mapping[tuple[str, str], list[Record]]) -> dict[str, Any]:
    """What the search reads: per scenario its id, address, title, challenge, expected symptom and the
    error texts last observed (a user pastes one of those)."""
    from harness.taxonomy import challenge

    docs = []
    for s in course_order(scenarios):
        errors: list[str] = []
        for t in s.targets:
            for r in pairs.get((s.id, t), []):
                if r.evidence.error and r.evidence.error.message and r.evidence.error.message not in errors:
                    errors.append(r.evidence.error.message[:2000])
        docs.append({"id": s.id, "url": page_url(s.id), "title": s.title, "challenge": challenge(s.taxonomy).title,
                     "symptom": s.symptom.describe(), "errors": errors})
    return {"docs": docs}


# --------------------------------------------------------------------------------------------
# The site


def build_site(scenarios: Sequence[Scenario], results: RunResults | None = None,
               source: str = "") -> dict[str, str]:
    """Every file of the site, by path relative to its root (nothing is written)."""
    ordered = course_order(scenarios)
    pairs = records_by_pair(results.records) if results else {}
    files: dict[str, str] = {"index.html": index_page(ordered, pairs, results, source),
                             "site.css": stylesheet(),
                             "site.js": resources.files("harness").joinpath("site_assets", "site.js")
                             .read_text(encoding="utf-8"),
                             "search-index.js": "window.PITFALLS_INDEX = "
                             + json.dumps(search_index(ordered, pairs), indent=None, ensure_ascii=False)
                             .replace("</", "<\\/") + ";\n",
                             MARKER: "written by `pitfalls site`; the directory is replaced when it is rebuilt\n"}
    for i, s in enumerate(ordered):
        files[page_url(s.id)] = lesson_page(s, ordered[i - 1] if i else None,
                                            ordered[i + 1] if i + 1 < len(ordered) else None, pairs, results, source)
    return files


def check_out_dir(out: Path) -> None:
    """Refuse an output that is a file, or a non-empty directory that is not an earlier site."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a directory for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UsageError(f"--out {out} is a non-empty directory that holds no earlier site; "
                         "give a new or empty directory")


def write_site(out: Path, files: Mapping[str, str]) -> None:
    """Write the site into a temporary directory beside ``out`` and move it into place: never half a site."""
    check_out_dir(out)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        for rel, text in files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        old = None
        if out.exists():
            old = out.parent / f".{out.name}-old-{secrets.token_hex(4)}"
            out.rename(old)
        tmp.rename(out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
