"""Benchmark xdist's distribution: the warm catalog with ``--dist load`` and with ``--dist loadgroup``.

With ``loadgroup`` every tfserving item runs on one worker and every tfjs item on one worker
(bench/loadgroup_plugin.py), so that each worker drives one heavy runtime.  Both runs back to
back on the same cache; printed: wall seconds, outcomes and the load average before each.

    .venv/bin/python bench/bench_dist.py [-n 2] [SELECTION ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def run(mode: str, selection: list[str], workers: int, out: Path) -> tuple[float, dict[str, int], int]:
    results = out / f"{mode}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT / "bench"), str(REPO_ROOT)]))
    cmd = [sys.executable, "-m", "pytest", *(selection or ["scenarios"]), "-q", "-n", str(workers), "--dist", mode,
           "-p", "loadgroup_plugin", "--pitfalls-results", str(results)]
    started = time.perf_counter()
    rc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, timeout=3600).returncode
    seconds = time.perf_counter() - started
    summary = json.loads(results.read_text())["summary"] if results.exists() else {}
    return seconds, {k: v for k, v in summary.items() if v}, rc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("selection", nargs="*")
    parser.add_argument("-n", dest="workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pitfalls-bench-dist-") as tmp:
        for mode in ("load", "loadgroup"):
            load = os.getloadavg()[0]
            seconds, summary, rc = run(mode, args.selection, args.workers, Path(tmp))
            print(f"--dist {mode:<9} -n {args.workers}  {seconds:6.1f} s  exit {rc}  {summary}  load before {load:.1f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
