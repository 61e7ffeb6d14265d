"""``pitfalls check-config`` output: the terminal summary and the one-file HTML page (shared renderer)."""

from __future__ import annotations

from pathlib import Path

from harness.check.report import SEVERITIES
from harness.configcheck.report import ConfigReport
from harness.render import render


def _counts(report: ConfigReport) -> list[str]:
    return [f"{sum(f.severity == s for f in report.findings)} {s}(s)" for s in SEVERITIES]


def _verdict(report: ConfigReport) -> str:
    if not report.ok:
        return "fails"
    return "warnings" if any(f.severity == "warning" for f in report.findings) else "deploys"


def summary(report: ConfigReport) -> str:
    lines = [f"pitfalls check-config {' '.join(report.paths)} in {report.seconds:.1f}s: {', '.join(_counts(report))}"]
    for b in report.bundles:
        pieces = "; ".join(f"{role}: {', '.join(files)}" for role, files in b.pieces.items())
        lines.append(f"  {b.path}: {b.kind} (verified: {b.verified}) - {pieces}")
        for r in b.runs:
            lines.append(f"    {r['page']} on {r['backend']}: page loaded {r['page_load_s']} s, model files "
                         f"{r['model_files_s']} s, first predict {r['first_predict_s']} s, numTensors before each "
                         f"prediction {r['num_tensors']} ({r.get('predictions_waited') or 'no wait'})"
                         + (f"; refused: {', '.join(r['blocked'])}" if r.get("blocked") else ""))
    lines.append("")
    for f in report.sorted_findings():
        where = f"{f.file}:{f.line}" if f.line else f.file
        how = "verified" if f.verified == "runtime" else "static"
        first = f.text.strip().splitlines()[0] if f.text.strip() else ""
        lines.append(f"[{f.severity}] {where} ({how}, {f.step}): {first[:300]}")
        if f.scenario:
            lines.append(f"      lesson: pitfalls explain {f.scenario}")
        if f.fix:
            lines.append(f"      fix: {f.fix}")
    lines += ["", "ok: no blocker" if report.ok else "not ok: a configuration has a blocker"]
    return "\n".join(lines)


def html_page(report: ConfigReport) -> str:
    """The check-config page: the bundles found, then every finding with its file, line and lesson."""
    return render("check-config.html.j2", report=report, findings=report.sorted_findings(), counts=_counts(report),
                  verdict=_verdict(report), pieces=[{role: ", ".join(files) for role, files in b.pieces.items()}
                                                    for b in report.bundles],
                  any_verified=any(b.verified == "yes" for b in report.bundles), data=report.to_json())


def write_report_dir(report: ConfigReport, directory: Path) -> list[Path]:
    """``check-config.json`` and ``check-config.html`` in ``directory``, each written atomically."""
    from harness.results import write_json_atomically, write_text_atomically

    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "check-config.json", directory / "check-config.html"
    write_json_atomically(json_path, report.to_json())
    write_text_atomically(html_path, html_page(report))
    return [json_path, html_path]
