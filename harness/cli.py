"""The ``pitfalls`` command line: list, run, explain, report and diff.

A thin layer over pytest (``run`` starts ``python -m pytest`` in a subprocess) and over the results
file (``report``, ``diff``, ``explain``).  It never imports a heavy library itself.  Bad input gets
one line on stderr and exit code 2 (:class:`harness.errors.UsageError`), and nothing is written.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NoReturn, Sequence, TextIO

from harness.errors import UsageError
from harness.registry import KNOWN_TARGETS, load_scenario, scenario_files, scenario_id_for, scenario_root
from harness.paths import REPO_ROOT
from harness.scenario import VARIANTS, Scenario

DEFAULT_RESULTS = REPO_ROOT / "results" / "latest.json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors become one-line usage errors (exit code 2 via :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# --------------------------------------------------------------------------------------------
# Loading the catalog


@dataclass
class Catalog:
    scenarios: list[Scenario] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "path: why it cannot be loaded"
    files: dict[str, Path] = field(default_factory=dict)  # id -> file, including broken ones


def load_catalog(root: Path | None = None) -> Catalog:
    """Every scenario of the tree; a file that cannot be loaded is reported, not fatal."""
    root = root or scenario_root()
    catalog = Catalog()
    if not root.is_dir():
        raise UsageError(f"scenario directory not found: {root} (set PITFALLS_SCENARIOS or run from the repository)")
    for path in scenario_files(root):
        catalog.files[scenario_id_for(path, root)] = path
        try:
            catalog.scenarios.append(load_scenario(path, root))
        except Exception as exc:  # noqa: BLE001 - a broken file must not hide the others
            catalog.problems.append(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return catalog


def find_in_catalog(catalog: Catalog, scenario_id: str) -> Scenario:
    wanted = _normalise_selection(scenario_id)
    for s in catalog.scenarios:
        if s.id == wanted:
            return s
    if wanted in catalog.files:
        problem = next((p for p in catalog.problems if p.startswith(str(catalog.files[wanted]))), "")
        raise UsageError(f"scenario {wanted!r} cannot be loaded: {problem}")
    near = [s.id for s in catalog.scenarios if s.id.startswith(wanted + "/") or wanted.startswith(s.taxonomy)]
    hint = f"; did you mean {near[0]}?" if near else ""
    raise UsageError(f"unknown scenario id {scenario_id!r}: run `pitfalls list` for the ids{hint}")


def target_availability() -> dict[str, str | None]:
    """None for a target whose runtime can run here, else the exact reason it cannot."""
    from harness.targets import target_class

    found: dict[str, str | None] = {}
    for name in KNOWN_TARGETS:
        try:
            found[name] = target_class(name).unavailable_reason()
        except Exception as exc:  # noqa: BLE001 - a target module that cannot even import
            found[name] = f"target module cannot be imported: {exc}"
    return found


def _warn_problems(catalog: Catalog) -> None:
    for problem in catalog.problems:
        print(f"pitfalls: warning: skipped a scenario file that cannot be loaded: {problem}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# list


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


def _normalise_selection(text: str) -> str:
    sel = text.strip().replace("\\", "/").strip("/")
    for prefix in ("scenarios/",):
        if sel.startswith(prefix):
            sel = sel[len(prefix):]
    return sel[:-3] if sel.endswith(".py") else sel


def select_files(catalog: Catalog, selections: Sequence[str], targets: Sequence[str]) -> list[Path]:
    """The scenario files a selection names (platform, taxonomy prefix or scenario id)."""
    from harness.taxonomy import challenge_ids

    chosen: dict[str, Path] = {}
    for raw in selections or [""]:
        sel = _normalise_selection(raw)
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


def _display(nodeid: str) -> str:
    path, _, name = nodeid.partition("::")
    path = path.replace("\\", "/")
    if "scenarios/" in path:
        path = path.split("scenarios/", 1)[1]
    return f"{path[:-3] if path.endswith('.py') else path} {name}".strip()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Follows the events of ``harness.progress`` and shows what runs, how far along, how long."""

    def __init__(self, events: Path, out: TextIO, live: bool) -> None:
        self.events, self.out, self.live = events, out, live
        self.offset = 0
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}
        self.labels: dict[str, str] = {}
        self.started = time.monotonic()
        self.last_heartbeat = self.started
        self.failed = 0

    def poll(self) -> None:
        if self.events.exists():
            with self.events.open(encoding="utf-8") as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self.offset += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                try:
                    self._event(json.loads(line))
                except (json.JSONDecodeError, KeyError):
                    continue
        self._status()

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "total":
            self.total = max(self.total, int(event["count"]))
        elif kind == "start":
            self.running[event["nodeid"]] = time.monotonic()
            self.labels[event["nodeid"]] = event.get("label") or _display(event["nodeid"])
        elif kind == "done":
            started = self.running.pop(event["nodeid"], None)
            took = f" ({time.monotonic() - started:.1f} s)" if started else ""
            self.done += 1
            outcome = event.get("outcome", "")
            self.failed += outcome == "failed"
            mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "xfailed": "gap "}.get(outcome, outcome)
            label = event.get("label") or self.labels.get(event["nodeid"]) or _display(event["nodeid"])
            self._line(f"[{self.done}/{self.total or '?'}] {mark} {label}{took}")

    def _line(self, text: str) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(text + "\n")
        self.out.flush()

    def _status(self) -> None:
        now = time.monotonic()
        current = ", ".join(f"{self.labels.get(n, n)} {now - t:.0f} s" for n, t in list(self.running.items())[-2:])
        status = f"{_clock(now - self.started)}  {self.done}/{self.total or '?'} done" + (
            f"  running: {current}" if current else "")
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns
            self.out.write("\r\x1b[K" + status[: width - 1])
            self.out.flush()
        elif now - self.last_heartbeat >= 30:
            self.last_heartbeat = now
            self._line(status)

    def finish(self) -> None:
        self.poll()
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()


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
    from harness import report
    from harness.results import load_results

    if args.workers is not None and args.workers < 0:
        raise UsageError(f"-n must be 0 or more, not {args.workers}")
    catalog = load_catalog()
    files = select_files(catalog, args.selection, args.target or [])
    results = Path(args.results).resolve() if args.results else DEFAULT_RESULTS
    report_dir = Path(args.report_dir).resolve() if args.report_dir else results.parent
    if results.exists() and results.is_dir():
        raise UsageError(f"--results {results} is a directory; give a file path such as results/latest.json")
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
                    proc.wait(timeout=60)  # pytest got the SIGINT too and tears its targets down
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
    data = load_results(results)
    for line in _collection_errors(log):
        print(f"pitfalls: a scenario file could not be collected: {line}", file=sys.stderr)
    if progress.total and len(data["records"]) < progress.total:
        print(f"pitfalls: warning: {progress.total} variants were collected but only {len(data['records'])} "
              f"recorded; see {log}", file=sys.stderr)
        rc = rc or 1
    html_path = report_dir / "report.html"
    html_path.write_text(report.render_html(data, catalog.scenarios), encoding="utf-8")
    _print_run_summary(data)
    print(f"results: {results}\nreport:  {html_path}\njunit:   {report_dir / 'junit.xml'}\nlog:     {log}")
    return 0 if rc == 0 else 1


