"""The catalog (list, JSON, Markdown table) and the reports rendered from a results file.

Everything here is plain Python: no template engine, no plotting library, no heavy runtime.  The
HTML report is one self-contained file (inline CSS and inline SVG, no script, no CDN) that opens
from disk; the JUnit XML is derived from the same results file.
"""

from __future__ import annotations

import html
import json
import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.lesson import variant_code
from harness.registry import KNOWN_TARGETS
from harness.results import Record, RunResults, write_text_atomically
from harness.scenario import Outcome, Scenario
from harness.targets import TARGETS as TARGET_DECLARATIONS
from harness.taxonomy import PLATFORMS, Challenge, load_taxonomy

CATALOG_START = "<!-- catalog:start -->"
CATALOG_END = "<!-- catalog:end -->"
TARGETS: tuple[str, ...] = tuple(KNOWN_TARGETS)


# --------------------------------------------------------------------------------------------
# Catalog


def scenarios_by_node(scenarios: Iterable[Scenario]) -> dict[str, list[Scenario]]:
    grouped: dict[str, list[Scenario]] = defaultdict(list)
    for s in scenarios:
        grouped[s.taxonomy].append(s)
    return grouped


def catalog_json(scenarios: Sequence[Scenario]) -> dict[str, Any]:
    """The catalog as data: ``{"scenarios": [...], "taxonomy": [...]}`` (``pitfalls list --json``)."""
    return {
        "scenarios": [{"id": s.id, "taxonomy": s.taxonomy, "platform": s.platform,
                       "targets": list(s.targets), "title": s.title, "applies": list(s.applies),
                       "ranges": [str(r) for r in s.ranges()]} for s in scenarios],
        "taxonomy": [{"id": c.id, "platform": c.platform, "category": c.category, "name": c.name}
                     for c in load_taxonomy()],
    }


def catalog_tree(scenarios: Sequence[Scenario], availability: Mapping[str, str | None]) -> str:
    """The catalog as a tree: platform, category, challenge, then its scenarios and targets.

    ``availability`` maps a target name to None (runs here) or the reason it cannot run here.
    """
    grouped = scenarios_by_node(scenarios)
    nodes = load_taxonomy()
    lines: list[str] = []
    for platform in PLATFORMS:
        mine = [c for c in nodes if c.platform == platform]
        done = sum(1 for c in mine if grouped.get(c.id))
        lines.append(f"{platform}  ({done}/{len(mine)} challenges have a scenario)")
        last_category = ""
        for c in mine:
            if c.name == c.category:  # a leaf-less inner category is a challenge itself
                lines.append(f"  {c.category}" + _scenario_suffix(grouped.get(c.id, [])))
                _append_scenarios(lines, c, grouped.get(c.id, []), availability, "    ")
                last_category = ""
                continue
            if c.category != last_category:
                lines.append(f"  {c.category}")
                last_category = c.category
            lines.append(f"    {c.name}" + _scenario_suffix(grouped.get(c.id, [])))
            _append_scenarios(lines, c, grouped.get(c.id, []), availability, "      ")
    lines.append("")
    lines.append("targets here: " + ", ".join(
        f"{t} {'available' if availability.get(t) is None else 'unavailable (' + str(availability[t]) + ')'}"
        for t in TARGETS))
    return "\n".join(lines)


def _scenario_suffix(scenarios: list[Scenario]) -> str:
    return "" if scenarios else "  - no scenario yet"


def _append_scenarios(lines: list[str], node: Challenge, scenarios: list[Scenario],
                      availability: Mapping[str, str | None], indent: str) -> None:
    for s in scenarios:
        marks = ", ".join(t + ("" if availability.get(t) is None else " (unavailable here)") for t in s.targets)
        gap = "  [known gap]" if s.known_gap else ""
        ranges = f"  [{s.describe_ranges()}]" if s.describe_ranges() else ""
        lines.append(f"{indent}* {s.id}  [{marks}]{gap}{ranges}  {s.title}")


def _md_cell(text: str, limit: int = 0) -> str:
    text = " ".join(text.split())
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text.replace("|", "\\|")


