"""``pitfalls run``: scenarios through pytest in a subprocess, followed with :class:`harness.progress.Progress`;
then the results file, report.html, junit.xml and pytest.log."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from harness.commands.common import default_results, select_files, worker_count
from harness.errors import UsageError
from harness.paths import DEFAULT_RESULTS, REPO_ROOT
from harness.registry import KNOWN_TARGETS, load_catalog
from harness.scenario import VARIANTS, Outcome

if TYPE_CHECKING:
    from harness.results import RunResults

NAME = "run"
HELP = "run scenarios through pytest; write the results file and reports"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("selection", nargs="*", metavar="SELECTION",
                   help="platform, taxonomy prefix or scenario id (default: every scenario)")
    p.add_argument("-n", dest="workers", type=worker_count, metavar="N|auto",
                   help="pytest-xdist workers; `auto`: as many as this machine's cores and memory take "
                        "(harness.shard.default_workers; default: none)")
    p.add_argument("--target", action="append", choices=list(KNOWN_TARGETS), help="only this target (repeatable)")
    p.add_argument("--variant", choices=VARIANTS, help="only this variant")
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest keyword expression")
    p.add_argument("--results", metavar="PATH", help=f"results file (default {os.path.relpath(DEFAULT_RESULTS, REPO_ROOT)})")
    p.add_argument("--report-dir", metavar="DIR", help="where report.html, junit.xml and pytest.log go "
                   "(default: the results file's directory)")
    p.add_argument("--shard", metavar="K/N", help="run only shard K of N (1-based): the selected scenario files "
                   "split deterministically, every variant of a file in one shard (see docs/cli.md)")
    p.add_argument("--durations", metavar="FILE", help="with --shard: balance the shards by the per-file "
                   "seconds of this previous results file (default: a stable hash split)")
    p.set_defaults(pytest_args=[], shard_environment=None)


def _pytest_command(files: Sequence[Path], args: argparse.Namespace, results: Path, junit: Path) -> list[str]:
    # a scenario file that cannot be imported must not stop the others: it is reported and fails the run
    cmd = [sys.executable, "-m", "pytest", "-p", "harness.progress", "-q", "--color=no",
           "--continue-on-collection-errors", "--pitfalls-results", str(results), "--junitxml", str(junit)]
    if args.workers is not None:
        cmd += ["-n", str(args.workers)]
    for t in args.target or []:
        cmd += ["--pitfalls-target", t]
    if args.variant:
        cmd += ["--pitfalls-variant", args.variant]
    if args.keyword:
        cmd += ["-k", args.keyword]
    if getattr(args, "shard_environment", None):
        cmd += ["--pitfalls-shard", json.dumps(args.shard_environment)]
    cmd += [os.path.relpath(p, REPO_ROOT) if p.is_relative_to(REPO_ROOT) else str(p) for p in files]
    return cmd + list(args.pytest_args or [])


def _first_error_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    return next((ln.strip() for ln in lines if ln.startswith(("ERROR:", "E "))), lines[-1] if lines else "")


def _internal_error_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    errors = [ln.split(">", 1)[1].strip(" E") for ln in lines
              if ln.startswith("INTERNALERROR>") and re.search(r"\w+(Error|Exception)\b.*:", ln)]
    causes = [e for e in errors if not e.startswith("AssertionError")] or errors  # xdist wraps the cause
    return causes[-1].strip() if causes else "(no message)"


def _collection_errors(log: Path) -> list[str]:
    """pytest's "ERROR <file> - <reason>" summary lines: scenario files that could not be collected."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.exists() else []
    found: dict[str, str] = {}
    for ln in lines:
        if ln.startswith("ERROR ") and "::" not in ln.split(" - ")[0]:
            path, _, reason = ln[len("ERROR "):].partition(" - ")
            found[path] = found.get(path) or reason
    return [f"{path}: {reason}".rstrip(": ") for path, reason in found.items()]


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 0:
        raise UsageError(f"-n must be 0 or more, not {args.workers}")
    shard = durations = None
    if args.shard is not None or args.durations is not None:
        from harness import shard as sharding

        if args.shard is None:
            raise UsageError("--durations FILE goes with --shard K/N (e.g. `pitfalls run --shard 1/3 --durations "
                             "results/latest.json`)")
        shard = sharding.parse_shard(args.shard)
        durations = sharding.load_durations(Path(args.durations)) if args.durations is not None else None
    catalog = load_catalog()
    files = select_files(catalog, args.selection, args.target or [])
    results = Path(args.results).resolve() if args.results else default_results(args)
    report_dir = Path(args.report_dir).resolve() if args.report_dir else results.parent
    if results.exists() and results.is_dir():
        raise UsageError(f"--results {results} is a directory; give a file path such as results/latest.json")
    from harness.environments.ownership import OutputsBusy, claim_outputs

    try:
        with claim_outputs([results, report_dir], f"`pitfalls run` writing {results}"):
            return _run_claimed(args, catalog, files, results, report_dir, shard, durations)
    except OutputsBusy as exc:
        raise UsageError(f"{exc}; wait for that run to end, or give this one its own --results PATH "
                         "(and --report-dir DIR)") from None


