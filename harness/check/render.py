"""``pitfalls check`` output: the terminal summary and the one-file HTML page (no external request)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from harness.check.report import CheckReport, Divergence, TargetReport

VERDICT_COLOURS = {"deploys": "#2f9e6e", "warnings": "#d8a33a", "fails": "#d04a4a", "skipped": "#888"}


def summary(report: CheckReport) -> str:
    """Target x verdict, then the findings, then the divergence (plain text)."""
    model = report.model
    lines = [f"pitfalls check {model['path']} ({model['format']}, {model.get('flavour')}, "
             f"{model.get('parameters')} parameters) in {report.seconds:.1f}s", ""]
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
    lines += ["", "ok: every requested target deploys" if report.ok else "not ok: a target has a blocker"]
    return "\n".join(lines)


def _layer_plot(d: Divergence) -> str:
    """Per-layer SQNR bars (higher is better); failing layers red, the first local one marked."""
    rows = [r for r in d.layers]
    if not rows:
        return ""
    values = [min(r.sqnr_db, 120.0) if not math.isinf(r.sqnr_db) or r.sqnr_db > 0 else 0.0 for r in rows]
    values = [120.0 if math.isinf(r.sqnr_db) and r.sqnr_db > 0 else v for r, v in zip(rows, values)]
    top = max(values + [1.0])
    bar_h, label_w, plot_w = 18, 220, 420
    height = bar_h * len(rows) + 30
    parts = [f'<svg class="plot" width="{label_w + plot_w + 90}" height="{height}" role="img" '
             f'aria-label="per-layer SQNR">']
    for i, (row, value) in enumerate(zip(rows, values)):
        y = 10 + i * bar_h
        w = max(1.0, value / top * plot_w)
        colour = "#2f9e6e" if row.passes else ("#d04a4a" if row.attribution == "local" else "#e89a9a")
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{html.escape(row.layer)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 5}" fill="{colour}"/>')
        shown = "inf" if math.isinf(row.sqnr_db) else f"{row.sqnr_db:.1f}"
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}">{shown} dB</text>')
    parts.append(f'<text x="{label_w}" y="{height - 4}" class="axis">SQNR per layer (dB, higher is better; '
                 'red = fails, dark red = local cause)</text></svg>')
    return "".join(parts)


def _target_section(name: str, t: TargetReport) -> str:
    out = [f'<section id="t-{html.escape(name)}"><h2>{html.escape(name)} '
           f'<span class="badge" style="background:{VERDICT_COLOURS[t.verdict]}">{t.verdict}</span></h2>']
    if t.reason:
        out.append(f"<p>{html.escape(t.reason)}</p>")
    if t.findings:
        out.append("<table><tr><th>severity</th><th>step</th><th>text</th><th>source</th><th>lesson</th><th>fix</th></tr>")
        for f in t.findings:
            lesson = (f'<code>pitfalls explain {html.escape(f.scenario)}</code>' if f.scenario else "")
            out.append(f'<tr class="{f.severity}"><td>{f.severity}</td><td>{html.escape(f.step)}</td>'
                       f'<td><pre>{html.escape(f.text[:2000])}</pre></td><td>{html.escape(f.source)} '
                       f'({f.verified})</td><td>{lesson}</td><td>{html.escape(f.fix)}</td></tr>')
        out.append("</table>")
    if t.divergence and t.divergence.layers:
        d = t.divergence
        out.append(f"<h3>Divergence ({html.escape(d.path)}): first layer that fails on its own: "
                   f"<code>{html.escape(str(d.first_layer))}</code></h3>{_layer_plot(d)}")
        if d.note:
            out.append(f"<p>{html.escape(d.note)}</p>")
    timings = {k: v for k, v in t.figures.items() if k.endswith("_s")}
    sizes = {k: v for k, v in t.figures.items() if k.endswith("bytes")}
    if timings or sizes:
        out.append("<table><tr><th>figure</th><th>value</th></tr>")
        for k, v in {**sizes, **timings}.items():
            shown = f"{v / 1e6:.2f} MB" if k.endswith("bytes") else f"{v * 1000:.1f} ms"
            out.append(f"<tr><td>{html.escape(k)}</td><td>{shown}</td></tr>")
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


CSS = """body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}pre{white-space:pre-wrap;margin:0;
max-width:520px}.badge{color:#fff;border-radius:4px;padding:2px 8px;font-size:.8em}tr.blocker td:first-child{color:#d04a4a;
font-weight:bold}tr.warning td:first-child{color:#b07a10}svg text{font-size:12px}svg .axis{fill:#555}"""


def html_page(report: CheckReport) -> str:
    model = report.model
    matrix = "".join(f'<tr><td><a href="#t-{html.escape(n)}">{html.escape(n)}</a></td><td><span class="badge" '
                     f'style="background:{VERDICT_COLOURS[t.verdict]}">{t.verdict}</span></td>'
                     f'<td>{"" if t.max_abs_diff is None else f"{t.max_abs_diff:.2e}"}</td>'
                     f'<td>{len(t.findings)}</td><td>{t.seconds:.1f}s</td></tr>'
                     for n, t in report.targets.items())
    sections = "".join(_target_section(n, t) for n, t in report.targets.items())
    data = (json.dumps(report.to_json(), default=str)
            .replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e"))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>pitfalls check: "
            f"{html.escape(Path(model['path']).name)}</title><style>{CSS}</style></head><body>"
            f"<h1>pitfalls check: {html.escape(Path(model['path']).name)}</h1>"
            f"<p>{html.escape(model['format'])} ({html.escape(str(model.get('flavour')))}), "
            f"{model.get('parameters')} parameters, inputs {html.escape(json.dumps(model['inputs']))}; "
            f"checked {html.escape(report.created)} in {report.seconds:.1f}s</p>"
            f"<table><tr><th>target</th><th>verdict</th><th>max |diff|</th><th>findings</th><th>time</th></tr>"
            f"{matrix}</table>{sections}<script type='application/json' id='report'>{data}</script>"
            f"</body></html>")


def write_report_dir(report: CheckReport, directory: Path) -> list[Path]:
    """``check.json`` and ``check.html`` in ``directory``, each written atomically (mode 0644)."""
    from harness.results import write_json_atomically

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "check.json"
    write_json_atomically(json_path, report.to_json())
    html_path = directory / "check.html"
    tmp = directory / ".check.html.tmp"
    tmp.write_text(html_page(report), encoding="utf-8")
    tmp.chmod(0o644)
    tmp.replace(html_path)
    return [json_path, html_path]