def catalog_markdown(scenarios: Sequence[Scenario]) -> str:
    """The catalog table the README embeds (one row per taxonomy node)."""
    grouped = scenarios_by_node(scenarios)
    rows = ["| Challenge | Scenarios | Targets | Symptom the faulty variant shows |",
            "|---|---|---|---|"]
    for c in load_taxonomy():
        mine = sorted(grouped.get(c.id, []), key=lambda s: s.id)
        if not mine:
            rows.append(f"| `{c.id}` | — | — | — |")
            continue
        links = ", ".join(f"[{_md_cell(s.id[len(c.id):].lstrip('/') or c.name)}](scenarios/{s.id}.py)"
                          for s in mine)
        targets = ", ".join(sorted({t for s in mine for t in s.targets}, key=TARGETS.index))
        symptoms = "; ".join(dict.fromkeys(s.symptom.describe() for s in mine))
        rows.append(f"| `{c.id}` | {links} | {targets} | `` {_md_cell(symptoms, 140)} `` |")  # code: regexes
    return "\n".join(rows) + "\n"


def marked_block(text: str) -> str | None:
    """The text between the catalog markers, or None when the markers are missing."""
    start, end = text.find(CATALOG_START), text.find(CATALOG_END)
    if start < 0 or end < start:
        return None
    return text[start + len(CATALOG_START): end].strip("\n") + "\n"


def replace_marked_block(text: str, block: str) -> str:
    start, end = text.find(CATALOG_START), text.find(CATALOG_END)
    if start < 0 or end < start:
        raise ValueError(f"no {CATALOG_START} … {CATALOG_END} markers")
    return text[: start + len(CATALOG_START)] + "\n" + block.rstrip("\n") + "\n" + text[end:]


# --------------------------------------------------------------------------------------------
# Statuses shared by the HTML and the diff


@dataclass(frozen=True)
class CellStatus:
    key: str  # css class suffix
    label: str
    symbol: str
    rank: int  # higher is worse; the coverage map shows the worst of a cell


OUTCOME_LABELS = {Outcome.NOT_APPLICABLE: "n/a on these versions"}  # an outcome's words where its value reads badly


def outcome_label(outcome: Outcome) -> str:
    return OUTCOME_LABELS.get(outcome, outcome.value)


STATUSES: dict[str, CellStatus] = {s.key: s for s in (
    CellStatus("ok", "symptom reproduced and fix works", "✓", 1),
    CellStatus("partial", "symptom reproduced; fix not checkable here", "◐", 2),
    CellStatus("na", "n/a on these versions (outside the scenario's version range)", "n/a", 3),
    CellStatus("gap", "known gap (strict xfail)", "∅", 4),
    CellStatus("skipped", "runtime not available here", "–", 5),
    CellStatus("fail", "not as expected (symptom not reproduced or fix broken)", "✗", 6),
    CellStatus("error", "harness error", "!", 7),
    CellStatus("none", "no scenario yet", "", 0),
    CellStatus("notrun", "scenario exists, not in this results file", "·", 0),
)}


def pair_status(records: Iterable[Record]) -> CellStatus:
    """The status of a scenario on one target, from its faulty and fixed records."""
    by_variant = {r.variant: r for r in records}
    if not by_variant:
        return STATUSES["notrun"]
    if any(r.known_gap for r in by_variant.values()):
        return STATUSES["gap"]
    outcomes = {v: r.outcome for v, r in by_variant.items()}
    if Outcome.ERROR in outcomes.values():
        return STATUSES["error"]
    if any(o in (Outcome.NOT_REPRODUCED, Outcome.BROKEN) for o in outcomes.values()):
        return STATUSES["fail"]
    if all(o is Outcome.NOT_APPLICABLE for o in outcomes.values()):
        return STATUSES["na"]
    if all(o in (Outcome.SKIPPED, Outcome.NOT_APPLICABLE) for o in outcomes.values()):
        return STATUSES["skipped"]
    if outcomes.get("faulty") is Outcome.REPRODUCED and outcomes.get("fixed") is Outcome.WORKS:
        return STATUSES["ok"]
    return STATUSES["partial"]


