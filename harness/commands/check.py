"""``pitfalls check MODEL``: pre-flight of a user's model on every target (:mod:`harness.check`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.commands.common import split_list
from harness.errors import UsageError
from harness.registry import KNOWN_TARGETS

NAME = "check"
HELP = ("pre-flight of your own model on every target: findings, parity, "
        "the layer where outputs diverge; exit 1 when a target has a blocker")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a .keras file, an .h5 file or a SavedModel directory")
    p.add_argument("--targets", metavar="LIST", help="comma-separated targets (default: all: "
                   + ",".join(KNOWN_TARGETS) + ")")
    p.add_argument("--inputs", metavar="FILE.npz", help="sample inputs keyed by input name "
                   "(default: synthesised from the signature; see docs/check-schema.md)")
    p.add_argument("--profile", metavar="LIST", help="LiteRT device profiles (default host,low-end,arm64; "
                   "arm64 is parity only, under qemu, and is left out where it cannot run)")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import MODULE first (it registers the model's custom layers); repeatable. "
                        "MODULE is trusted code: it runs, and the model's config may name it")
    p.add_argument("--trust-model", action="store_true",
                   help="let the model run the code it carries (Lambda layers, Python/file-system/network ops); "
                        "by default such a model is refused or not run (see docs/security.md)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema pitfalls-check/1)")
    p.add_argument("--report-dir", metavar="DIR", help="write check.json and check.html there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from harness.check import check
    from harness.check.render import summary, write_report_dir
    from harness.check.run import DEFAULT_PROFILES

    report_dir = Path(args.report_dir) if args.report_dir else None
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} is a file; give a directory")
    report = check(args.model, targets=split_list(args.targets) or None, inputs=args.inputs,
                   profiles=split_list(args.profile) or DEFAULT_PROFILES, imports=tuple(args.imports or ()),
                   trust=args.trust_model, progress=None if args.quiet else (lambda m: print(f"check: {m}", file=sys.stderr, flush=True)))
    if report_dir is not None:
        for path in write_report_dir(report, report_dir):
            print(f"check: wrote {path}", file=sys.stderr)
    print(json.dumps(report.to_json(), indent=1, default=str) if args.json else summary(report))
    return report.exit_code()
