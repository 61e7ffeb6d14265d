"""Benchmark sharded runs: the catalog as N shards one after another, merged, checked against one run.

Each shard is one ``python -m harness run --shard K/N --durations FILE`` in a subprocess (what a
CI matrix job runs), timed from start to exit; then ``python -m harness merge`` joins them and the
merged records are compared with the durations file's (an unsharded run of the same selection):
the same (scenario, target, variant) records with the same outcomes.  Printed: each shard's files,
expected and measured seconds, and the imbalance (slowest - fastest) / slowest.

``--memory`` measures instead the peak memory of one xdist worker and everything it starts
(Chromium, LiteRT worker processes), sampling /proc every 0.2 s: the sum of RSS and of PSS
(proportional set size: shared pages counted once) over the worker's process tree.

    .venv/bin/python bench/bench_shard.py --durations /tmp/cat-after2.json          # the whole catalog
    .venv/bin/python bench/bench_shard.py --durations R.json browser mobile/model-conversion -n 1
    .venv/bin/python bench/bench_shard.py --memory browser mobile/model-conversion
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def run_shards(selection: list[str], count: int, durations: Path, workers: int, out: Path) -> int:
    from harness.results import load_run

    rows = []
    for k in range(1, count + 1):
        results = out / f"shard-{k}.json"
        cmd = [sys.executable, "-m", "harness", "run", *selection, "--shard", f"{k}/{count}",
               "--durations", str(durations), "-n", str(workers), "--results", str(results),
               "--report-dir", str(out / f"shard-{k}")]
        started = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.perf_counter() - started
        run = load_run(results)
        shard = run.environment["shard"]
        recorded = sum(r.seconds for r in run.records)
        rows.append((k, len(shard["files"]), shard["expected_seconds"], recorded, seconds, proc.returncode))
        print(f"shard {k}/{count}: {len(shard['files'])} files, record seconds expected {shard['expected_seconds']:.1f} "
              f"s, recorded {recorded:.1f} s; ran {seconds:.1f} s, exit {proc.returncode}", flush=True)
    merged = out / "merged.json"
    proc = subprocess.run([sys.executable, "-m", "harness", "merge", *(str(out / f"shard-{k}.json")
                                                                       for k in range(1, count + 1)),
                           "--out", str(merged)], cwd=REPO_ROOT, capture_output=True, text=True)
    print(proc.stdout.strip(), proc.stderr.strip(), sep="\n")
    times = [r[4] for r in rows]
    imbalance = (max(times) - min(times)) / max(times)
    print(f"run times: {', '.join(f'{t:.1f}' for t in times)} s; imbalance (slowest - fastest) / slowest = "
          f"{imbalance:.1%}; total {sum(times):.1f} s")
    want = {r.key: r.outcome.value for r in load_run(durations).records}
    got = {r.key: r.outcome.value for r in load_run(merged).records}
    if selection:
        from harness.registry import normalise_selection

        sels = [normalise_selection(s) for s in selection]
        want = {k: v for k, v in want.items() if any(k[0] == s or k[0].startswith(s + "/") for s in sels)}
    same = want == got
    print(f"merged vs unsharded ({durations}): {len(got)} vs {len(want)} records, "
          + ("the same records with the same outcomes" if same else
             f"DIFFERENT: only merged {sorted(set(got) - set(want))[:5]}, only unsharded "
             f"{sorted(set(want) - set(got))[:5]}, other outcome "
             f"{[(k, want[k], got[k]) for k in set(got) & set(want) if got[k] != want[k]][:5]}"))
    print(json.dumps({"shards": [{"index": k, "files": n, "expected_seconds": e, "recorded_seconds": round(r, 1),
                                  "seconds": round(t, 1), "exit": rc} for k, n, e, r, t, rc in rows],
                      "imbalance": round(imbalance, 3), "same_as_unsharded": same}))
    return 0 if same and proc.returncode == 0 else 1


def _tree(root: int) -> list[int]:
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        try:
            for task in os.listdir(f"/proc/{pid}/task"):
                todo += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return pids


def _kib(path: str, field: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def measure_memory(selection: list[str], out: Path) -> int:
    """Peak RSS and PSS sums over the xdist worker's process tree during ``run SELECTION -n 1``."""
    cmd = [sys.executable, "-m", "harness", "run", *selection, "-n", "1", "--results", str(out / "memory.json"),
           "--report-dir", str(out / "memory")]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = {"rss": 0, "pss": 0, "worker_rss": 0, "processes": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            # the tree: harness run -> pytest controller -> xdist worker (gw0) -> Chromium, LiteRT workers
            pids = _tree(proc.pid)
            workers = [p for p in pids if "exec(eval(sys.stdin" in _cmdline(p) or "execnet" in _cmdline(p)]
            tree = [q for w in workers for q in _tree(w)] or pids[2:]
            rss = sum(_kib(f"/proc/{q}/status", "VmRSS:") for q in tree)
            pss = sum(_kib(f"/proc/{q}/smaps_rollup", "Pss:") for q in tree)
            worker = max((_kib(f"/proc/{w}/status", "VmRSS:") for w in workers), default=0)
            if rss > peak["rss"]:
                peak["rss"], peak["processes"] = rss, len(tree)
            peak["pss"] = max(peak["pss"], pss)
            peak["worker_rss"] = max(peak["worker_rss"], worker)
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    thread.start()
    rc = proc.wait()
    done.set()
    thread.join()
    print(f"run {' '.join(selection)} -n 1: {time.perf_counter() - started:.1f} s, exit {rc}")
    print(f"peak over the worker's process tree: RSS sum {peak['rss'] / 1024:.0f} MiB ({peak['processes']} "
          f"processes), PSS sum {peak['pss'] / 1024:.0f} MiB; the worker process alone {peak['worker_rss'] / 1024:.0f} MiB")
    print(json.dumps({k: round(v / 1024) if k != "processes" else v for k, v in peak.items()}))
    return rc


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("selection", nargs="*", help="what to run (default: the whole catalog)")
    parser.add_argument("--durations", type=Path, help="a previous unsharded results file of the selection")
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("-n", dest="workers", type=int, default=2, help="xdist workers per shard")
    parser.add_argument("--memory", action="store_true", help="measure one worker's peak memory instead")
    parser.add_argument("--keep", type=Path, help="keep the results here (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-shard-") as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        if args.memory:
            return measure_memory(args.selection or ["browser", "mobile/model-conversion"], out)
        if args.durations is None:
            parser.error("--durations FILE: a previous unsharded results file of the selection")
        return run_shards(args.selection, args.shards, args.durations, args.workers, out)


if __name__ == "__main__":
    sys.exit(main())