def records_by_pair(records: Iterable[Record]) -> dict[tuple[str, str], list[Record]]:
    pairs: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r in records:
        pairs[(r.scenario, r.target)].append(r)
    return pairs


# --------------------------------------------------------------------------------------------
# Figures and SVG plots


FigurePredicate = Callable[[str], bool]
PLOTS: tuple[tuple[str, str, FigurePredicate, str, bool], ...] = (
    # (title, unit, which figure names, anchor, log scale)
    ("Latency per target and backend", "ms", lambda n: n.endswith("_ms"), "plot-latency", False),
    ("Numeric parity per target (max |Δ| against the reference)", "",
     lambda n: n.endswith("max_abs_diff") or "parity" in n, "plot-parity", True),
    ("Model size per format", "KiB", lambda n: n.endswith("_bytes"), "plot-size", False),
)
TARGET_COLOURS = {t.name: t.colour for t in TARGET_DECLARATIONS}


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    target: str
    link: str


def figure_bars(records: Iterable[Record], predicate: FigurePredicate, scale: float = 1.0) -> list[Bar]:
    bars = []
    for r in records:
        for name, value in sorted(r.evidence.figures.items()):
            if predicate(name) and math.isfinite(value):
                parts = r.scenario.split("/")
                short = "/".join(parts[2:]) or parts[-1]  # without platform and category
                bars.append(Bar(f"{r.target} · {short} · {r.variant} · {name}", value * scale,
                                r.target, "#" + anchor(r.scenario)))
    bars.sort(key=lambda b: (TARGETS.index(b.target) if b.target in TARGETS else 99, b.label))
    return bars


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e6 or abs(value) < 0.01:
        return f"{value:.3g}"
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.3f}".rstrip("0").rstrip(".")


LOG_FLOOR_EXPONENT = -10  # parity below 1e-10 is zero for every purpose; keeps the axis readable


