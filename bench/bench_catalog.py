"""Benchmark the catalog run: cold cache, warm cache, and one scenario warm, with 1 and 2 workers.

Each measurement is one ``python -m harness run`` in a subprocess (the path a user takes), timed
from start to exit.  "Cold" points ``$PITFALLS_CACHE`` at a fresh temporary directory, so every
model is trained, exported and converted again (and every image the server targets need is
rebuilt); "warm" runs again on that same cache.  Results and reports go to a temporary directory:
the repository's ``results/`` is left alone.

    .venv/bin/python bench/bench_catalog.py            # the whole catalog (minutes)
    .venv/bin/python bench/bench_catalog.py --quick    # a small subset, to check the bench works
    .venv/bin/python bench/bench_catalog.py --workers 2 --json /tmp/bench.json
    .venv/bin/python bench/bench_catalog.py --warm-only --workers 2   # on the existing cache, no cold run
    .venv/bin/python bench/bench_catalog.py --fork-ab --workers 2 --keep /tmp/ab
        # warm, back to back: servers in a container each (PITFALLS_SERVING_FORK=0), then forked;
        # the ratio, and both results files kept for `pitfalls diff`

Each line also gives the variant-seconds (the sum of the records' ``seconds``) per target and the
server share: the ``tfserving`` variant-seconds over all variant-seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ONE_SCENARIO = "browser/model-loading/asynchronous-loading"
QUICK_SELECTION = ("browser/model-loading/asynchronous-loading",
                   "mobile/general-questions/entire-procedure-of-deployment")


@dataclass(frozen=True)
class Measurement:
    what: str  # "catalog" | "one scenario"
    workers: int
    cache: str  # "cold" | "warm" | "unforked" | "forked" (both warm)
    seconds: float
    exit_code: int
    variants: int
    summary: dict[str, int]
    target_seconds: dict[str, float]

    @property
    def server_share(self) -> float:
        total = sum(self.target_seconds.values())
        return self.target_seconds.get("tfserving", 0.0) / total if total else float("nan")


def target_seconds(records: list[dict[str, object]]) -> dict[str, float]:
    """Variant-seconds per target (the records' ``seconds`` summed), largest first."""
    totals: dict[str, float] = {}
    for record in records:
        seconds = record.get("seconds")
        if isinstance(seconds, (int, float)):
            name = str(record.get("target", "?"))
            totals[name] = totals.get(name, 0.0) + float(seconds)
    return {name: round(value, 1) for name, value in sorted(totals.items(), key=lambda kv: -kv[1])}


def run_once(selection: tuple[str, ...], workers: int, cache: Path | None, out: Path, what: str,
             label: str, extra_env: dict[str, str] | None = None) -> Measurement:
    results = out / f"{what.replace(' ', '-')}-n{workers}-{label}.json"
    cmd = [sys.executable, "-m", "harness", "run", *selection, "-n", str(workers), "--results", str(results),
           "--report-dir", str(out / f"{what.replace(' ', '-')}-n{workers}-{label}")]
    env = dict(os.environ, **({"PITFALLS_CACHE": str(cache)} if cache is not None else {}), **(extra_env or {}))
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    summary: dict[str, int] = {}
    per_target: dict[str, float] = {}
    if results.exists():
        document = json.loads(results.read_text())
        summary = {k: v for k, v in document["summary"].items() if v}
        per_target = target_seconds(document.get("records", []))
    if proc.returncode not in (0, 1):
        print(proc.stdout[-3000:], file=sys.stderr)
    return Measurement(what, workers, label, round(seconds, 1), proc.returncode, sum(summary.values()), summary,
                       per_target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"run only {', '.join(QUICK_SELECTION)}")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--json", metavar="PATH", help="also write the measurements as JSON")
    parser.add_argument("--warm-only", action="store_true",
                        help="only the warm catalog, on the existing cache ($PITFALLS_CACHE or the default)")
    parser.add_argument("--fork-ab", action="store_true",
                        help="warm only, back to back: PITFALLS_SERVING_FORK=0 (a container per server), then forked servers")
    parser.add_argument("--keep", metavar="DIR", help="copy the results files here (for `pitfalls diff`)")
    parser.add_argument("selection", nargs="*", help="scenario paths to run instead of the whole catalog")
    args = parser.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    selection = tuple(args.selection) or (QUICK_SELECTION if args.quick else ())
    measurements: list[Measurement] = []
    warm_only = args.warm_only or args.fork_ab
    forking = {"warm": None, "cold": None, "unforked": {"PITFALLS_SERVING_FORK": "0"}, "forked": {"PITFALLS_SERVING_FORK": "1"}}
    with tempfile.TemporaryDirectory(prefix="pitfalls-bench-") as tmp:
        for n in workers:
            cache: Path | None = None if warm_only else Path(tmp) / f"cache-n{n}"
            out = Path(tmp) / "out"
            plan = ((("catalog", selection, "unforked"), ("catalog", selection, "forked")) if args.fork_ab else
                    (("catalog", selection, "warm"),) if args.warm_only else
                    (("catalog", selection, "cold"), ("catalog", selection, "warm"),
                     ("one scenario", (ONE_SCENARIO,), "warm")))
            for what, sel, label in plan:
                m = run_once(sel, n, cache, out, what, label, forking[label])
                measurements.append(m)
                print(f"{m.what:<13} -n {m.workers}  {m.cache:<4}  {m.seconds:7.1f} s  exit {m.exit_code}  "
                      f"{m.variants} variants {m.summary}  load {os.getloadavg()[0]:.1f}", flush=True)
                print(f"{'':<13} variant-seconds by target {m.target_seconds}  "
                      f"server share {m.server_share:.0%}", flush=True)
            if args.keep:
                Path(args.keep).mkdir(parents=True, exist_ok=True)
                for results in out.glob("*.json"):
                    shutil.copy2(results, Path(args.keep) / results.name)
    print()
    if args.fork_ab:
        for n in workers:
            pair = {m.cache: m for m in measurements if m.workers == n}
            print(f"-n {n}: forked/unforked {pair['forked'].seconds / pair['unforked'].seconds:.2f} "
                  f"({pair['forked'].seconds:.1f} s / {pair['unforked'].seconds:.1f} s)")
    if warm_only:
        if args.json:
            Path(args.json).write_text(json.dumps([dict(asdict(m), server_share=m.server_share)
                                                   for m in measurements], indent=1) + "\n")
        return 0 if all(m.exit_code in (0, 1) for m in measurements) else 1
    print(f"{'workers':<8}{'cold s':>9}{'warm s':>9}{'warm/cold':>11}{'one warm s':>12}")
    for n in workers:
        got = {(m.what, m.cache): m for m in measurements if m.workers == n}
        cold, warm, one = got[("catalog", "cold")], got[("catalog", "warm")], got[("one scenario", "warm")]
        ratio = warm.seconds / cold.seconds if cold.seconds else float("nan")
        print(f"{n:<8}{cold.seconds:>9.1f}{warm.seconds:>9.1f}{ratio:>11.2f}{one.seconds:>12.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(asdict(m), server_share=m.server_share)
                                               for m in measurements], indent=1) + "\n")
    return 0 if all(m.exit_code in (0, 1) for m in measurements) else 1


if __name__ == "__main__":
    sys.exit(main())
