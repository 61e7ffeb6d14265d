"""``pitfalls diff OLD NEW``: what changed between two results files (:mod:`harness.diff`); exit 1 on regressions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.errors import UsageError

NAME = "diff"
HELP = "what changed between two results files; exit 1 on regressions"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--json", action="store_true", help="print the changes as JSON")
    p.add_argument("--threshold", type=float, default=1900.0, metavar="PCT",
                   help="noise band of timing figures without repeats: a move beyond (1 + PCT/100) times "
                        "counts (default 1900, a factor 20); other figures are judged by class (see harness.diff)")


def run(args: argparse.Namespace) -> int:
    from harness import diff
    from harness.results import load_results

    if args.threshold < 0:
        raise UsageError(f"--threshold must be a percentage of 0 or more, not {args.threshold:g}")
    old, new = load_results(Path(args.old)), load_results(Path(args.new))
    changes = diff.diff_results(old, new, args.threshold)
    bad = diff.regressions(changes)
    environment = diff.environment_changes(old, new)
    if args.json:
        print(json.dumps({"old": str(args.old), "new": str(args.new), "threshold_pct": args.threshold,
                          "regressions": len(bad),
                          "environment": {k: list(v) for k, v in environment.items()},
                          "changes": [c.to_json() for c in changes]}, indent=1))
    else:
        print(diff.changes_table(changes, environment))
    return 1 if bad else 0
