"""``pitfalls report [RESULTS]``: report.html and junit.xml rendered from a results file."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.common import default_results
from harness.errors import UsageError
from harness.registry import load_catalog

NAME = "report"
HELP = "render report.html and junit.xml from a results file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="?", metavar="RESULTS", help="results file (default results/latest.json)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the results file's directory)")


def run(args: argparse.Namespace) -> int:
    from harness import report
    from harness.results import load_run

    path = Path(args.results) if args.results else default_results(args)
    run = load_run(path)
    out_dir = Path(args.out) if args.out else path.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory")
    try:
        scenarios = load_catalog().scenarios
    except UsageError:
        scenarios = []  # a results file from elsewhere renders without titles
    for written in report.write_reports(run, out_dir, scenarios):
        print(f"wrote {written}")
    return 0
