"""``pitfalls check`` output: the terminal summary and the one-file HTML page (no external request)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any


from harness.check.report import CheckReport, Divergence, Finding, LayerError, TargetReport
from harness.render import render
from harness.render.charts import Chart, ChartBar, ChartText


def summary(report: CheckReport) -> str:
    """Target x verdict, then the findings, then the divergence (plain text)."""
    model = report.model
    lines = [f"pitfalls check {model['path']} ({model['format']}, {model.get('flavour')}, "
             f"{model.get('parameters')} parameters) in {report.seconds:.1f}s", report.trust_line(), ""]
    lines += [f"  [{f.severity}] {f.step}: {f.text[:200]}" for f in report.findings]
    width = max(len(n) for n in report.targets) if report.targets else 6
    for name, t in report.targets.items():
        diff = "" if t.max_abs_diff is None else f"  max|diff| {t.max_abs_diff:.2e}"
        why = f"  ({t.reason})" if t.verdict == "skipped" else ""
        lines.append(f"  {name:<{width}}  {t.verdict:<8}{diff}{why}")
    for name, t in report.targets.items():
        if not t.findings:
            continue
        lines += ["", f"{name}:"]
        for f in t.findings:
            lesson = f"  -> pitfalls explain {f.scenario}" if f.scenario else ""
            first = f.text.strip().splitlines()[0] if f.text.strip() else ""
            lines.append(f"  [{f.severity}] {f.step}: {first[:200]}{lesson}")
            if f.where:
                lines.append(f"      where: {f.where}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
            lines += remedy_lines(f)
    for name, t in report.targets.items():
        if t.divergence and t.divergence.layers:
            d = t.divergence
            alone = f" (run alone: {d.measured_first_layer or 'none fails alone'})" if d.measured else ""
            lines += ["", f"{name} divergence ({d.path}): first layer that fails while its inputs pass: {d.first_layer}{alone}"]
            for other in t.localised:
                lines += [f"  {other.path}: first layer {other.first_layer} (inferred), "
                          f"{other.measured_first_layer or 'none fails alone'} (run alone)"] if other is not d else []
            for row in d.layers:
                mark = "ok " if row.passes else ("LOC" if row.attribution == "local" else "acc")
                alone = "" if row.local_passes is None else f"  alone {_number(row.local_max_abs)} " + (
                    "ok" if row.local_passes else "FAILS")
                lines.append(f"  {mark} {row.layer:<28} max|diff| {row.max_abs:.3e}  rel {row.rel_error:.3e}"
                             f"  SQNR {row.sqnr_db:.1f} dB{alone}")
    unknown = report.unknown_texts()
    if unknown:
        lines += ["", f"unknown texts ({len(unknown)}: runtime texts no rule maps to a lesson yet; see the report):"]
        lines += [f"  {u['target']} {u['step']}: {u['key']}" for u in unknown]
    lines += ["", "ok: every requested target deploys" if report.ok else "not ok: a target has a blocker"]
    return "\n".join(lines)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3e}"


def _cell(row: LayerError | None) -> dict[str, str]:
    """One path's cells of the side-by-side table: accumulated and measured local error, and a status."""
    if row is None:
        return {"accumulated": "", "local": "", "status": "none"}
    status = "ok" if row.passes else ("local" if row.local_passes is False or
                                      (row.local_passes is None and row.attribution == "local") else "accumulated")
    local = "" if row.local_passes is None else f"{_number(row.local_max_abs)} ({'passes' if row.local_passes else 'fails'} alone)"
    return {"accumulated": _number(row.max_abs), "local": local, "status": status}


def side_by_side(t: TargetReport) -> dict[str, Any]:
    """The per-layer table of every localised path of a target, side by side: per layer, per path,
    the accumulated error (the converted model's tensor) and the local error measured alone."""
    order: list[str] = []
    for d in t.localised:
        order += [row.layer for row in d.layers if row.layer not in order]
    rows = [{"layer": layer, "cells": [_cell(next((r for r in d.layers if r.layer == layer), None))
                                       for d in t.localised]} for layer in order]
    return {"paths": [{"path": d.path, "first_layer": d.first_layer, "measured_first_layer": d.measured_first_layer}
                      for d in t.localised], "rows": rows}


#: Model Explorer's node colours: passes, fails on its own, fails by what it inherits
_COLOURS = {"ok": "#bfe8d2", "local": "#d04a4a", "accumulated": "#f2b8b8"}