def _run_claimed(args: argparse.Namespace, catalog: Any, files: list[Path], results: Path, report_dir: Path,
                 shard: Any, durations: Any) -> int:
    """``run`` once this run holds its results file and report directory (two runs never share them)."""
    from harness import report
    from harness import shard as sharding
    from harness.progress import Progress
    from harness.results import load_run, write_text_atomically

    if shard is not None:
        ids = {p: sid for sid, p in catalog.files.items()}
        the_split = sharding.split([ids[p] for p in files], shard.count, durations)
        args.shard_environment = sharding.shard_environment(
            shard, the_split, Path(args.durations).resolve() if args.durations is not None else None)
        mine = set(args.shard_environment["files"])
        expected = args.shard_environment["expected_seconds"]
        print(f"shard {shard}: {len(mine)} of {len(files)} scenario file(s), split "
              + (f"by the durations in {args.durations} (expected {expected:.0f} s)" if the_split.strategy == "durations"
                 else "by hash (no durations known)"), flush=True)
        files = [p for p in files if ids[p] in mine]
        if not files:
            from harness import report
            from harness.results import RunResults, environment, write_run

            env = dict(environment(), shard=args.shard_environment)
            empty = RunResults.build([], env)
            write_run(results, empty)
            write_text_atomically(report_dir / "report.html", report.render_html(empty, catalog.scenarios))
            print(f"shard {shard} has no scenario file (more shards than files); wrote an empty results file\n"
                  f"results: {results}")
            return 0
    log = report_dir / "pytest.log"
    with tempfile.TemporaryDirectory(prefix="pitfalls-cli-") as tmp:
        # pytest's output and JUnit file stay in the temporary directory until the run is known to be
        # valid: a selection that matches nothing writes nothing
        events, junit, tmp_log = Path(tmp) / "events.jsonl", Path(tmp) / "junit.xml", Path(tmp) / "pytest.log"
        cmd = _pytest_command(files, args, results, junit)
        env = dict(os.environ, PITFALLS_PROGRESS=str(events), COLUMNS="240")  # untruncated summary lines
        started = time.time()
        print(f"running {len(files)} scenario file(s) with pytest"
              f"{f' on {args.workers} workers' if args.workers else ''}; full output: {log}", flush=True)
        progress = Progress(events, sys.stdout, live=sys.stdout.isatty())
        with tmp_log.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                while proc.poll() is None:
                    progress.poll()
                    time.sleep(0.25)
            except KeyboardInterrupt:
                try:
                    proc.wait(timeout=5)  # a Ctrl-C reached pytest too; a SIGTERM sent to us alone did not
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=60)  # pytest tears its targets down
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                progress.finish()
                report_dir.mkdir(parents=True, exist_ok=True)
                shutil.move(str(tmp_log), log)
                print(f"interrupted; pytest's output is in {log}", file=sys.stderr)
                return 130
        progress.finish()
        rc = proc.returncode
        if rc == 5:
            raise UsageError(f"no scenario matched the selection{f' and -k {args.keyword!r}' if args.keyword else ''}"
                             " (see `pitfalls list`)")
        if rc == 4:
            raise UsageError(f"pytest rejected the arguments: {_first_error_line(tmp_log)}")
        report_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp_log), log)
        if junit.exists():
            shutil.move(str(junit), report_dir / "junit.xml")
    if rc == 3 or "INTERNALERROR>" in log.read_text(encoding="utf-8", errors="replace"):
        print(f"pytest stopped with an internal error: {_internal_error_line(log)} (details in {log})", file=sys.stderr)
    if not results.exists() or results.stat().st_mtime < started - 1:
        print(f"pytest exited with code {rc} and wrote no results; last lines of {log}:", file=sys.stderr)
        print("\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]), file=sys.stderr)
        return 1
    run = load_run(results)
    for line in _collection_errors(log):
        print(f"pitfalls: a scenario file could not be collected: {line}", file=sys.stderr)
    if progress.total and len(run.records) < progress.total:
        print(f"pitfalls: warning: {progress.total} variants were collected but only {len(run.records)} "
              f"recorded; see {log}", file=sys.stderr)
        rc = rc or 1
    html_path = report_dir / "report.html"
    write_text_atomically(html_path, report.render_html(run, catalog.scenarios))
    _print_run_summary(run)
    print(f"results: {results}\nreport:  {html_path}\njunit:   {report_dir / 'junit.xml'}\nlog:     {log}")
    return 0 if rc == 0 else 1


def _print_run_summary(run: "RunResults") -> None:
    print("variants: " + ", ".join(f"{k} {v}" for k, v in run.summary.items() if v))
    for r in run.records:
        if r.outcome in (Outcome.NOT_REPRODUCED, Outcome.BROKEN, Outcome.ERROR):
            known = " (known gap)" if r.known_gap else ""
            print(f"  {r.outcome.value}{known}: {r.scenario} {r.variant}[{r.target}]: {r.verdict[:300]}")
