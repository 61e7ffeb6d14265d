"""Benchmark ``pitfalls check`` on a mid-size CNN no one here wrote, cold and warm.

The model is ``keras.applications.MobileNetV2`` (alpha 1.0, 224x224, 1000 classes, ``weights=None``:
about 3.5 million parameters), saved as a Keras 3 ``.keras`` file.  "Cold" points ``$PITFALLS_CACHE``
at a fresh directory (every conversion and export is made again); "warm" runs again on it.  Each
run is ``python -m harness check --json`` in a subprocess (the path a user takes); the time per
target, the phases (the report's ``timings``: loading the model, the reference, the targets; per
target its start and its prepare/load/predict steps summed), the CPU seconds of the check and the
processes it waited for (the browser, workers, converters; not the serving container, which the
Docker engine runs: a figure that a busy machine inflates less than the seconds) and the counts of costly things done
(browser launches, servers started, model loads, artifacts built, reference computations: the
report's ``counts``) come from the report.  Targets run side by side unless ``--jobs 1``
(``PITFALLS_CHECK_JOBS``), so per-target seconds overlap.  The counts are what to compare
between two commits on a busy machine; the seconds only on a quiet one.

    .venv/bin/python bench/bench_check.py                  # all targets, cold then warm
    .venv/bin/python bench/bench_check.py --targets litert,tfjs --json /tmp/bench-check.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def make_model(directory: Path) -> Path:
    code = ("import keras; keras.utils.set_random_seed(0); "
            "m = keras.applications.MobileNetV2(weights=None); "
            f"m.save({str(directory / 'mobilenet_v2_224.keras')!r}); print(m.count_params())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    print(f"model: MobileNetV2 224x224, {done.stdout.strip().splitlines()[-1]} parameters", flush=True)
    return directory / "mobilenet_v2_224.keras"


def run_check(model: Path, cache: Path, targets: str, probes: str = "", jobs: str = "") -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "harness", "check", str(model), "--json"]
    if targets:
        cmd += ["--targets", targets]
    if probes:
        cmd += ["--probes", probes]
    started = time.perf_counter()
    env = dict(os.environ, PITFALLS_CACHE=str(cache))
    if jobs:
        env["PITFALLS_CHECK_JOBS"] = jobs
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"check exited {done.returncode}")
    report = json.loads(done.stdout)
    report["bench_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    return seconds, report


def step_phases(timings: dict[str, float]) -> dict[str, float]:
    """A target's step seconds summed by the step's first word (start, prepare, load, predict...);
    a predict is also inside its load, so the phases overlap."""
    phases: dict[str, float] = {}
    for step, seconds in timings.items():
        word = step.split(" ", 1)[0]
        phases[word] = round(phases.get(word, 0.0) + seconds, 3)
    return phases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default="", help="comma-separated targets (default: all)")
    parser.add_argument("--probes", default="", help="passed to check --probes (default: check's own, wide,edge; "
                        "'none' times the sample alone)")
    parser.add_argument("--jobs", default="", help="targets side by side (PITFALLS_CHECK_JOBS; default: check's own)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--reports", type=Path, help="also write each run's whole report here (cold.json, warm.json): "
                        "verdicts, findings and divergence figures to compare between two commits")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pitfalls-bench-check-") as tmp:
        root = Path(tmp)
        model = make_model(root)
        rows = []
        for label in ("cold", "warm"):
            seconds, report = run_check(model, root / "cache", args.targets, args.probes, args.jobs)
            if args.reports:
                args.reports.mkdir(parents=True, exist_ok=True)
                (args.reports / f"{label}.json").write_text(json.dumps(report, indent=1))
            per_target = {name: t["seconds"] for name, t in report["targets"].items()}
            verdicts = {name: t["verdict"] for name, t in report["targets"].items()}
            phases = {name: step_phases(t.get("timings", {})) for name, t in report["targets"].items()}
            rows.append({"cache": label, "seconds": round(seconds, 1), "per_target_s": per_target,
                         "verdicts": verdicts, "phases_s": report.get("timings", {}), "target_phases_s": phases,
                         "counts": report.get("counts", {}),
                         "target_counts": {name: t.get("counts", {}) for name, t in report["targets"].items()},
                         "cpu_s": report["bench_cpu_s"], "load_average": os.getloadavg()})
            print(f"{label}: {seconds:.1f}s, CPU {report['bench_cpu_s']:.1f}s (load average {os.getloadavg()[0]:.1f})  "
                  + "  ".join(f"{n} {s:.1f}s ({verdicts[n]})" for n, s in per_target.items()), flush=True)
            if report.get("timings"):
                print("  phases: " + "  ".join(f"{k} {v:.1f}s" for k, v in report["timings"].items()), flush=True)
            for name, steps in phases.items():
                if steps:
                    print(f"  {name}: " + "  ".join(f"{k} {v:.1f}s" for k, v in steps.items()), flush=True)
            if report.get("counts"):
                print("  counts: " + ", ".join(f"{k} {v}" for k, v in report["counts"].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