def _nice_step(span: float, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that divides ``span`` into about ``ticks`` parts."""
    raw = span / ticks
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _axis(values: Sequence[float], log: bool, plot_w: float) -> tuple[Callable[[float], float], list[float], bool]:
    """The x position of a value, the tick values, and whether the axis ended up logarithmic."""
    positive = [v for v in values if v > 0]
    if log and positive:
        lo = max(math.floor(math.log10(min(positive))), LOG_FLOOR_EXPONENT)
        hi = max(math.ceil(math.log10(max(positive))), lo + 1)
        stride = max(1, math.ceil((hi - lo) / 6))

        def x_log(v: float) -> float:
            return plot_w * (math.log10(max(v, 10.0 ** lo)) - lo) / (hi - lo)
        return x_log, [10.0 ** e for e in range(lo, hi + 1, stride)], True
    top = max([*values, 0.0]) or 1.0
    step = _nice_step(top)
    top_value = step * math.ceil(top / step)

    def x_lin(v: float) -> float:
        return plot_w * max(v, 0.0) / top_value
    return x_lin, [step * i for i in range(int(round(top_value / step)) + 1)], False


def _clip_label(label: str, limit: int = 68) -> str:
    """Shorten in the middle: the target (first) and the figure name (last) stay readable."""
    if len(label) <= limit:
        return label
    head = label.index(" · ") + 3 if " · " in label else 10
    return label[:head] + "…" + label[-(limit - head - 1):]


def svg_bar_chart(bars: Sequence[Bar], unit: str, log: bool, css_id: str) -> str:
    """A horizontal bar chart as inline SVG: one bar per figure, coloured by target.

    ``log`` asks for a logarithmic axis (used when the values span more than two orders of magnitude).
    """
    label_w, plot_w, row_h, top = 430, 360, 20, 8
    height = top + row_h * len(bars) + 26
    values = [b.value for b in bars]
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 100:
        log = True
    x_of, ticks, log = _axis(values, log, plot_w)
    parts = [f'<svg id="{css_id}" class="plot" role="img" xmlns="http://www.w3.org/2000/svg" '
             f'width="{label_w + plot_w + 90}" height="{height}" '
             f'viewBox="0 0 {label_w + plot_w + 90} {height}">']
    axis_y = top + row_h * len(bars)
    for t in ticks:
        x = label_w + x_of(t)
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis_y}" class="grid"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 14}" class="tick" text-anchor="middle">{_fmt(t)}</text>')
    for i, bar in enumerate(bars):
        y = top + i * row_h
        w = max(x_of(bar.value), 1.0)
        colour = TARGET_COLOURS.get(bar.target, "#888")
        parts.append(f'<a href="{html.escape(bar.link)}"><text x="{label_w - 6}" y="{y + 14}" class="blabel" '
                     f'text-anchor="end">{html.escape(_clip_label(bar.label))}</text></a>')
        parts.append(f'<rect class="bar" data-target="{html.escape(bar.target)}" x="{label_w}" y="{y + 3}" width="{w:.1f}" '
                     f'height="{row_h - 6}" fill="{colour}"><title>{html.escape(bar.label)}: '
                     f'{_fmt(bar.value)} {unit}</title></rect>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" class="bvalue">{_fmt(bar.value)}'
                     f'{(" " + unit) if unit else ""}</text>')
    parts.append(f'<text x="{label_w + plot_w / 2}" y="{height - 2}" class="tick" text-anchor="middle">'
                 f'{unit or "value"}{" (log scale)" if log else ""}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# HTML report


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c6cbd6}main{padding:8px 20px 40px;max-width:1400px}
h2{border-bottom:1px solid #d9dde5;padding-bottom:4px;margin-top:28px}
.summary span{display:inline-block;margin-right:14px}.maps{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
table.map{border-collapse:collapse;font-size:12px}table.map th,table.map td{border:1px solid #e2e5eb;padding:1px 5px}
table.map th{background:#eef0f4;text-align:left}table.map td.cell{text-align:center;width:46px;font-weight:600}
table.map td.cell a{color:inherit;text-decoration:none;display:block}
tr.cat th{background:#f6f7f9;font-weight:600;color:#555}
.st-ok{background:#c9efd6;color:#135c2f}.st-partial{background:#e4f4c6;color:#4b6a12}
.st-gap{background:#e6dcf7;color:#4f2d8a}.st-skipped{background:#eceef2;color:#666}
.st-fail{background:#f9d0cc;color:#8a1a10}.st-error{background:#e98a80;color:#fff}
.st-none{background:#fff;color:#bbb}.legend span.st-none{border:1px solid #e2e5eb}.st-notrun{background:#fbfbf3;color:#999}.st-na{background:#f3f4f6;color:#5a6270}
.legend span{display:inline-block;padding:1px 8px;margin:2px 6px 2px 0;border-radius:3px;font-size:12px}
section.scenario{background:#fff;border:1px solid #e2e5eb;border-radius:6px;padding:10px 16px;margin:14px 0}
section.scenario h3{margin:2px 0 4px;font-size:16px}.sid{font-family:ui-monospace,monospace;color:#555;font-size:12px}
.variants{display:grid;grid-template-columns:1fr 1fr;gap:12px}.variant{border:1px solid #eceef2;border-radius:4px;padding:6px 10px}
.variant h4{margin:0 0 4px;font-size:13px}.badge{display:inline-block;border-radius:3px;padding:0 6px;font-size:12px;font-weight:600}
.o-reproduced,.o-works{background:#c9efd6;color:#135c2f}.o-not-reproduced,.o-broken{background:#f9d0cc;color:#8a1a10}
.o-skipped{background:#eceef2;color:#666}.o-error{background:#e98a80;color:#fff}.o-not-applicable{background:#f3f4f6;color:#5a6270}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f7f9;border-radius:3px;padding:6px;margin:4px 0;font-size:12px;max-height:240px;overflow:auto}
table.kv{border-collapse:collapse;font-size:12px}table.kv td{padding:1px 8px 1px 0;vertical-align:top}
table.kv td:first-child{color:#555;font-family:ui-monospace,monospace}
details summary{cursor:pointer;color:#444;font-size:12px}.muted{color:#777;font-size:12px}
svg.plot text{font:11px system-ui,sans-serif;fill:#333}svg.plot .grid{stroke:#e3e6ec}svg.plot .tick{fill:#777;font-size:10px}
svg.plot a text{fill:#234}
.codes{display:grid;grid-template-columns:1fr 1fr;gap:12px;margin:6px 0}.code{min-width:0}
.lesson pre,.shared pre{white-space:pre;word-break:normal;overflow:auto;max-height:420px;font-size:12px;line-height:1.35}
.code[data-variant="faulty"] pre{border-left:3px solid #e0857b}.code[data-variant="fixed"] pre{border-left:3px solid #6cc08b}
@media (max-width:900px){.codes,.variants{grid-template-columns:1fr}}
"""


def anchor(scenario_id: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", scenario_id)


def _e(value: Any) -> str:
    return html.escape(str(value))


def _kv_table(mapping: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v) if isinstance(v, float) else v)}</td></tr>"
                   for k, v in mapping.items())
    return f'<table class="kv">{rows}</table>'


