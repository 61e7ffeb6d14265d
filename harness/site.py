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
no CDN, no request beyond the site's own files.  The lessons come from :mod:`harness.lesson`, the
catalog from :mod:`harness.registry`, the badges from :mod:`harness.report`'s pair status.
"""

from __future__ import annotations

import difflib
import html
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

from harness.errors import UsageError
from harness.lesson import variant_code
from harness.report import STATUSES, CellStatus, outcome_label, pair_status, records_by_pair
from harness.results import Record, RunResults
from harness.scenario import Scenario
from harness.taxonomy import PLATFORMS, Challenge, load_taxonomy

MARKER = ".pitfalls-site"  # written into every site: a directory holding it may be replaced
ASSETS = ("site.css", "site.js")
VARIANT_COLOURS = {"faulty": "#e0857b", "fixed": "#5fb47f"}  # the diff's colours
PLATFORM_TITLES = {"server": "Server", "mobile": "Mobile", "browser": "Browser"}


def page_url(scenario_id: str) -> str:
    """The stable address of a scenario's lesson, relative to the site's root."""
    return f"scenarios/{scenario_id}.html"


def _root_of(url: str) -> str:
    return "../" * url.count("/")


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e6 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.4g}"


def course_order(scenarios: Iterable[Scenario]) -> list[Scenario]:
    """The scenarios as a course: taxonomy order, then by id within a challenge."""
    rank = {c.id: i for i, c in enumerate(load_taxonomy())}
    return sorted(scenarios, key=lambda s: (rank.get(s.taxonomy, len(rank)), s.id))


# --------------------------------------------------------------------------------------------
# Code: highlighted lines aligned by difflib


def highlighted_lines(code: str) -> list[str]:
    """One HTML fragment per line of ``code``, coloured by Pygments (a multi-line string stays coloured:
    Pygments closes and reopens its spans at each line end)."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    plain = code.split("\n")
    out = highlight(code, PythonLexer(stripnl=False, ensurenl=True), HtmlFormatter(nowrap=True))
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(plain):  # never seen; keep the lines right rather than coloured
        return [_e(line) for line in plain]
    return lines


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


def diff_html(faulty: str, fixed: str) -> str:
    left, right = faulty.split("\n"), fixed.split("\n")
    hl_left, hl_right = highlighted_lines(faulty), highlighted_lines(fixed)
    rows = []
    for row in diff_rows(left, right):
        cells = []
        for side, index, hl, changed in (("faulty", row.left, hl_left, "del"), ("fixed", row.right, hl_right, "add")):
            if index is None:
                cells.append(f'<td class="ln"></td><td class="code {side} empty"></td>')
                continue
            mark = f" {changed}" if row.kind != "same" else ""
            cells.append(f'<td class="ln">{index + 1}</td><td class="code {side}{mark}">{hl[index] or " "}</td>')
        rows.append(f'<tr class="{row.kind}">{"".join(cells)}</tr>')
    return ('<table class="diff hl"><colgroup><col class="ln"><col><col class="ln"><col></colgroup>'
            '<thead><tr><th colspan="2" class="faulty">faulty</th><th colspan="2" class="fixed">fixed</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')


def _highlight_block(code: str, lexer_name: str = "python") -> str:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    return f'<pre class="hl">{highlight(code, get_lexer_by_name(lexer_name), HtmlFormatter(nowrap=True))}</pre>'


def stylesheet() -> str:
    """The site's CSS: the asset file plus Pygments' colours (scoped to ``.hl``)."""
    from pygments.formatters import HtmlFormatter

    css = resources.files("harness").joinpath("site_assets", "site.css").read_text(encoding="utf-8")
    return css + "\n/* Pygments (default style) */\n" + HtmlFormatter(style="default").get_style_defs(".hl") + "\n"


# --------------------------------------------------------------------------------------------
# Figures as small plots


