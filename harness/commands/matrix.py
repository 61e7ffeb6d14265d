"""``pitfalls matrix``: the catalog across versions, one environment per cell, and the matrix report (:mod:`harness.matrix`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.commands.common import select_files, split_list, worker_count
from harness.errors import UsageError
from harness.paths import REPO_ROOT
from harness.registry import load_catalog

NAME = "matrix"
HELP = ("the catalog across versions: one uv environment per cell of a matrix "
        "file, then a scenario x cell report of what changed between neighbouring cells")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("selection", nargs="*", metavar="[FILE.toml] SELECTION",
                   help="the matrix file (default matrix.toml at the checkout's root), then what each cell runs "
                        "as `pitfalls run` takes it (default: the file's selection, else every scenario)")
    p.add_argument("-n", dest="workers", type=worker_count, metavar="N|auto", help="pytest-xdist workers in each cell")
    p.add_argument("--cells", metavar="A,B", help="run only these cells (comma-separated names)")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "matrix"), metavar="DIR",
                   help="where matrix.json, each cell's results and the report go (default results/matrix)")
    p.add_argument("--cell-timeout", type=float, metavar="S",
                   help="stop a cell's run after S seconds (default 10800: harness.matrix.run.CELL_TIMEOUT_S)")
    p.add_argument("--report-only", action="store_true", help="only render the report of the matrix run in --out")
    p.add_argument("--combine", nargs="+", metavar="DIR", help="join the matrix runs in these directories (e.g. "
                   "one CI job per cell, `--cells NAME`) into --out, in the matrix file's cell order, and report")


def run(args: argparse.Namespace) -> int:
    from harness.errors import SetupError
    from harness.matrix import spec

    if args.workers is not None and args.workers < 0:
        raise UsageError(f"-n must be 0 or more, not {args.workers}")
    if args.cell_timeout is not None and args.cell_timeout <= 0:
        raise UsageError(f"--cell-timeout must be a number of seconds above 0, not {args.cell_timeout:g}")
    rest = list(args.selection)
    matrix_file = spec.DEFAULT_MATRIX
    if rest and rest[0].endswith(".toml"):
        matrix_file = Path(rest.pop(0))
    out = Path(args.out).resolve()
    if args.report_only:
        if rest or args.cells or args.combine:
            raise UsageError("--report-only renders an existing matrix run: it takes no selection, --cells or --combine")
        return _matrix_report(out)
    matrix = spec.parse_matrix(matrix_file)
    if args.combine:
        if rest or args.cells:
            raise UsageError("--combine joins finished runs: it takes the matrix file but no selection and no --cells")
        from harness.matrix.run import combine_runs

        combine_runs([Path(p) for p in args.combine], out_dir=out, matrix=matrix)
        return _matrix_report(out)
    if args.cells:
        matrix = matrix.pick(split_list(args.cells))
    select_files(load_catalog(), rest or list(matrix.selection), [])  # an unknown selection is bad input here
    from harness.matrix.run import CELL_TIMEOUT_S, run_matrix

    try:
        run_matrix(matrix, out_dir=out, selection=rest, workers=str(args.workers) if args.workers else None,
                   cell_timeout=CELL_TIMEOUT_S if args.cell_timeout is None else args.cell_timeout)
    except SetupError as exc:
        print(f"pitfalls: {exc}", file=sys.stderr)
        return 1
    return _matrix_report(out)


def _matrix_report(out: Path) -> int:
    from harness.matrix import report

    matrix_json = out / "matrix.json"
    built = report.build_report(matrix_json)
    print(report.render_terminal(built))
    html, data = out / "matrix.html", out / "matrix-report.json"
    report.write_html(built, html)
    from harness.results import write_text_atomically

    summary = report.report_json(built)
    write_text_atomically(data, json.dumps(summary, indent=2) + "\n")
    print(f"matrix: {matrix_json}\nreport: {html}\njson:   {data}")
    failed = [c.name for c in built.run.cells if c.status == "failed"]
    if failed:
        print(f"pitfalls: cell(s) whose set-up or run broke: {', '.join(failed)} (reasons above and in "
              f"{matrix_json})", file=sys.stderr)
    # infeasible cells are findings, not failures; a regression between neighbours or a broken cell is
    return 1 if failed or summary["summary"]["regressions"] else 0
