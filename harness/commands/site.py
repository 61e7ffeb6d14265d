"""``pitfalls site --out DIR``: the static lesson site (:mod:`harness.site`)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.commands.common import default_results, warn_problems
from harness.paths import DEFAULT_RESULTS, REPO_ROOT
from harness.registry import load_catalog

NAME = "site"
HELP = ("the lesson site for students: a static site with every scenario's faulty "
        "and fixed code, the evidence, search by error text")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="where the site goes (a new or empty directory, "
                   "or an earlier site, which is replaced)")
    p.add_argument("--results", metavar="FILE", help="results file for the outcomes and evidence (default "
                   f"{os.path.relpath(DEFAULT_RESULTS, REPO_ROOT)} when it exists)")


def run(args: argparse.Namespace) -> int:
    from harness import site
    from harness.results import load_run

    out = Path(args.out)
    site.check_out_dir(out)
    explicit = args.results is not None
    results_path = Path(args.results) if explicit else default_results(args)
    run = load_run(results_path) if explicit or results_path.exists() else None
    catalog = load_catalog()
    warn_problems(catalog)
    files = site.build_site(catalog.scenarios, run, str(results_path) if run else "")
    site.write_site(out, files)
    pages = sum(1 for rel in files if rel.startswith("scenarios/"))
    print(f"wrote the lesson site: {pages} lessons{f' with outcomes from {results_path}' if run else ''} "
          f"to {out}/ (open {out / 'index.html'})")
    return 0