def mini_plot(name: str, values: Sequence[tuple[str, str, float]]) -> str:
    """One figure of a scenario as a small horizontal bar chart: one bar per (label, variant, value),
    on a linear axis from zero, or a logarithmic one when the values span more than 100x."""
    finite = [(label, variant, v) for label, variant, v in values if math.isfinite(v)]
    if not finite:
        return ""
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
    parts = [f'<svg class="mini" role="img" data-figure="{_e(name)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{label_w + plot_w + 70}" height="{height}" viewBox="0 0 {label_w + plot_w + 70} {height}">',
             f'<text x="0" y="12" class="name">{_e(name)}{" (log scale)" if log else ""}</text>',
             f'<line class="axis" x1="{label_w}" y1="16" x2="{label_w}" y2="{height - 2}"/>']
    for i, (label, variant, value) in enumerate(finite):
        y = 20 + i * row_h
        w = max(x_of(value), 1.0)
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end">{_e(label)}</text>'
                     f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" '
                     f'fill="{VARIANT_COLOURS.get(variant, "#888")}"><title>{_e(label)}: {_fmt(value)}</title></rect>'
                     f'<text x="{label_w + w + 4:.1f}" y="{y + 12}">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def figure_plots(records: Sequence[Record]) -> str:
    by_name: dict[str, list[tuple[str, str, float]]] = {}
    for r in sorted(records, key=lambda r: (r.target, r.variant != "faulty")):
        for name, value in r.evidence.figures.items():
            by_name.setdefault(name, []).append((f"{r.variant} [{r.target}]", r.variant, value))
    plots = [mini_plot(name, values) for name, values in by_name.items()]
    return f'<div class="plots">{"".join(p for p in plots if p)}</div>' if plots else ""


# --------------------------------------------------------------------------------------------
# Pages


def _badge(status: CellStatus, target: str) -> str:
    symbol = f"{status.symbol} " if status.symbol else ""
    return (f'<span class="badge st-{status.key}" data-target="{_e(target)}" data-status="{status.key}" '
            f'title="{_e(status.label)}">{symbol}{_e(target)}</span>')


def _badges(scenario: Scenario, pairs: Mapping[tuple[str, str], list[Record]], have_results: bool) -> str:
    if not have_results:
        return " ".join(f'<span class="badge st-notrun" data-target="{_e(t)}">{_e(t)}</span>' for t in scenario.targets)
    return " ".join(_badge(pair_status(pairs.get((scenario.id, t), [])), t) for t in scenario.targets)


def _page(title: str, url: str, body: str) -> str:
    root = _root_of(url)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><link rel="stylesheet" href="{root}site.css"></head>'
            f'<body data-root="{root}"><header class="top"><a class="home" href="{root}index.html">pitfalls</a>'
            '<span class="tag">deep-learning deployment challenges, reproduced on real runtimes</span>'
            '<div class="search"><input id="search" type="search" autocomplete="off" '
            'placeholder="Search: paste the error you got, or an id or title" aria-label="search lessons">'
            '<ul id="search-results"></ul></div></header>'
            f'<main>{body}</main><footer>Built by <code>pitfalls site</code>. Taxonomy: Chen et al., '
            '“A comprehensive study on challenges in deploying deep learning based software”, ESEC/FSE 2020.</footer>'
            f'<script src="{root}search-index.js"></script><script src="{root}site.js"></script></body></html>\n')


def _para(text: str) -> str:
    return f"<p>{_e(' '.join(text.split()))}</p>" if text.strip() else '<p class="muted">(not written)</p>'


def _sentence(note: str) -> str:
    return (note[:1].upper() + note[1:] + ("" if note.endswith(".") else ".")) if note else ""


def _kv(mapping: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v) if isinstance(v, float) else v)}</td></tr>"
                   for k, v in mapping.items())
    return f'<table class="kv">{rows}</table>'