def _variant_html(record: Record) -> str:
    ev = record.evidence
    outcome = record.outcome.value
    gap = ' <span class="badge st-gap">known gap</span>' if record.known_gap else ""
    out = [f'<div class="variant" data-variant="{_e(record.variant)}" data-target="{_e(record.target)}">',
           f'<h4>{_e(record.variant)} <span class="badge o-{_e(outcome)}">{_e(outcome_label(record.outcome))}</span>{gap}'
           f' <span class="muted">{_e(record.seconds)} s</span></h4>',
           f'<div class="muted">expected: {_e(record.expected)}</div>',
           f'<div class="verdict">verdict: {_e(record.verdict)}</div>']
    err = ev.error
    if err:
        source = " ".join(x for x in (err.runtime, err.source) if x)
        out.append(f'<div class="muted">error {_e(err.kind or err.type)}'
                   f'{" — " + _e(source) if source else ""}</div>')
        out.append(f'<pre class="error-text">{_e(err.message)}</pre>')
    if ev.figures:
        out.append('<div class="figures">' + _kv_table(ev.figures) + "</div>")
    if ev.texts:
        out.append(f'<details><summary>runtime texts ({len(ev.texts)})</summary>'
                   f'<pre>{_e(chr(10).join(ev.texts))}</pre></details>')
    if ev.notes:
        out.append('<details><summary>notes</summary><pre>'
                   f'{_e(json.dumps(ev.notes, indent=1, default=str))}</pre></details>')
    if ev.versions:
        out.append("<details><summary>versions</summary>" + _kv_table(ev.versions) + "</details>")
    out.append("</div>")
    return "".join(out)


def _lesson_html(scenario: Scenario) -> str:
    """The scenario's faulty and fixed code side by side (what only each uses above it), then what both share."""
    code = variant_code(scenario)
    sides = "".join(f'<div class="code" data-variant="{v}"><div class="muted">{v}: {_e(expect.describe())}</div>'
                    f'<pre><code>{_e(text)}</code></pre></div>'
                    for v, text, expect in (("faulty", code.faulty, scenario.symptom),
                                            ("fixed", code.fixed, scenario.remedy)))
    shared = (f'<details class="shared"><summary>code both variants use</summary><pre><code>{_e(code.shared)}'
              "</code></pre></details>") if code.shared else ""
    return f'<details class="lesson" open><summary>faulty and fixed code</summary><div class="codes">{sides}</div>{shared}</details>'


