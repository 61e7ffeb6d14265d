"""``pitfalls check`` output: the terminal summary and the one-file HTML page (no external request)."""

from __future__ import annotations

import math
from pathlib import Path

from harness.check.report import CheckReport, Divergence, TargetReport
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
            if f.fix:
                lines.append(f"      fix: {f.fix}")
    for name, t in report.targets.items():
        if t.divergence and t.divergence.layers:
            d = t.divergence
            lines += ["", f"{name} divergence ({d.path}): first layer that fails on its own: {d.first_layer}"]
            for row in d.layers:
                mark = "ok " if row.passes else ("LOC" if row.attribution == "local" else "acc")
                lines.append(f"  {mark} {row.layer:<28} max|diff| {row.max_abs:.3e}  rel {row.rel_error:.3e}"
                             f"  SQNR {row.sqnr_db:.1f} dB")
    unknown = report.unknown_texts()
    if unknown:
        lines += ["", f"unknown texts ({len(unknown)}: runtime texts no rule maps to a lesson yet; see the report):"]
        lines += [f"  {u['target']} {u['step']}: {u['key']}" for u in unknown]
    lines += ["", "ok: every requested target deploys" if report.ok else "not ok: a target has a blocker"]
    return "\n".join(lines)


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
                  data=report.to_json())


def write_report_dir(report: CheckReport, directory: Path) -> list[Path]:
    """``check.json`` and ``check.html`` in ``directory``, each written atomically (mode 0644)."""
    from harness.results import write_json_atomically, write_text_atomically

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "check.json"
    write_json_atomically(json_path, report.to_json())
    html_path = directory / "check.html"
    write_text_atomically(html_path, html_page(report))  # a fresh O_EXCL name: never through a planted symlink
    return [json_path, html_path]