def _observed_html(scenario: Scenario, records: Sequence[Record], results: RunResults | None, source: str) -> str:
    run_it = f"<code>pitfalls run {_e(scenario.id)}</code>"
    if results is None:
        return f'<p class="muted">No results file was given when this site was built; {run_it} to observe it.</p>'
    if not records:
        return f'<p class="muted">{_e(source)} has no record of this scenario; {run_it} to observe it.</p>'
    out = [f'<p class="muted">From <code>{_e(source)}</code>, run of {_e(results.created)}.</p>']
    for r in sorted(records, key=lambda r: (r.target, r.variant != "faulty")):
        ev = r.evidence
        gap = ' <span class="badge st-gap">known gap</span>' if r.known_gap else ""
        out.append(f'<div class="obs" data-variant="{_e(r.variant)}" data-target="{_e(r.target)}">'
                   f'<h3>{_e(r.variant)} on {_e(r.target)} <span class="badge o-{_e(r.outcome.value)}">'
                   f'{_e(outcome_label(r.outcome))}</span>{gap}</h3>'
                   f'<div class="expect">expected: {_e(r.expected)}</div><div class="expect">verdict: {_e(r.verdict)}</div>')
        if ev.error:
            err = ev.error
            where = " — ".join(x for x in (err.runtime, err.source) if x)
            out.append(f'<div class="muted">{_e(err.kind or err.type)}{(" from " + _e(where)) if where else ""}</div>'
                       f'<pre class="error-text">{_e(err.message)}</pre>')
        out.append('<div class="figures">' + _kv(ev.figures) + "</div>" if ev.figures else "")
        folded = {f"runtime texts ({len(ev.texts)})": "\n".join(ev.texts),
                  "notes": json.dumps(ev.notes, indent=1, default=str) if ev.notes else ""}
        out += [f"<details><summary>{_e(k)}</summary><pre>{_e(v)}</pre></details>" for k, v in folded.items() if v]
        if ev.versions:
            out.append('<div class="muted versions">versions: '
                       + " · ".join(f"{_e(k)} {_e(v)}" for k, v in ev.versions.items()) + "</div>")
        out.append("</div>")
    plots = figure_plots(records)
    if plots:
        out.append(f"<h3>Figures</h3>{plots}")
    return "".join(out)


def _link(text: str) -> str:
    if text.startswith(("https://", "http://")):
        return f'<a href="{_e(text)}" rel="noreferrer">{_e(text)}</a>'
    return _e(text)


