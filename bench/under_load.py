"""Run the test suite and the catalog N times with a CPU hog beside them; print what flipped.

Issue 24: CI machines are shared and busy, and a suite that goes red at random is worse than none.
This bench starts ``--hog K`` busy processes (each a Python ``while True: pass``, in its own process
group, ended by its id when the bench ends), then runs, ``--runs N`` times in turn:

* the tests, with the command CI calls: ``./run.sh test`` (``--via run.sh``, for a clean clone
  with its own ``.venv``), or the same two steps with this checkout on ``PYTHONPATH``
  (``--via python``: ``python -m harness.typecheck``, then ``python -m pytest -n W
  --durations=15``; for a worktree whose ``.venv`` is shared with another checkout, where
  ``./run.sh`` and the ``pitfalls`` script would run the other checkout's code);
* the catalog, with ``pitfalls run -n W`` (``./run.sh catalog`` or ``python -m harness run``).

It prints one line per run: passed/failed/skipped (or the catalog's outcomes), the outcome flips
against the first run of the same kind (tests: per test id from a JUnit file; catalog: outcome
changes of :func:`harness.diff.diff_results` between the results files) and the wall time.  Every
run's log, JUnit file and results file stay in ``--out``; ``--json`` writes the figures.

    .venv/bin/python bench/under_load.py --runs 3 --hog 2                  # clean clone: ./run.sh
    PYTHONPATH=$PWD .venv/bin/python bench/under_load.py --via python --runs 3 --hog 2 --out /tmp/ul
    .venv/bin/python bench/under_load.py --runs 1 --hog 0 --only tests     # the quiet baseline
    .venv/bin/python bench/under_load.py --runs 2 --hog 2 --catalog-args browser/model-loading \
        --tests-args "tests/test_shard.py -k split"

``--tests-args`` and ``--catalog-args`` (one string each, split like a shell) go to every pytest
and every ``pitfalls run`` call: a selection, ``-k``...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
HOG_CODE = "while True:\n    pass\n"
PYTEST_SUMMARY = re.compile(r"=+ (?P<body>(?:\d+ \w+(?:, )?)+) in (?P<secs>[\d.]+)s")


@dataclass
class RunFigures:
    """One run of the tests or the catalog."""

    kind: str  # "tests" | "catalog"
    index: int
    hog: int
    exit_code: int
    wall_seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    flips: list[str] = field(default_factory=list)  # against the first run of the same kind
    log: str = ""

    def line(self) -> str:
        counts = ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items())) or "no counts (see the log)"
        flips = f"{len(self.flips)} flip(s)" + (f": {'; '.join(self.flips[:5])}" if self.flips else "")
        return (f"{self.kind} run {self.index}: {counts}; exit code {self.exit_code}; {flips} against run 1; "
                f"{self.wall_seconds:.0f} s wall, {self.hog} busy process(es) beside it; log {self.log}")


# --------------------------------------------------------------------------------------------
# the hog


def start_hog(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` busy loops, each in its own process group (ended by :func:`stop_hog`)."""
    return [subprocess.Popen([sys.executable, "-c", HOG_CODE], start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def stop_hog(hogs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in hogs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --------------------------------------------------------------------------------------------
# reading what a run left


def pytest_counts(log: str) -> dict[str, int]:
    """``{"passed": 817, "failed": 1, ...}`` from pytest's last summary line."""
    found = PYTEST_SUMMARY.findall(log)
    if not found:
        return {}
    body = found[-1][0]
    return {what: int(n) for n, what in re.findall(r"(\d+) (\w+)", body)}


def junit_outcomes(path: Path) -> dict[str, str]:
    """Test id -> passed/failed/error/skipped from a JUnit XML file (empty when there is none)."""
    if not path.is_file():
        return {}
    outcomes: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[name] = kinds[0] if kinds else "passed"
    return outcomes


def outcome_flips(first: dict[str, str], now: dict[str, str]) -> list[str]:
    """``id: a -> b`` for every id whose outcome differs (a missing side counts as ``absent``)."""
    return [f"{key}: {first.get(key, 'absent')} -> {now.get(key, 'absent')}"
            for key in sorted(set(first) | set(now)) if first.get(key) != now.get(key)]


def catalog_flips(first: Path, now: Path) -> list[str]:
    """Outcome changes between two results files, by :func:`harness.diff.diff_results`."""
    from harness.diff import diff_results
    from harness.results import load_results

    if not now.is_file():
        return [f"no results file {now}"]
    if not first.is_file():
        return [f"no results file {first} to compare with"]
    changes = diff_results(load_results(first), load_results(now))
    return [f"{c.scenario} [{c.target}/{c.variant}]: {c.old} -> {c.new}" for c in changes
            if c.kind in ("outcome", "applicability", "added", "removed")]


def catalog_counts(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(Counter(str(r.get("outcome")) for r in data.get("records", [])))


# --------------------------------------------------------------------------------------------
# the runs


def commands(kind: str, via: str, checkout: Path, python: Path, workers: str, out: Path, index: int,
             extra: Sequence[str], typecheck: bool = True) -> list[list[str]]:
    """The command(s) one run executes, in order (a failing one stops the run)."""
    junit, results = out / f"tests-{index}.xml", out / f"catalog-{index}.json"
    if kind == "tests":
        pytest_args = ["--junitxml", str(junit), *extra]
        if via == "run.sh":
            return [[str(checkout / "run.sh"), "test", *pytest_args]]
        return [[str(python), "-m", "harness.typecheck"]] * typecheck + \
            [[str(python), "-m", "pytest", "-n", workers, "--durations=15", *pytest_args]]
    run_args = ["--results", str(results), *extra]
    if via == "run.sh":
        return [[str(checkout / "run.sh"), "catalog", *run_args]]
    return [[str(python), "-m", "harness", "run", "-n", workers, *run_args]]


def one_run(kind: str, index: int, args: argparse.Namespace, out: Path) -> RunFigures:
    log = out / f"{kind}-{index}.log"
    env = dict(os.environ)
    if args.via == "python":
        env["PYTHONPATH"] = str(args.checkout)
    env["PITFALLS_WORKERS"] = args.workers
    started = time.monotonic()
    exit_code = 0
    with log.open("w", encoding="utf-8") as sink:
        extra = shlex.split(args.tests_args if kind == "tests" else args.catalog_args)
        for argv in commands(kind, args.via, args.checkout, args.python, args.workers, out, index, extra,
                             typecheck=not args.no_typecheck):
            sink.write(f"$ {' '.join(argv)}\n")
            sink.flush()
            exit_code = subprocess.run(argv, cwd=args.checkout, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL).returncode
            if exit_code != 0:
                break
    wall = time.monotonic() - started
    text = log.read_text(encoding="utf-8", errors="replace")
    if kind == "tests":
        counts = pytest_counts(text)
        flips = outcome_flips(junit_outcomes(out / "tests-1.xml"), junit_outcomes(out / f"tests-{index}.xml"))
    else:
        counts = catalog_counts(out / f"catalog-{index}.json")
        flips = catalog_flips(out / "catalog-1.json", out / f"catalog-{index}.json")
    return RunFigures(kind, index, args.hog, exit_code, round(wall, 1), counts, flips, str(log))


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3, help="runs of each kind (default 3)")
    p.add_argument("--hog", type=int, default=2, help="busy processes beside the runs (default 2; 0 for none)")
    p.add_argument("--only", choices=("tests", "catalog"), help="run only the tests or only the catalog")
    p.add_argument("--catalog-first", action="store_true", help="the catalog runs before the tests")
    p.add_argument("--via", choices=("run.sh", "python"), default="run.sh",
                   help="./run.sh test|catalog (a clean clone), or python -m with PYTHONPATH=CHECKOUT (a worktree)")
    p.add_argument("--checkout", type=Path, default=REPO_ROOT, help="the checkout to run (default: this one)")
    p.add_argument("--python", type=Path, help="interpreter for --via python (default CHECKOUT/.venv/bin/python)")
    p.add_argument("--workers", default="2", help="pytest-xdist workers, as PITFALLS_WORKERS (default 2)")
    p.add_argument("--out", type=Path, default=Path("/tmp/pitfalls-under-load"), help="logs, JUnit and results files")
    p.add_argument("--no-typecheck", action="store_true",
                   help="--via python: run pytest only (e.g. a selection of tests; ./run.sh always type-checks)")
    p.add_argument("--json", type=Path, help="write every run's figures here")
    p.add_argument("--tests-args", default="", metavar="ARGS", help="more arguments for every pytest call")
    p.add_argument("--catalog-args", default="", metavar="ARGS",
                   help="more arguments for every pitfalls run call (e.g. a selection)")
    args = p.parse_args(argv)
    if args.runs < 1 or args.hog < 0:
        p.error("--runs must be 1 or more and --hog 0 or more")
    args.checkout = args.checkout.resolve()
    if not (args.checkout / "run.sh").is_file():
        p.error(f"--checkout {args.checkout} has no run.sh; give the root of a pitfalls checkout")
    args.python = (args.python or args.checkout / ".venv" / "bin" / "python").absolute()
    if args.via == "python" and not args.python.exists():
        p.error(f"--via python needs an interpreter with the harness's packages; {args.python} does not exist "
                "(run ./run.sh setup, or give --python)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if str(args.checkout) not in sys.path:
        sys.path.insert(0, str(args.checkout))  # harness.diff and harness.results for the flips
    args.out.mkdir(parents=True, exist_ok=True)
    kinds = [args.only] if args.only else ["catalog", "tests"] if args.catalog_first else ["tests", "catalog"]
    print(f"under load: {args.runs} run(s) of {' and '.join(kinds)} in {args.checkout} via {args.via}, "
          f"{args.hog} busy process(es) beside them, {os.cpu_count()} cores; logs in {args.out}", flush=True)
    figures: list[RunFigures] = []
    signal.signal(signal.SIGTERM, _interrupted)  # a CI timeout's SIGTERM still ends the busy processes
    hogs = start_hog(args.hog)
    try:
        for kind in kinds:
            for index in range(1, args.runs + 1):
                figures.append(one_run(kind, index, args, args.out))
                print(figures[-1].line(), flush=True)
                if args.json:
                    args.json.write_text(json.dumps([asdict(f) for f in figures], indent=1) + "\n")
    finally:
        stop_hog(hogs)
    green = all(f.exit_code == 0 and not f.flips for f in figures)
    for kind in kinds:
        runs = [f for f in figures if f.kind == kind]
        print(f"{kind}: {sum(f.exit_code == 0 for f in runs)} of {len(runs)} run(s) green, "
              f"{sum(len(f.flips) for f in runs)} outcome flip(s), wall "
              f"{', '.join(f'{f.wall_seconds:.0f}' for f in runs)} s", flush=True)
    return 0 if green else 1


if __name__ == "__main__":
    sys.exit(main())