def _print_run_summary(data: dict[str, Any]) -> None:
    summary = data.get("summary", {})
    print("variants: " + ", ".join(f"{k} {v}" for k, v in summary.items() if v))
    for r in data["records"]:
        if r["outcome"] in ("not-reproduced", "broken", "error"):
            known = " (known gap)" if r["verdict"].endswith("(a known gap, xfail)") else ""
            print(f"  {r['outcome']}{known}: {r['scenario']} {r['variant']}[{r['target']}]: {r['verdict'][:300]}")


# --------------------------------------------------------------------------------------------
# explain


@dataclass(frozen=True)
class VariantCode:
    """The code a student compares: each variant with what only it uses, and what both share."""

    faulty: str
    fixed: str
    shared: str = ""


def _module_definitions(module_source: str) -> dict[str, ast.stmt]:
    defs: dict[str, ast.stmt] = {}
    for node in ast.parse(module_source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name) and target.id != "SCENARIO":
                    defs[target.id] = node
    return defs


def _reachable(name: str, defs: dict[str, ast.stmt]) -> set[str]:
    """Module-level names a definition uses, following the functions it calls."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        node = defs.get(todo.pop())
        if node is None:
            continue
        for used in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(defs):
            if used not in seen and used != name:
                seen.add(used)
                if isinstance(defs[used], (ast.FunctionDef, ast.AsyncFunctionDef)):
                    todo.append(used)
    return seen


def _is_code(node: ast.stmt) -> bool:
    """A function, a class, or a string constant (e.g. JavaScript run in the page)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    value = getattr(node, "value", None)
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def variant_code(scenario: Scenario) -> VariantCode:
    """The real source of the two variant functions, each preceded by the module-level definitions
    only it uses (e.g. ``FAULTY_JS``), plus the helpers both use (where a flag may hide the fix)."""
    fns = {v: scenario.variant(v) for v in VARIANTS}
    try:
        own = {v: textwrap.dedent(inspect.getsource(fn)).rstrip() for v, fn in fns.items()}
        module_source = inspect.getsource(inspect.getmodule(fns["faulty"]))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return VariantCode(*(f"# the source of {getattr(fn, '__name__', fn)!r} is not available"
                             for fn in fns.values()))
    defs = _module_definitions(module_source)
    names = {v: getattr(fn, "__name__", "") for v, fn in fns.items()}
    reach = {v: _reachable(names[v], defs) - set(names.values()) for v in VARIANTS}

    def source_of(selected: set[str]) -> list[str]:
        return [ast.get_source_segment(module_source, defs[n]) or "" for n in defs if n in selected]

    faulty_only, fixed_only = reach["faulty"] - reach["fixed"], reach["fixed"] - reach["faulty"]
    shared = {n for n in reach["faulty"] & reach["fixed"] if _is_code(defs[n])}
    return VariantCode("\n\n".join(source_of(faulty_only) + [own["faulty"]]),
                       "\n\n".join(source_of(fixed_only) + [own["fixed"]]),
                       "\n\n".join(source_of(shared)))


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