def lesson_page(scenario: Scenario, prev: Scenario | None, nxt: Scenario | None,
                pairs: Mapping[tuple[str, str], list[Record]], results: RunResults | None, source: str) -> str:
    from harness.taxonomy import challenge

    url = page_url(scenario.id)
    root = _root_of(url)
    node = challenge(scenario.taxonomy)
    code = variant_code(scenario)
    records = [r for t in scenario.targets for r in pairs.get((scenario.id, t), [])]
    shared = (f'<details class="shared"><summary>code both variants use</summary>{_highlight_block(code.shared)}'
              "</details>") if code.shared else ""
    udiff = unified_diff(code.faulty, code.fixed)
    refs = "".join(f"<li>{_link(u)}</li>" for u in scenario.references) or '<li class="muted">(none given)</li>'

    def course_link(other: Scenario | None, rel: str, label: str) -> str:
        if other is None:
            return "<span></span>"
        return (f'<a rel="{rel}" href="{root}{page_url(other.id)}"><span class="dir">{label}</span>'
                f"{_e(other.title)}</a>")

    body = (f'<div class="crumbs"><a href="{root}index.html#{_e(node.platform)}">{_e(PLATFORM_TITLES[node.platform])}</a>'
            f' › <a href="{root}index.html#{_e(node.platform)}/{_e(node.category)}">{_e(node.category.replace("-", " "))}</a>'
            f' › {_e(node.title)}</div>'
            f'<h1>{_e(scenario.title)}</h1><div class="sid">{_e(scenario.id)}</div>'
            f'<p>targets: {_badges(scenario, pairs, results is not None)}'
            + (f' <span class="badge st-gap">known gap: {_e(scenario.known_gap)}</span>' if scenario.known_gap else "")
            + "</p>"
            + (f'<p class="muted ranges">versions: {_e(scenario.describe_ranges())}</p>' if scenario.describe_ranges() else "")
            + f'<div class="pair"><section class="part" id="challenge"><h2>The challenge: {_e(node.title)}</h2>'
            f'<div class="sid">{_e(node.id)}</div>{_para(_sentence(node.note))}</section>'
            f'<section class="part" id="cause"><h2>Cause</h2>{_para(scenario.cause)}</section></div>'
            f'<section class="part" id="code"><h2>Faulty and fixed code</h2>'
            f'<div class="expect"><b>symptom</b> (faulty): {_e(scenario.symptom.describe())}</div>'
            f'<div class="expect"><b>remedy</b> (fixed): {_e(scenario.remedy.describe())}</div>'
            f"{diff_html(code.faulty, code.fixed)}"
            f'<details class="udiff"><summary>as a unified diff</summary>{_highlight_block(udiff, "diff")}</details>'
            f"{shared}</section>"
            f'<section class="part" id="observed"><h2>Symptom last observed</h2>'
            f"{_observed_html(scenario, records, results, source)}</section>"
            f'<section class="part" id="fix"><h2>Fix</h2>{_para(scenario.fix)}</section>'
            f'<section class="part" id="references"><h2>References</h2><ul>{refs}</ul></section>'
            f'<section class="part" id="run"><h2>Run it yourself</h2>'
            f'<pre class="cmd">pitfalls run {_e(scenario.id)}\npitfalls explain {_e(scenario.id)}\n'
            f'pitfalls explain {_e(scenario.id)} --layout diff</pre>'
            f'<p class="muted">The scenario file: <code>scenarios/{_e(scenario.id)}.py</code>.</p></section>'
            f'<nav class="course">{course_link(prev, "prev", "← previous")}{course_link(nxt, "next", "next →")}</nav>')
    return _page(f"{scenario.title} · pitfalls", url, body)


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
        shown = ", ".join(f"{k} {v}" for k, v in versions.items() if k in ("tensorflow", "tensorflowjs",
                                                                             "ai-edge-litert", "coremltools"))
        observed = f"Outcomes from {source}, run of {results.created}" + (f" ({shown})." if shown else ".")
    legend = " ".join(_badge(STATUSES[k], STATUSES[k].label) for k in ("ok", "partial", "na", "gap", "skipped", "fail",
                                                                         "error", "notrun"))
    parts = [f'<h1>Deep-learning deployment pitfalls</h1><p class="lead">{len(scenarios)} lessons covering '
             f"<b>{covered} of {len(nodes)}</b> challenges of the taxonomy of Chen et al. (ESEC/FSE 2020). Each "
             "lesson shows the faulty code next to the fixed one, what the real runtime said, and the fix. "
             "Paste an error you met into the search box to find its lesson.</p>"
             f'<p class="muted">{_e(observed)}</p>' + (f'<p class="muted">{legend}</p>' if results else "")]
    for platform in PLATFORMS:
        parts.append(f'<h2 id="{platform}">{PLATFORM_TITLES[platform]}</h2>')
        category = ""
        for node in (c for c in nodes if c.platform == platform):
            if node.category != category:
                if category:
                    parts.append("</ul>")
                category = node.category
                parts.append(f'<h3 id="{_e(platform)}/{_e(category)}">{_e(category.replace("-", " "))}</h3>'
                             '<ul class="challenges">')
            parts.append(_challenge_item(node, by_node.get(node.id, []), pairs, results is not None))
        if category:
            parts.append("</ul>")
    return _page("pitfalls — lessons", "index.html", "".join(parts))


def _challenge_item(node: Challenge, scenarios: Sequence[Scenario], pairs: Mapping[tuple[str, str], list[Record]],
                    have_results: bool) -> str:
    head = (f'<span class="cname">{_e(node.title)}</span> <span class="sid">{_e(node.id)}</span>'
            f'<div class="note">{_e(_sentence(node.note))}</div>')
    if not scenarios:
        return f'<li class="challenge empty" data-node="{_e(node.id)}">{head}<div class="muted">no scenario yet</div></li>'
    items = "".join(f'<li><a class="lesson" href="{page_url(s.id)}">{_e(s.title)}</a> '
                    f"{_badges(s, pairs, have_results)}</li>" for s in scenarios)
    return f'<li class="challenge" data-node="{_e(node.id)}">{head}<ul class="scen">{items}</ul></li>'


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
