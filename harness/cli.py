"""The ``pitfalls`` command line: list, run, explain, report, diff, check and cache — only the command line.

A thin layer over pytest (``run`` starts ``python -m pytest`` in a subprocess and follows it with
:class:`harness.progress.Progress`), over the catalog (:mod:`harness.registry`), the lessons
(:mod:`harness.lesson`) and the results file (:mod:`harness.results`, rendered by
:mod:`harness.report`, compared by :mod:`harness.diff`).  It never imports a heavy library itself.  Bad input gets
one line on stderr and exit code 2 (:class:`harness.errors.UsageError`), and nothing is written.
"""

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
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, Sequence

from harness.errors import UsageError
from harness.paths import DEFAULT_RESULTS, REPO_ROOT
from harness.registry import (KNOWN_TARGETS, Catalog, find_in_catalog, load_catalog, normalise_selection,
                              target_availability)
from harness.scenario import VARIANTS, Outcome, Scenario

if TYPE_CHECKING:
    from harness.results import RunResults

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors become one-line usage errors (exit code 2 via :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------------------------
# list


def _warn_problems(catalog: Catalog) -> None:
    for problem in catalog.problems:
        print(f"pitfalls: warning: skipped a scenario file that cannot be loaded: {problem}", file=sys.stderr)


def cmd_list(args: argparse.Namespace) -> int:
    from harness import report

    catalog = load_catalog()
    if args.update and not args.markdown:
        raise UsageError("--update FILE goes with --markdown (e.g. `pitfalls list --markdown --update README.md`)")
    if args.update:
        path = Path(args.update)
        if not path.is_file():
            raise UsageError(f"file not found: {path}")
        text = path.read_text(encoding="utf-8")
        if report.marked_block(text) is None:
            raise UsageError(f"{path} has no {report.CATALOG_START} … {report.CATALOG_END} markers; add them where the table goes")
    _warn_problems(catalog)
    if args.json:
        print(json.dumps(report.catalog_json(catalog.scenarios), indent=1))
    elif args.markdown:
        table = report.catalog_markdown(catalog.scenarios)
        if args.update:
            path = Path(args.update)
            path.write_text(report.replace_marked_block(path.read_text(encoding="utf-8"), table), encoding="utf-8")
            print(f"updated the catalog table in {path}")
        else:
            sys.stdout.write(table)
    else:
        print(report.catalog_tree(catalog.scenarios, target_availability()))
    return 1 if catalog.problems else 0


# --------------------------------------------------------------------------------------------
# run


def select_files(catalog: Catalog, selections: Sequence[str], targets: Sequence[str]) -> list[Path]:
    """The scenario files a selection names (platform, taxonomy prefix or scenario id)."""
    from harness.taxonomy import challenge_ids

    chosen: dict[str, Path] = {}
    for raw in selections or [""]:
        sel = normalise_selection(raw)
        hits = {sid: p for sid, p in catalog.files.items() if not sel or sid == sel or sid.startswith(sel + "/")}
        if not hits:
            if any(c == sel or c.startswith(sel + "/") for c in challenge_ids()):
                raise UsageError(f"no scenario covers {raw!r} yet (the challenge exists; `pitfalls list` shows what does)")
            raise UsageError(f"unknown selection {raw!r}: give a platform (server, mobile, browser), a taxonomy "
                             "prefix such as browser/model-loading, or a scenario id (see `pitfalls list`)")
        chosen.update(hits)
    if targets:
        by_id = {s.id: s for s in catalog.scenarios}
        chosen = {sid: p for sid, p in chosen.items() if sid not in by_id or set(by_id[sid].targets) & set(targets)}
        if not chosen:
            raise UsageError(f"no selected scenario runs on {', '.join(targets)} (see `pitfalls list`)")
    return [chosen[sid] for sid in sorted(chosen)]


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


def cmd_run(args: argparse.Namespace) -> int:
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
    results = Path(args.results).resolve() if args.results else DEFAULT_RESULTS
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
    """``cmd_run`` once this run holds its results file and report directory (two runs never share them)."""
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


# --------------------------------------------------------------------------------------------
# explain


def _highlight(code: str, colour: bool) -> list[str]:
    if colour:
        try:
            from pygments import highlight
            from pygments.formatters import TerminalFormatter
            from pygments.lexers import PythonLexer

            return highlight(code, PythonLexer(), TerminalFormatter()).rstrip("\n").split("\n")
        except ImportError:
            pass
    return code.split("\n")


def _hard_wrap(code: str, width: int) -> str:
    out = []
    for line in code.split("\n"):
        while len(line) > width:
            out.append(line[:width])
            line = "  " + line[width:]
        out.append(line)
    return "\n".join(out)


def side_by_side(left: str, right: str, width: int, colour: bool, titles: tuple[str, str]) -> str:
    col = max((width - 3) // 2, 20)
    lhs = _highlight(_hard_wrap(left, col), colour)
    rhs = _highlight(_hard_wrap(right, col), colour)
    lines = [titles[0].ljust(col) + " │ " + titles[1], "─" * col + "─┼─" + "─" * col]
    for i in range(max(len(lhs), len(rhs))):
        a = lhs[i] if i < len(lhs) else ""
        b = rhs[i] if i < len(rhs) else ""
        lines.append(a + " " * (col - len(ANSI.sub("", a))) + " │ " + b)
    return "\n".join(lines)


def unified_diff_view(faulty: str, fixed: str, colour: bool) -> str:
    """The faulty → fixed change as a unified diff (difflib), red/green/cyan in a terminal."""
    from harness.site import unified_diff

    text = unified_diff(faulty, fixed, context=1000)  # the whole code: a lesson reads better with all of it
    if not colour:
        return text
    paint = {"+": "\x1b[32m", "-": "\x1b[31m", "@": "\x1b[36m"}
    return "\n".join(f"{paint[line[0]]}{line}\x1b[0m" if line[:1] in paint and not line.startswith(("+++", "---"))
                     else (f"\x1b[1m{line}\x1b[0m" if line.startswith(("+++", "---")) else line)
                     for line in text.split("\n"))


def _observed_lines(scenario: Scenario, results_path: Path, explicit: bool) -> list[str]:
    from harness.report import outcome_label
    from harness.results import load_run

    if not results_path.exists() and not explicit:
        return [f"no results file yet ({results_path}); run `pitfalls run {scenario.id}` to observe it"]
    run = load_run(results_path)
    mine = [r for r in run.records if r.scenario == scenario.id]
    if not mine:
        return [f"{results_path} has no record of this scenario; run `pitfalls run {scenario.id}`"]
    lines = [f"from {results_path} ({run.created}):"]
    for r in sorted(mine, key=lambda r: (r.target, r.variant != "faulty")):
        ev = r.evidence
        lines.append(f"  [{r.target}] {r.variant}: {outcome_label(r.outcome)} — {r.verdict[:400]}")
        if ev.error:
            err = ev.error
            lines.append(f"      error: {err.kind}: {err.message[:600]}")
            if err.runtime or err.source:
                lines.append(f"      from:  {err.runtime} {err.source}".rstrip())
        if ev.figures:
            lines.append("      figures: " + ", ".join(f"{k} = {v:.6g}" for k, v in ev.figures.items()))
    return lines


def cmd_explain(args: argparse.Namespace) -> int:
    from harness.lesson import variant_code
    from harness.taxonomy import challenge

    catalog = load_catalog()
    scenario = find_in_catalog(catalog, args.id)
    explicit = args.results is not None
    results = Path(args.results) if explicit else DEFAULT_RESULTS
    observed = _observed_lines(scenario, results, explicit)  # validates the file before printing anything
    tty = sys.stdout.isatty()
    width = args.width or shutil.get_terminal_size((120, 40)).columns
    node = challenge(scenario.taxonomy)

    def heading(text: str) -> str:
        return f"\n\x1b[1m{text}\x1b[0m" if tty else f"\n== {text} =="

    def para(text: str) -> str:
        return textwrap.fill(" ".join(text.split()), width=min(width, 100)) if text else "(not written)"

    out = [f"\x1b[1m{scenario.title}\x1b[0m" if tty else scenario.title,
           f"{scenario.id} · targets: {', '.join(scenario.targets)}"
           + (f" · known gap: {scenario.known_gap}" if scenario.known_gap else "")
           + (f" · versions: {scenario.describe_ranges()}" if scenario.describe_ranges() else ""),
           heading(f"The challenge: {node.id}"), para(node.note[:1].upper() + node.note[1:] + "." if node.note else ""),
           heading("Cause"), para(scenario.cause),
           heading("Faulty and fixed code"),
           f"symptom (faulty): {scenario.symptom.describe()}\nremedy (fixed):   {scenario.remedy.describe()}\n"]
    code = variant_code(scenario)
    layout = args.layout if args.layout != "auto" else ("side" if width >= 100 else "stacked")
    if layout == "diff":
        out.append(unified_diff_view(code.faulty, code.fixed, tty))
    elif layout == "side":
        out.append(side_by_side(code.faulty, code.fixed, width, tty, ("faulty", "fixed")))
    else:
        out += ["--- faulty ---", "\n".join(_highlight(code.faulty, tty)),
                "--- fixed ---", "\n".join(_highlight(code.fixed, tty))]
    if code.shared:
        out += ["", "--- used by both variants ---", "\n".join(_highlight(code.shared, tty))]
    out += [heading("Symptom last observed"), *observed, heading("Fix"), para(scenario.fix),
            heading("References"), *(f"  {u}" for u in scenario.references or ("(none given)",))]
    print("\n".join(out))
    return 0


# --------------------------------------------------------------------------------------------
# report and diff


def cmd_report(args: argparse.Namespace) -> int:
    from harness import report
    from harness.results import load_run

    path = Path(args.results) if args.results else DEFAULT_RESULTS
    run = load_run(path)
    out_dir = Path(args.out) if args.out else path.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory")
    try:
        scenarios = load_catalog().scenarios
    except UsageError:
        scenarios = []  # a results file from elsewhere renders without titles
    for written in report.write_reports(run, out_dir, scenarios):
        print(f"wrote {written}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
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


def cmd_merge(args: argparse.Namespace) -> int:
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


# --------------------------------------------------------------------------------------------
# check


def _workers(text: str) -> int:
    """``-n N`` or ``-n auto`` (one per core, as many as fit in memory)."""
    if text == "auto":
        from harness.shard import default_workers

        return default_workers()
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-n takes a number or `auto`, not {text!r}") from None


def _split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def cmd_check(args: argparse.Namespace) -> int:
    from harness.check import check
    from harness.check.render import summary, write_report_dir
    from harness.check.run import DEFAULT_PROFILES

    report_dir = Path(args.report_dir) if args.report_dir else None
    if report_dir is not None and report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} is a file; give a directory")
    report = check(args.model, targets=_split_list(args.targets) or None, inputs=args.inputs,
                   profiles=_split_list(args.profile) or DEFAULT_PROFILES, imports=tuple(args.imports or ()),
                   progress=None if args.quiet else (lambda m: print(f"check: {m}", file=sys.stderr, flush=True)))
    if report_dir is not None:
        for path in write_report_dir(report, report_dir):
            print(f"check: wrote {path}", file=sys.stderr)
    print(json.dumps(report.to_json(), indent=1, default=str) if args.json else summary(report))
    return report.exit_code()


# --------------------------------------------------------------------------------------------
# cache


def cmd_cache(args: argparse.Namespace) -> int:
    """``pitfalls cache [info|verify|clear] [--kind K ...] [--json]``: the artifact cache's entries."""
    from harness.artifacts import ENVIRONMENT_KINDS, ArtifactCache, CacheEntry

    def human(n: float) -> str:
        for unit in ("B", "KB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
            n /= 1000
        return f"{n:.1f} GB"

    def per_kind(entries: list[CacheEntry]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for e in entries:
            k = found.setdefault(e.kind, {"cache": e.cache, "entries": 0, "bytes": 0, "problems": 0})
            k["entries"] += 1
            k["bytes"] += e.bytes
            k["problems"] += not e.ok
        return found

    cache = ArtifactCache()
    known = sorted(set(cache.kinds()) | set(ENVIRONMENT_KINDS))
    for kind in args.kind or []:
        if kind not in known:
            raise UsageError(f"unknown cache kind {kind!r}: kinds here are {', '.join(known)} "
                             "(see `pitfalls cache info`)")
    kinds: list[str] | None = list(dict.fromkeys(args.kind)) if args.kind else None
    roots = {"model_cache": str(cache.root), "environment_cache": str(cache.environment_root)}
    selected: list[str | None] = list(kinds) if kinds else [None]  # None: every kind
    if args.action == "clear":
        removed = cache.clear(kinds)
        if args.json:
            print(json.dumps({**roots, "removed": [e.to_json() for e in removed],
                              "bytes": sum(e.bytes for e in removed)}, indent=1))
        else:
            what = ", ".join(f"{k} {v['entries']}" for k, v in per_kind(removed).items())
            print(f"removed {len(removed)} entries ({human(sum(e.bytes for e in removed))})"
                  + (f": {what}" if what else "") + f" from {cache.root}"
                  + (f" and {cache.environment_root}" if any(e.cache == "environment" for e in removed) else ""))
            if kinds is None:
                print("environment kinds (" + ", ".join(ENVIRONMENT_KINDS) + ") are cleared only when named "
                      "with --kind")
        return 0
    if args.action == "verify":
        entries = [e for k in selected for e in cache.verify(k)]
        bad = [e for e in entries if not e.ok]
        if args.json:
            print(json.dumps({**roots, "verified": len(entries), "corrupt": [e.to_json() for e in bad]}, indent=1))
        else:
            for e in bad:
                print(f"unusable: {e.kind}/{e.name}: {e.problem}")
            print(f"verified {len(entries)} entries ({human(sum(e.bytes for e in entries))}) in {cache.root}: "
                  + (f"{len(bad)} unusable (corrupt or from an older layout; each is rebuilt on its next use, "
                     "`pitfalls cache clear` removes them)" if bad else "all intact")
                  + "; environment kinds are not verified")
        return 1 if bad else 0
    entries = [e for k in selected for e in cache.entries(k)]
    summary = per_kind(entries)
    if args.json:
        print(json.dumps({**roots, "kinds": summary, "entries": [e.to_json() for e in entries]}, indent=1))
        return 0
    for label, root, where in (("model cache", cache.root, "model"),
                               ("environment cache", cache.environment_root, "environment")):
        mine = {k: v for k, v in summary.items() if v["cache"] == where}
        total = sum(v["bytes"] for v in mine.values())
        print(f"{label}: {root} ({sum(v['entries'] for v in mine.values())} entries, {human(total)})")
        for k, v in sorted(mine.items()):
            flag = f", {v['problems']} unusable (see `pitfalls cache verify`)" if v["problems"] else ""
            print(f"  {k:<24} {v['entries']:>5} entries  {human(v['bytes']):>9}{flag}")
    return 0


# --------------------------------------------------------------------------------------------
# site


def cmd_site(args: argparse.Namespace) -> int:
    from harness import site
    from harness.results import load_run

    out = Path(args.out)
    site.check_out_dir(out)
    explicit = args.results is not None
    results_path = Path(args.results) if explicit else DEFAULT_RESULTS
    run = load_run(results_path) if explicit or results_path.exists() else None
    catalog = load_catalog()
    _warn_problems(catalog)
    files = site.build_site(catalog.scenarios, run, str(results_path) if run else "")
    site.write_site(out, files)
    pages = sum(1 for rel in files if rel.startswith("scenarios/"))
    print(f"wrote the lesson site: {pages} lessons{f' with outcomes from {results_path}' if run else ''} "
          f"to {out}/ (open {out / 'index.html'})")
    return 0


def cmd_matrix(args: argparse.Namespace) -> int:
    from harness.errors import SetupError
    from harness.matrix import spec

    if args.workers is not None and args.workers < 0:
        raise UsageError(f"-n must be 0 or more, not {args.workers}")
    if args.cell_timeout is not None and args.cell_timeout <= 0:
        raise UsageError(f"--cell-timeout must be a number of seconds above 0, not {args.cell_timeout:g}")
    rest = list(args.selection)
    matrix_file = spec.DEFAULT_MATRIX
    if rest and rest[0].endswith(".toml"):
        matrix_file = Path(rest.pop(0))
    out = Path(args.out).resolve()
    if args.report_only:
        if rest or args.cells or args.combine:
            raise UsageError("--report-only renders an existing matrix run: it takes no selection, --cells or --combine")
        return _matrix_report(out)
    matrix = spec.parse_matrix(matrix_file)
    if args.combine:
        if rest or args.cells:
            raise UsageError("--combine joins finished runs: it takes the matrix file but no selection and no --cells")
        from harness.matrix.run import combine_runs

        combine_runs([Path(p) for p in args.combine], out_dir=out, matrix=matrix)
        return _matrix_report(out)
    if args.cells:
        matrix = matrix.pick(_split_list(args.cells))
    select_files(load_catalog(), rest or list(matrix.selection), [])  # an unknown selection is bad input here
    from harness.matrix.run import CELL_TIMEOUT_S, run_matrix

    try:
        run_matrix(matrix, out_dir=out, selection=rest, workers=str(args.workers) if args.workers else None,
                   cell_timeout=CELL_TIMEOUT_S if args.cell_timeout is None else args.cell_timeout)
    except SetupError as exc:
        print(f"pitfalls: {exc}", file=sys.stderr)
        return 1
    return _matrix_report(out)


def _matrix_report(out: Path) -> int:
    from harness.matrix import report

    matrix_json = out / "matrix.json"
    built = report.build_report(matrix_json)
    print(report.render_terminal(built))
    html, data = out / "matrix.html", out / "matrix-report.json"
    report.write_html(built, html)
    from harness.results import write_text_atomically

    summary = report.report_json(built)
    write_text_atomically(data, json.dumps(summary, indent=2) + "\n")
    print(f"matrix: {matrix_json}\nreport: {html}\njson:   {data}")
    failed = [c.name for c in built.run.cells if c.status == "failed"]
    if failed:
        print(f"pitfalls: cell(s) whose set-up or run broke: {', '.join(failed)} (reasons above and in "
              f"{matrix_json})", file=sys.stderr)
    # infeasible cells are findings, not failures; a regression between neighbours or a broken cell is
    return 1 if failed or summary["summary"]["regressions"] else 0


# --------------------------------------------------------------------------------------------
# parser and entry point


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="pitfalls", description="Reproduce deep-learning deployment challenges "
                            "(Chen et al., ESEC/FSE 2020) as faulty/fixed scenarios on real runtimes.",
                            epilog="`pitfalls run SELECTION -- PYTEST_ARGS` passes the options after `--` to pytest.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True

    p = sub.add_parser("list", help="the catalog by taxonomy, with targets and their availability here")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the catalog as JSON")
    fmt.add_argument("--markdown", action="store_true", help="print the README's catalog table")
    p.add_argument("--update", metavar="FILE", help="with --markdown: replace the table between the "
                   "catalog markers in FILE (e.g. README.md)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run scenarios through pytest; write the results file and reports")
    p.add_argument("selection", nargs="*", metavar="SELECTION",
                   help="platform, taxonomy prefix or scenario id (default: every scenario)")
    p.add_argument("-n", dest="workers", type=_workers, metavar="N|auto",
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
    p.set_defaults(func=cmd_run, pytest_args=[], shard_environment=None)

    p = sub.add_parser("explain", help="a scenario for students: challenge, cause, code, symptom, fix")
    p.add_argument("id", metavar="ID", help="scenario id, e.g. browser/model-loading/asynchronous-loading")
    p.add_argument("--results", metavar="PATH", help="results file to read the symptom from")
    p.add_argument("--layout", choices=("auto", "side", "stacked", "diff"), default="auto",
                   help="faulty and fixed code side by side, one after the other, or as a unified diff "
                        "(faulty → fixed)")
    p.add_argument("--width", type=int, help="output width (default: the terminal's)")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("report", help="render report.html and junit.xml from a results file")
    p.add_argument("results", nargs="?", metavar="RESULTS", help="results file (default results/latest.json)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: the results file's directory)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("diff", help="what changed between two results files; exit 1 on regressions")
    p.add_argument("old", metavar="OLD")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--json", action="store_true", help="print the changes as JSON")
    p.add_argument("--threshold", type=float, default=1900.0, metavar="PCT",
                   help="noise band of timing figures without repeats: a move beyond (1 + PCT/100) times "
                        "counts (default 1900, a factor 20); other figures are judged by class (see harness.diff)")
    p.set_defaults(func=cmd_diff)

    p = sub.add_parser("check", help="pre-flight of your own model on every target: findings, parity, "
                       "the layer where outputs diverge; exit 1 when a target has a blocker")
    p.add_argument("model", metavar="MODEL", help="a .keras file, an .h5 file or a SavedModel directory")
    p.add_argument("--targets", metavar="LIST", help="comma-separated targets (default: all: "
                   + ",".join(KNOWN_TARGETS) + ")")
    p.add_argument("--inputs", metavar="FILE.npz", help="sample inputs keyed by input name "
                   "(default: synthesised from the signature; see docs/check-schema.md)")
    p.add_argument("--profile", metavar="LIST", help="LiteRT device profiles (default host,low-end,arm64; "
                   "arm64 is parity only, under qemu, and is left out where it cannot run)")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import MODULE first (it registers the model's custom layers); repeatable")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema pitfalls-check/1)")
    p.add_argument("--report-dir", metavar="DIR", help="write check.json and check.html there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("cache", help="the artifact cache: sizes per kind, verify entries, clear them")
    p.add_argument("action", nargs="?", default="info", choices=("info", "verify", "clear"),
                   help="info (default): root, entries and size per kind; verify: check every entry's files "
                        "against its manifest (exit 1 if any is corrupt); clear: remove entries (every model "
                        "kind, or those named; environment kinds wheels, debootstrap, arm64 only when named)")
    p.add_argument("--kind", action="append", metavar="K", help="only this kind (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_cache)

    p = sub.add_parser("site", help="the lesson site for students: a static site with every scenario's faulty "
                       "and fixed code, the evidence, search by error text")
    p.add_argument("--out", required=True, metavar="DIR", help="where the site goes (a new or empty directory, "
                   "or an earlier site, which is replaced)")
    p.add_argument("--results", metavar="FILE", help="results file for the outcomes and evidence (default "
                   f"{os.path.relpath(DEFAULT_RESULTS, REPO_ROOT)} when it exists)")
    p.set_defaults(func=cmd_site)

    p = sub.add_parser("matrix", help="the catalog across versions: one uv environment per cell of a matrix "
                       "file, then a scenario x cell report of what changed between neighbouring cells")
    p.add_argument("selection", nargs="*", metavar="[FILE.toml] SELECTION",
                   help="the matrix file (default matrix.toml at the checkout's root), then what each cell runs "
                        "as `pitfalls run` takes it (default: the file's selection, else every scenario)")
    p.add_argument("-n", dest="workers", type=_workers, metavar="N|auto", help="pytest-xdist workers in each cell")
    p.add_argument("--cells", metavar="A,B", help="run only these cells (comma-separated names)")
    p.add_argument("--out", default=str(REPO_ROOT / "results" / "matrix"), metavar="DIR",
                   help="where matrix.json, each cell's results and the report go (default results/matrix)")
    p.add_argument("--cell-timeout", type=float, metavar="S",
                   help="stop a cell's run after S seconds (default 10800: harness.matrix.run.CELL_TIMEOUT_S)")
    p.add_argument("--report-only", action="store_true", help="only render the report of the matrix run in --out")
    p.add_argument("--combine", nargs="+", metavar="DIR", help="join the matrix runs in these directories (e.g. "
                   "one CI job per cell, `--cells NAME`) into --out, in the matrix file's cell order, and report")
    p.set_defaults(func=cmd_matrix)

    p = sub.add_parser("merge", help="join results files (the shards of a run) into one results file; "
                       "refuses different environments, duplicate records and missing shards")
    p.add_argument("inputs", nargs="+", metavar="RESULTS", help="results files, e.g. every shard's")
    p.add_argument("--out", required=True, metavar="PATH", help="the merged results file to write")
    p.add_argument("--allow-different-environments", action="store_true",
                   help="merge files whose package or Python versions differ (each file's are kept in "
                        "environment.merged_from)")
    p.set_defaults(func=cmd_merge)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:  # `pitfalls run SELECTION -- -x --maxfail 2`: the rest goes to pytest
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    try:
        args = parser.parse_args(argv)
        if extra:
            if args.command != "run":
                raise UsageError(f"`--` passes options to pytest and only goes with `run`, not `{args.command}`")
            args.pytest_args = extra
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # a CI job's SIGTERM
        try:                                                                              # tears down as Ctrl-C does
            return int(args.func(args))
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except UsageError as exc:
        print(f"pitfalls: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
