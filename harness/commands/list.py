"""``pitfalls list``: the catalog as a tree, as JSON, or as the README's table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.commands.common import warn_problems
from harness.errors import UsageError
from harness.registry import load_catalog, target_availability

NAME = "list"
HELP = "the catalog by taxonomy, with targets and their availability here"


def add_arguments(p: argparse.ArgumentParser) -> None:
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the catalog as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the README's catalog table")
    p.add_argument("--update", metavar="FILE", help="with --markdown: replace the table between the "
                   "catalog markers in FILE (e.g. README.md)")


def run(args: argparse.Namespace) -> int:
    from harness import report

    catalog = load_catalog()
    if args.update and not args.markdown:
        raise UsageError("--update FILE goes with --markdown (e.g. `pitfalls list --markdown --update README.md`)")
    if args.update:
        path = Path(args.update)
        if not path.is_file():
            raise UsageError(f"file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if report.marked_block(text) is None:
            raise UsageError(f"{path} has no {report.CATALOG_START} … {report.CATALOG_END} markers; add them where the table goes")
    warn_problems(catalog)
    if args.json:
        print(json.dumps(report.catalog_json(catalog.scenarios), indent=1))
    elif args.markdown:
        table = report.catalog_markdown(catalog.scenarios)
        if args.update:
            path = Path(args.update)
            path.write_text(report.replace_marked_block(path.read_text(encoding="utf-8"), table), encoding="utf-8")
            print(f"updated the catalog table in {path}")
        else:
            sys.stdout.write(table)
    else:
        print(report.catalog_tree(catalog.scenarios, target_availability()))
    return 1 if catalog.problems else 0
