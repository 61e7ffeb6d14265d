"""The catalog (list, JSON, Markdown table) and the reports rendered from a results file.

No plotting library, no heavy runtime.  The HTML report is one self-contained file (inline CSS and
inline SVG, no script, no CDN) that opens from disk, rendered by :mod:`harness.render` from
``report.html.j2``: this module computes what the page shows (coverage maps, charts as data,
sections), the template only lays it out.  The JUnit XML is derived from the same results file.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.lesson import VariantCode, variant_code
from harness.registry import KNOWN_TARGETS
from harness.render import render
from harness.render.charts import Chart, ChartBar, ChartLine, ChartText
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


def bar_chart(bars: Sequence[Bar], unit: str, log: bool, css_id: str) -> Chart:
    """A horizontal bar chart as data: one bar per figure, coloured by target.

    ``log`` asks for a logarithmic axis (used when the values span more than two orders of magnitude).
    """
    label_w, plot_w, row_h, top = 430, 360, 20, 8
    height = top + row_h * len(bars) + 26
    values = [b.value for b in bars]
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 100:
        log = True
    x_of, ticks, log = _axis(values, log, plot_w)
    axis_y = top + row_h * len(bars)
    lines: list[ChartLine] = []
    texts: list[ChartText] = []
    for t in ticks:
        x = label_w + x_of(t)
        lines.append(ChartLine(x, top, x, axis_y, "grid"))
        texts.append(ChartText(x, axis_y + 14, _fmt(t), css_class="tick", anchor="middle"))
    chart_bars: list[ChartBar] = []
    for i, bar in enumerate(bars):
        y = top + i * row_h
        w = max(x_of(bar.value), 1.0)
        texts.append(ChartText(label_w - 6, y + 14, _clip_label(bar.label), css_class="blabel", anchor="end",
                               link=bar.link))
        chart_bars.append(ChartBar(label_w, y + 3, w, row_h - 6, TARGET_COLOURS.get(bar.target, "#888"),
                                   f"{bar.label}: {_fmt(bar.value)} {unit}", target=bar.target))
        texts.append(ChartText(label_w + w + 4, y + 14, _fmt(bar.value) + (f" {unit}" if unit else ""),
                               css_class="bvalue"))
    texts.append(ChartText(label_w + plot_w / 2, height - 2, (unit or "value") + (" (log scale)" if log else ""),
                           css_class="tick", anchor="middle"))
    return Chart(label_w + plot_w + 90, height, "plot", element_id=css_id, lines=tuple(lines),
                 bars=tuple(chart_bars), texts=tuple(texts))


def svg_bar_chart(bars: Sequence[Bar], unit: str, log: bool, css_id: str) -> str:
    """:func:`bar_chart` drawn as inline SVG."""
    return render("chart.html.j2", chart=bar_chart(bars, unit, log, css_id))


# --------------------------------------------------------------------------------------------
# HTML report


def anchor(scenario_id: str) -> str:
    return "s-" + re.sub(r"[^A-Za-z0-9_-]+", "-", scenario_id)


@dataclass(frozen=True)
class MapCell:
    target: str
    status: CellStatus
    title: str
    link: str  # the anchor of the scenario whose evidence the cell shows, or ""


@dataclass(frozen=True)
class MapRow:
    node: str
    name: str
    note: str
    indent: bool  # a challenge under a category (not a category that is a challenge itself)
    category: str  # the category heading to put above this row, or ""
    cells: tuple[MapCell, ...]


@dataclass(frozen=True)
class CoverageMap:
    platform: str
    targets: tuple[str, ...]
    rows: tuple[MapRow, ...]


def coverage_maps(records: Sequence[Record], scenarios: Sequence[Scenario]) -> list[CoverageMap]:
    """Per platform, one row per challenge and one cell per target: the worst status of its scenarios."""
    pairs = records_by_pair(records)
    known = scenarios_by_node(scenarios)
    recorded_nodes: dict[str, set[str]] = defaultdict(set)
    for r in records:
        recorded_nodes[r.taxonomy].add(r.scenario)
    maps = []
    for platform in PLATFORMS:
        targets = tuple(t for t in TARGETS if KNOWN_TARGETS[t] == platform)
        rows = []
        category = ""
        for c in (n for n in load_taxonomy() if n.platform == platform):
            heading = c.category if c.category != category and c.name != c.category else ""
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
                cells.append(MapCell(t, st, title, anchor(link) if link and st.key != "notrun" else ""))
            rows.append(MapRow(c.id, c.name if c.name != c.category else c.category, c.note,
                               c.name != c.category, heading, tuple(cells)))
        maps.append(CoverageMap(platform, targets, tuple(rows)))
    return maps


def coverage_counts(records: Sequence[Record]) -> dict[str, int]:
    """How many challenges reproduce on at least one target, of how many, and how many were recorded."""
    shown = {pair[0].taxonomy for pair in records_by_pair(records).values() if pair_status(pair).key in ("ok", "partial")}
    return {"reproduced": len(shown), "total": len(load_taxonomy()), "recorded": len({r.taxonomy for r in records})}


def _summary_label(value: str) -> str:
    try:
        return outcome_label(Outcome(value))
    except ValueError:
        return value


@dataclass(frozen=True)
class ScenarioSection:
    """One scenario of the report: its lesson (when the catalog knows it) and its records per target."""

    id: str
    title: str
    taxonomy: str
    scenario: Scenario | None
    code_sides: tuple[tuple[str, str, str], ...]  # (variant, code, what it is expected to do)
    code: VariantCode | None
    targets: tuple[tuple[str, CellStatus, tuple[Record, ...]], ...]

    @property
    def anchor(self) -> str:
        return anchor(self.id)


def scenario_sections(records: Sequence[Record], scenarios: Sequence[Scenario]) -> list[ScenarioSection]:
    by_id = {s.id: s for s in scenarios}
    by_scenario: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_scenario[r.scenario].append(r)
    sections = []
    for sid in sorted(by_scenario):
        s = by_id.get(sid)
        recs = by_scenario[sid]
        code = variant_code(s) if s else None
        sides = (("faulty", code.faulty, s.symptom.describe()), ("fixed", code.fixed, s.remedy.describe())) \
            if s and code else ()
        targets = []
        for target in sorted({r.target for r in recs}, key=lambda t: TARGETS.index(t) if t in TARGETS else 99):
            pair = tuple(sorted((r for r in recs if r.target == target), key=lambda r: r.variant != "faulty"))
            targets.append((target, pair_status(pair), pair))
        sections.append(ScenarioSection(sid, s.title if s else sid, recs[0].taxonomy, s, sides, code, tuple(targets)))
    return sections


def render_html(results: RunResults, scenarios: Sequence[Scenario] = ()) -> str:
    """The whole HTML report for a results file, as one string (inline CSS and SVG, no script)."""
    records = list(results.records)
    env = results.environment
    plots = []
    for title, unit, predicate, css_id, log in PLOTS:
        bars = figure_bars(records, predicate, 1 / 1024 if unit == "KiB" else 1.0)
        if bars:
            plots.append((title, bar_chart(bars, unit, log, css_id)))
    return render("report.html.j2", run=results,
                  where={k: env.get(k, "?") for k in ("python", "platform", "cpus")},
                  summary=[(k, _summary_label(k), v) for k, v in results.summary.items()],
                  packages=env.get("packages") or {}, coverage=coverage_counts(records),
                  statuses=list(STATUSES.values()), maps=coverage_maps(records, scenarios), plots=plots,
                  sections=scenario_sections(records, scenarios), outcome_label=outcome_label)


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
