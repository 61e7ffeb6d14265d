"""``pitfalls merge RESULTS… --out FILE``: results files (the shards of a run) joined into one (:mod:`harness.shard`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UsageError

NAME = "merge"
HELP = ("join results files (the shards of a run) into one results file; "
        "refuses different environments, duplicate records and missing shards")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="RESULTS", help="results files, e.g. every shard's")
    p.add_argument("--out", required=True, metavar="PATH", help="the merged results file to write")
    p.add_argument("--allow-different-environments", action="store_true",
                   help="merge files whose package or Python versions differ (each file's are kept in "
                        "environment.merged_from)")


def run(args: argparse.Namespace) -> int:
    """``pitfalls merge A.json B.json ... --out merged.json``: shards (or runs of one environment) as one run."""
    from harness.results import write_run
    from harness.shard import merge

    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory; give a file path such as results/merged.json")
    if any(out.resolve() == Path(p).resolve() for p in args.inputs):
        raise UsageError(f"--out {out} is one of the inputs; write the merged file elsewhere")
    merged = merge([Path(p) for p in args.inputs], args.allow_different_environments)
    write_run(out, merged.run)
    print(f"merged {len(args.inputs)} results files, {len(merged.run.records)} records: "
          + ", ".join(f"{k} {v}" for k, v in merged.run.summary.items() if v) + f"\nresults: {out}")
    for sid in merged.missing_files:
        print(f"pitfalls: warning: {sid} was given to a shard but has no record in any input "
              "(the shard stopped early or the file could not be collected)", file=sys.stderr)
    return 1 if merged.missing_files else 0