def model_explorer_node_data(d: Divergence) -> dict[str, Any]:
    """The per-layer table as Model Explorer node data (``GraphNodeData`` of ``ai-edge-model-explorer``:
    ``results`` keyed by the converted model's tensor names, which its graph nodes carry as output
    tensor names): the value is the accumulated max |diff|, the colour says ok / local / accumulated."""
    results: dict[str, Any] = {}
    for row in d.layers:
        key = row.tensor if row.tensor and row.tensor != "model output" else row.layer
        value = row.max_abs if math.isfinite(row.max_abs) else 3.4e38
        results[key] = {"value": value, "bgColor": _COLOURS[_cell(row)["status"]]}
    return {"name": f"pitfalls {d.path}: max |diff| per layer", "results": results}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "path"
def remedy_lines(finding: Finding) -> list[str]:
    """``tried: <name>: works / does not work / not applicable (why)`` per remedy; a remedy that
    worked is the only one shown as a fix."""
    lines = []
    for r in finding.remedies:
        head = "fix (tried, works)" if r.verdict == "works" else f"tried: {r.verdict}"
        lines.append(f"      {head}: {r.name}: {r.evidence.strip().splitlines()[0][:200] if r.evidence.strip() else ''}")
    return lines


def layer_chart(d: Divergence) -> Chart:
    """Per-layer SQNR bars (higher is better); failing layers red, the first local one marked."""
    rows = list(d.layers)
    values = [120.0 if math.isinf(r.sqnr_db) and r.sqnr_db > 0 else
              (min(r.sqnr_db, 120.0) if not math.isinf(r.sqnr_db) else 0.0) for r in rows]
    top = max(values + [1.0])
    bar_h, label_w, plot_w = 18, 220, 420
    height = bar_h * len(rows) + 30
    bars, texts = [], []
    for i, (row, value) in enumerate(zip(rows, values)):
        y = 10 + i * bar_h
        w = max(1.0, value / top * plot_w)
        colour = "#2f9e6e" if row.passes else ("#d04a4a" if row.attribution == "local" else "#e89a9a")
        shown = "inf" if math.isinf(row.sqnr_db) else f"{row.sqnr_db:.1f}"
        texts.append(ChartText(label_w - 6, y + 13, row.layer, anchor="end"))
        bars.append(ChartBar(label_w, y + 2, w, bar_h - 5, colour, f"{row.layer}: {shown} dB"))
        texts.append(ChartText(label_w + w + 4, y + 13, f"{shown} dB"))
    texts.append(ChartText(label_w, height - 4, "SQNR per layer (dB, higher is better; red = fails, dark red = "
                                                "local cause)", css_class="axis"))
    return Chart(label_w + plot_w + 90, height, "plot", aria_label="per-layer SQNR", bars=tuple(bars),
                 texts=tuple(texts))


def _figures_shown(t: TargetReport) -> list[tuple[str, str]]:
    """Sizes in MB, then timings in ms."""
    sizes = [(k, f"{v / 1e6:.2f} MB") for k, v in t.figures.items() if k.endswith("bytes")]
    timings = [(k, f"{v * 1000:.1f} ms") for k, v in t.figures.items() if k.endswith("_s")]
    return sizes + timings


def html_page(report: CheckReport) -> str:
    """The check page (``check.html``): the target x verdict table, then per target its findings, divergence
    and figures, with the report's JSON embedded for tools."""
    model = report.model
    return render("check.html.j2", report=report, model_name=Path(str(model["path"])).name,
                  model={"format": model.get("format"), "flavour": model.get("flavour"),
                         "parameters": model.get("parameters"), "inputs": model.get("inputs")},
                  layer_charts={n: layer_chart(t.divergence) for n, t in report.targets.items()
                                if t.divergence and t.divergence.layers},
                  figures={n: _figures_shown(t) for n, t in report.targets.items()},
                  localised={n: side_by_side(t) for n, t in report.targets.items() if t.localised},
                  data=report.to_json())


def write_report_dir(report: CheckReport, directory: Path) -> list[Path]:
    """``check.json`` and ``check.html`` in ``directory``, and per localised path its Model Explorer
    node data (``model-explorer-<target>-<path>.json``), each written atomically (mode 0644)."""
    from harness.results import write_json_atomically, write_text_atomically

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "check.json"
    write_json_atomically(json_path, report.to_json())
    html_path = directory / "check.html"
    write_text_atomically(html_path, html_page(report))  # a fresh O_EXCL name: never through a planted symlink
    written = [json_path, html_path]
    for t in report.targets.values():
        for d in t.localised:
            path = directory / f"model-explorer-{_slug(d.path)}.json"
            write_json_atomically(path, model_explorer_node_data(d))
            written.append(path)
    return written
