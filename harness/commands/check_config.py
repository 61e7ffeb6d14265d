"""``pitfalls check-config PATH...``: configuration checker for deployment bundles (:mod:`harness.configcheck`)."""

from __future__ import annotations

import argparse
import json
import sys

from harness.commands.common import report_dir_of

NAME = "check-config"
HELP = ("check deployment configurations (TF Serving bundles, tf.js web apps, Android LiteRT builds) "
        "statically and on the runtimes; exit 1 on a blocker")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="a project directory: a serving bundle, a web app "
                   "or an Android app (the pieces are found by their content)")
    p.add_argument("--static", action="store_true", help="static rules only: start no server, browser or interpreter")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema pitfalls-check-config/1)")
    p.add_argument("--report-dir", metavar="DIR", help="write check-config.json and check-config.html there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from harness.configcheck import check_config
    from harness.configcheck.render import summary, write_report_dir

    report_dir = report_dir_of(args.report_dir)
    report = check_config(args.paths, verify=not args.static,
                          progress=None if args.quiet else (lambda m: print(f"check-config: {m}", file=sys.stderr,
                                                                            flush=True)))
    if report_dir is not None:
        for path in write_report_dir(report, report_dir):
            print(f"check-config: wrote {path}", file=sys.stderr)
    print(json.dumps(report.to_json(), indent=1, default=str) if args.json else summary(report))
    return report.exit_code()