def _observed_lines(scenario: Scenario, results_path: Path, explicit: bool) -> list[str]:
    from harness.results import load_results

    if not results_path.exists() and not explicit:
        return [f"no results file yet ({results_path}); run `pitfalls run {scenario.id}` to observe it"]
    data = load_results(results_path)
    mine = [r for r in data["records"] if r["scenario"] == scenario.id]
    if not mine:
        return [f"{results_path} has no record of this scenario; run `pitfalls run {scenario.id}`"]
    lines = [f"from {results_path} ({data.get('created', '?')}):"]
    for r in sorted(mine, key=lambda r: (r["target"], r["variant"] != "faulty")):
        ev = r["evidence"]
        lines.append(f"  [{r['target']}] {r['variant']}: {r['outcome']} — {r['verdict'][:400]}")
        if ev.get("error"):
            err = ev["error"]
            lines.append(f"      error: {err.get('kind', '')}: {err.get('message', '')[:600]}")
            if err.get("runtime") or err.get("source"):
                lines.append(f"      from:  {err.get('runtime', '')} {err.get('source', '')}".rstrip())
        if ev.get("figures"):
            lines.append("      figures: " + ", ".join(f"{k} = {v:.6g}" for k, v in ev["figures"].items()))
    return lines


def cmd_explain(args: argparse.Namespace) -> int:
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
           + (f" · known gap: {scenario.known_gap}" if scenario.known_gap else ""),
           heading(f"The challenge: {node.id}"), para(node.note[:1].upper() + node.note[1:] + "." if node.note else ""),
           heading("Cause"), para(scenario.cause),
           heading("Faulty and fixed code"),
           f"symptom (faulty): {scenario.symptom.describe()}\nremedy (fixed):   {scenario.remedy.describe()}\n"]
    code = variant_code(scenario)
    layout = args.layout if args.layout != "auto" else ("side" if width >= 100 else "stacked")
    if layout == "side":
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
    from harness.results import load_results

    path = Path(args.results) if args.results else DEFAULT_RESULTS
    data = load_results(path)
    out_dir = Path(args.out) if args.out else path.parent
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory")
    try:
        scenarios = load_catalog().scenarios
    except UsageError:
        scenarios = []  # a results file from elsewhere renders without titles
    for written in report.write_reports(data, out_dir, scenarios):
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
    p.add_argument("-n", dest="workers", type=int, metavar="N", help="pytest-xdist workers (default: none)")
    p.add_argument("--target", action="append", choices=list(KNOWN_TARGETS), help="only this target (repeatable)")
    p.add_argument("--variant", choices=VARIANTS, help="only this variant")
    p.add_argument("-k", dest="keyword", metavar="EXPR", help="pytest keyword expression")
    p.add_argument("--results", metavar="PATH", help=f"results file (default {os.path.relpath(DEFAULT_RESULTS, REPO_ROOT)})")
    p.add_argument("--report-dir", metavar="DIR", help="where report.html, junit.xml and pytest.log go "
                   "(default: the results file's directory)")
    p.set_defaults(func=cmd_run, pytest_args=[])

    p = sub.add_parser("explain", help="a scenario for students: challenge, cause, code, symptom, fix")
    p.add_argument("id", metavar="ID", help="scenario id, e.g. browser/model-loading/asynchronous-loading")
    p.add_argument("--results", metavar="PATH", help="results file to read the symptom from")
    p.add_argument("--layout", choices=("auto", "side", "stacked"), default="auto",
                   help="faulty and fixed code side by side or one after the other")
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

    p = sub.add_parser("cache", help="the artifact cache: sizes per kind, verify entries, clear them")
    p.add_argument("action", nargs="?", default="info", choices=("info", "verify", "clear"),
                   help="info (default): root, entries and size per kind; verify: check every entry's files "
                        "against its manifest (exit 1 if any is corrupt); clear: remove entries (every model "
                        "kind, or those named; environment kinds wheels, debootstrap, arm64 only when named)")
    p.add_argument("--kind", action="append", metavar="K", help="only this kind (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_cache)
    return parser


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
        return int(args.func(args))
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