def _coverage_maps(records: Sequence[Record], scenarios: Sequence[Scenario]) -> str:
    pairs = records_by_pair(records)
    known = scenarios_by_node(scenarios)
    recorded_nodes: dict[str, set[str]] = defaultdict(set)
    for r in records:
        recorded_nodes[r.taxonomy].add(r.scenario)
    tables = []
    for platform in PLATFORMS:
        targets = [t for t in TARGETS if KNOWN_TARGETS[t] == platform]
        head = "".join(f"<th>{t}</th>" for t in targets)
        rows = [f'<table class="map" data-platform="{platform}"><thead><tr><th>{platform}</th>{head}</tr></thead><tbody>']
        category = ""
        for c in (n for n in load_taxonomy() if n.platform == platform):
            if c.category != category and c.name != c.category:
                rows.append(f'<tr class="cat"><th colspan="{len(targets) + 1}">{_e(c.category)}</th></tr>')
            category = c.category if c.name != c.category else ""
            ids = sorted(recorded_nodes.get(c.id, set()) | {s.id for s in known.get(c.id, [])})
            cells = []
            for t in targets:
                statuses = [(pair_status(pairs.get((sid, t), [])), sid) for sid in ids
                            if pairs.get((sid, t)) or any(s.id == sid and t in s.targets for s in known.get(c.id, []))]
                if not statuses:
                    st, link = STATUSES["none"], ""
                else:
                    st, link = max(statuses, key=lambda p: p[0].rank)
                title = f"{c.id} on {t}: {st.label}" + (f" ({len(statuses)} scenarios)" if len(statuses) > 1 else "")
                body = f'<a href="#{anchor(link)}">{st.symbol}</a>' if link and st.key != "notrun" else st.symbol
                cells.append(f'<td class="cell st-{st.key}" data-node="{_e(c.id)}" data-target="{t}" '
                             f'data-status="{st.key}" title="{_e(title)}">{body}</td>')
            name = c.name if c.name != c.category else c.category
            indent = "" if c.name == c.category else "&nbsp;&nbsp;"
            rows.append(f'<tr><td title="{_e(c.note)}">{indent}{_e(name)}</td>{"".join(cells)}</tr>')
        rows.append("</tbody></table>")
        tables.append("".join(rows))
    legend = "".join(f'<span class="st-{s.key}">{s.symbol or "&nbsp;"} {s.label}</span>' for s in STATUSES.values())
    return f'<div class="legend">{legend}</div><div class="maps">{"".join(tables)}</div>'


def _coverage_summary(records: Sequence[Record]) -> str:
    pairs = records_by_pair(records)
    shown: set[str] = set()
    for pair in pairs.values():
        if pair_status(pair).key in ("ok", "partial"):
            shown.add(pair[0].taxonomy)
    total = len(load_taxonomy())
    return (f'<p class="coverage-summary"><b>{len(shown)} of {total}</b> challenges reproduced on at least one '
            f"target in this run ({len({r.taxonomy for r in records})} with a scenario in this results file).</p>")


def _summary_label(value: str) -> str:
    try:
        return outcome_label(Outcome(value))
    except ValueError:
        return value


