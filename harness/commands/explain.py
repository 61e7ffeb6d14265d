"""``pitfalls explain ID``: a scenario for students, in the terminal: challenge, cause, the faulty and the fixed
code (side by side, stacked or as a diff), the symptom last observed, the fix."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import textwrap
from pathlib import Path

from harness.commands.common import default_results
from harness.registry import find_in_catalog, load_catalog
from harness.scenario import Scenario

NAME = "explain"
HELP = "a scenario for students: challenge, cause, code, symptom, fix"

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", metavar="ID", help="scenario id, e.g. browser/model-loading/asynchronous-loading")
    p.add_argument("--results", metavar="PATH", help="results file to read the symptom from")
    p.add_argument("--layout", choices=("auto", "side", "stacked", "diff"), default="auto",
                   help="faulty and fixed code side by side, one after the other, or as a unified diff "
                        "(faulty → fixed)")
    p.add_argument("--width", type=int, help="output width (default: the terminal's)")


def _highlight(code: str, colour: bool) -> list[str]:
    if colour:
        try:
            from pygments import highlight
            from pygments.formatters import TerminalFormatter
            from pygments.lexers import PythonLexer

            return highlight(code, PythonLexer(), TerminalFormatter()).rstrip("\n").split("\n")
        except ImportError:
            pass
    return code.split("\n")


def _hard_wrap(code: str, width: int) -> str:
    out = []
    for line in code.split("\n"):
        while len(line) > width:
            out.append(line[:width])
            line = "  " + line[width:]
        out.append(line)
    return "\n".join(out)


def side_by_side(left: str, right: str, width: int, colour: bool, titles: tuple[str, str]) -> str:
    col = max((width - 3) // 2, 20)
    lhs = _highlight(_hard_wrap(left, col), colour)
    rhs = _highlight(_hard_wrap(right, col), colour)
    lines = [titles[0].ljust(col) + " │ " + titles[1], "─" * col + "─┼─" + "─" * col]
    for i in range(max(len(lhs), len(rhs))):
        a = lhs[i] if i < len(lhs) else ""
        b = rhs[i] if i < len(rhs) else ""
        lines.append(a + " " * (col - len(ANSI.sub("", a))) + " │ " + b)
    return "\n".join(lines)


def unified_diff_view(faulty: str, fixed: str, colour: bool) -> str:
    """The faulty → fixed change as a unified diff (difflib), red/green/cyan in a terminal."""
    from harness.site import unified_diff

    text = unified_diff(faulty, fixed, context=1000)  # the whole code: a lesson reads better with all of it
    if not colour:
        return text
    paint = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
    return "\n".join(f"{paint[line[0]]}{line}\x1b[0m" if line[:1] in paint and not line.startswith(("+++", "---"))
                     else (f"\x1b[1m{line}\x1b[0m" if line.startswith(("+++", "---")) else line)
                     for line in text.split("\n"))


def _observed_lines(scenario: Scenario, results_path: Path, explicit: bool) -> list[str]:
    from harness.report import outcome_label
    from harness.results import load_run

    if not results_path.exists() and not explicit:
        return [f"no results file yet ({results_path}); run `pitfalls run {scenario.id}` to observe it"]
    run = load_run(results_path)
    mine = [r for r in run.records if r.scenario == scenario.id]
    if not mine:
        return [f"{results_path} has no record of this scenario; run `pitfalls run {scenario.id}`"]
    lines = [f"from {results_path} ({run.created}):"]
    for r in sorted(mine, key=lambda r: (r.target, r.variant != "faulty")):
        ev = r.evidence
        lines.append(f"  [{r.target}] {r.variant}: {outcome_label(r.outcome)} — {r.verdict[:400]}")
        if ev.error:
            err = ev.error
            lines.append(f"      error: {err.kind}: {err.message[:600]}")
            if err.runtime or err.source:
                lines.append(f"      from:  {err.runtime} {err.source}".rstrip())
        if ev.figures:
            lines.append("      figures: " + ", ".join(f"{k} = {v:.6g}" for k, v in ev.figures.items()))
    return lines


def run(args: argparse.Namespace) -> int:
    from harness.lesson import variant_code
    from harness.taxonomy import challenge

    catalog = load_catalog()
    scenario = find_in_catalog(catalog, args.id)
    explicit = args.results is not None
    results = Path(args.results) if explicit else default_results(args)
    observed = _observed_lines(scenario, results, explicit)  # validates the file before printing anything
    tty = sys.stdout.isatty()
    width = args.width or shutil.get_terminal_size((120, 40)).columns
    node = challenge(scenario.taxonomy)

    def heading(text: str) -> str:
        return f"\n\x1b[1m{text}\x1b[0m" if tty else f"\n== {text} =="

    def para(text: str) -> str:
        return textwrap.fill(" ".join(text.split()), width=min(width, 100)) if text else "(not written)"

    out = [f"\x1b[1m{scenario.title}\x1b[0m" if tty else scenario.title,
           f"{scenario.id} · targets: {', '.join(scenario.targets)}"
           + (f" · known gap: {scenario.known_gap}" if scenario.known_gap else "")
           + (f" · versions: {scenario.describe_ranges()}" if scenario.describe_ranges() else ""),
           heading(f"The challenge: {node.id}"), para(node.note[:1].upper() + node.note[1:] + "." if node.note else ""),
           heading("Cause"), para(scenario.cause),
           heading("Faulty and fixed code"),
           f"symptom (faulty): {scenario.symptom.describe()}\nremedy (fixed):   {scenario.remedy.describe()}\n"]
    code = variant_code(scenario)
    layout = args.layout if args.layout != "auto" else ("side" if width >= 100 else "stacked")
    if layout == "diff":
        out.append(unified_diff_view(code.faulty, code.fixed, tty))
    elif layout == "side":
        out.append(side_by_side(code.faulty, code.fixed, width, tty, ("faulty", "fixed")))
    else:
        out += ["--- faulty ---", "\n".join(_highlight(code.faulty, tty)),
                "--- fixed ---", "\n".join(_highlight(code.fixed, tty))]
    if code.shared:
        out += ["", "--- used by both variants ---", "\n".join(_highlight(code.shared, tty))]
    out += [heading("Symptom last observed"), *observed, heading("Fix"), para(scenario.fix),
            heading("References"), *(f"  {u}" for u in scenario.references or ("(none given)",))]
    print("\n".join(out))
    return 0