def render_html(results: RunResults, scenarios: Sequence[Scenario] = ()) -> str:
    """The whole HTML report for a results file, as one string."""
    records = list(results.records)
    by_id = {s.id: s for s in scenarios}
    env = results.environment
    summary = results.summary
    packages = env.get("packages") or {}
    out = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">",
           "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">",
           "<title>pitfalls report</title><style>", CSS, "</style></head><body>",
           "<header><h1>pitfalls — deep-learning deployment challenges, reproduced</h1>",
           f"<p>results of {_e(results.created)} · Python {_e(env.get('python', '?'))} · "
           f"{_e(env.get('platform', '?'))} · {_e(env.get('cpus', '?'))} CPUs</p></header><main>",
           '<p class="summary">' + "".join(f'<span class="badge o-{_e(k)}">{_e(_summary_label(k))} {_e(v)}</span>'
                                         for k, v in summary.items()) + "</p>"]
    if packages:
        out.append("<details><summary>package versions</summary>" + _kv_table(packages) + "</details>")
    out.append('<h2 id="coverage">Coverage of the taxonomy</h2>')
    out.append('<p class="muted">One row per challenge of Chen et al. (ESEC/FSE 2020), one column per target; '
               "a cell shows whether the challenge reproduces there. Click a cell for its evidence.</p>")
    out.append(_coverage_summary(records))
    out.append(_coverage_maps(records, scenarios))
    out.append('<h2 id="plots">Figures</h2>')
    any_plot = False
    for title, unit, predicate, css_id, log in PLOTS:
        bars = figure_bars(records, predicate, 1 / 1024 if unit == "KiB" else 1.0)
        if bars:
            any_plot = True
            out.append(f"<h3>{_e(title)}</h3>" + svg_bar_chart(bars, unit, log, css_id))
    if not any_plot:
        out.append('<p class="muted">No latency, parity or size figures in this results file.</p>')
    out.append('<h2 id="scenarios">Scenarios</h2>')
    by_scenario: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_scenario[r.scenario].append(r)
    for sid in sorted(by_scenario):
        s = by_id.get(sid)
        recs = by_scenario[sid]
        out.append(f'<section class="scenario" id="{anchor(sid)}"><h3>{_e(s.title if s else sid)}</h3>'
                   f'<div class="sid">{_e(sid)} · challenge {_e(recs[0].taxonomy)}</div>')
        if s and s.describe_ranges():
            out.append(f'<div class="muted ranges">versions: {_e(s.describe_ranges())}</div>')
        if s and s.cause:
            out.append(f'<details><summary>cause and fix</summary><p><b>Cause.</b> {_e(s.cause)}</p>'
                       f'<p><b>Fix.</b> {_e(s.fix)}</p>'
                       + "".join(f'<div class="muted">{_e(u)}</div>' for u in s.references) + "</details>")
        if s:
            out.append(_lesson_html(s))
        for target in sorted({r.target for r in recs}, key=lambda t: TARGETS.index(t) if t in TARGETS else 99):
            pair = sorted((r for r in recs if r.target == target), key=lambda r: r.variant != "faulty")
            st = pair_status(pair)
            out.append(f'<div class="muted">target <b>{_e(target)}</b> · '
                       f'<span class="badge st-{st.key}">{st.symbol} {_e(st.label)}</span></div>')
            out.append('<div class="variants">' + "".join(_variant_html(r) for r in pair) + "</div>")
        out.append("</section>")
    if not by_scenario:
        out.append('<p class="muted">This results file holds no records.</p>')
    out.append("</main></body></html>\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# JUnit XML


def render_junit(results: RunResults) -> str:
    """JUnit XML with one test case per record (classname = scenario id, name = variant[target])."""
    records = results.records
    suite = ET.Element("testsuite", name="pitfalls", timestamp=results.created, tests=str(len(records)))
    counts = {"failures": 0, "errors": 0, "skipped": 0}
    total = 0.0
    for r in records:
        total += r.seconds
        case = ET.SubElement(suite, "testcase", classname=r.scenario.replace("/", "."),
                             name=f"{r.variant}[{r.target}]", time=f"{r.seconds:.3f}")
        err = r.evidence.error
        detail = f"expected: {r.expected}\nverdict: {r.verdict}"
        if err:
            detail += f"\nerror: {err.kind}: {err.message}"
        outcome = r.outcome
        if r.known_gap:
            ET.SubElement(case, "skipped", message=f"known gap: {r.verdict}")
            counts["skipped"] += 1
        elif outcome in (Outcome.NOT_REPRODUCED, Outcome.BROKEN):
            ET.SubElement(case, "failure", message=f"{outcome.value}: {r.verdict}"[:500]).text = detail
            counts["failures"] += 1
        elif outcome is Outcome.ERROR:
            ET.SubElement(case, "error", message=r.verdict[:500]).text = detail
            counts["errors"] += 1
        elif outcome is Outcome.SKIPPED:
            ET.SubElement(case, "skipped", message=r.verdict)
            counts["skipped"] += 1
        elif outcome is Outcome.NOT_APPLICABLE:
            ET.SubElement(case, "skipped", message=r.verdict)  # "not applicable on these versions: …"
            counts["skipped"] += 1
        else:
            ET.SubElement(case, "system-out").text = detail
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("time", f"{total:.3f}")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def write_reports(results: RunResults, out_dir: Path, scenarios: Sequence[Scenario] = ()) -> list[Path]:
    """Write ``report.html`` and ``junit.xml`` into ``out_dir`` (atomically); returns the paths written."""
    html_path, junit_path = out_dir / "report.html", out_dir / "junit.xml"
    write_text_atomically(html_path, render_html(results, scenarios))
    write_text_atomically(junit_path, render_junit(results))
    return [html_path, junit_path]
