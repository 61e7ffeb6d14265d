"""``pitfalls matrix``: run the catalog (or a selection) once per cell of a version matrix.

Three phases, so that bad input costs nothing and writes nothing:

1. **check**: every cell not excluded is resolved by uv (:func:`harness.matrix.env.resolve`) and
   its npm version looked up; a version that does not exist, an unknown package or cell is a
   one-line :class:`UsageError` before anything is written.  A cell uv cannot resolve is
   *infeasible* (uv's text is its reason): that is a finding, not a failure.
2. **set up** each feasible cell: its venv from the lock (cached, reused), the npm package a target
   declares (``harness.targets.TargetInfo.npm_package``, with its bundle), then
   ``python -m harness.prebuild`` inside it (each target's images and root file systems for the
   cell's versions), with the set-up time printed.
3. **run**: ``python -m harness run`` inside the cell's venv, the checkout's harness on its
   ``PYTHONPATH``, its lines prefixed with the cell's name; the results file
   ``cells/<name>.json`` records the cell (``environment.cell``: name, versions, lock digest).

``<out>/matrix.json`` (:mod:`harness.matrix.record`) is rewritten after every cell, so an
interrupted matrix still says which cells ran; a cell's old results file is removed before the
cell runs, so a stale file never stands in for a fresh result.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence, TextIO

from harness.errors import SetupError, UsageError
from harness.matrix import env as cellenv
from harness.matrix.record import SCHEMA, CellRecord, MatrixRun, write_matrix
from harness.matrix.spec import NONE, Cell, Matrix, packages
from harness.paths import REPO_ROOT

CELL_TIMEOUT_S = 3 * 3600.0  # one cell's run; a cold full catalog takes minutes
PREBUILD_TIMEOUT_S = 1800.0


def heading() -> tuple[str, ...]:
    """The versions heading a cell's column: the common packages around every target's."""
    common = ("tensorflow", "keras", "tf-keras", "tensorflow-decision-forests", "numpy", "serving-tf")
    return ("tensorflow", "keras", "tf-keras", *(p for p in packages() if p not in common), "numpy", "serving-tf")


def npm_package() -> str:
    """The npm package a cell may set (a target's, with its bundle); "" when no target has one."""
    return next((p for p, kind in packages().items() if kind == "npm"), "")


@dataclass
class Planned:
    """A cell after the check phase."""

    cell: Cell
    resolution: cellenv.Resolution | None = None
    record: CellRecord | None = None  # set when the cell does not run (excluded, infeasible)
    extra: dict[str, object] = field(default_factory=dict)


def column_versions(cell: Cell, resolution: cellenv.Resolution, npm_version: str) -> dict[str, str]:
    """The versions heading the cell's column: what was resolved (``none`` for a package left out)."""
    found = resolution.versions()
    out: dict[str, str] = {}
    for name in heading():
        if name == npm_package():
            out[name] = npm_version
        elif name == "serving-tf":
            out[name] = cell.requested.get("serving-tf", found.get("tensorflow", NONE))
        else:
            out[name] = found.get(name, NONE)
    return out


def check(matrix: Matrix, *, scratch: Path, say: Callable[[str], None]) -> list[Planned]:
    """Phase 1: resolve every cell; raise UsageError on bad input before anything is written."""
    planned: list[Planned] = []
    npm_checked: dict[str, bool] = {}
    for cell in matrix.cells:
        if cell.excluded:
            planned.append(Planned(cell, record=_record(cell, "not-run", reason=f"excluded: {cell.excluded}")))
            say(f"{cell.name}: excluded ({cell.excluded})")
            continue
        package = npm_package()
        npm = cell.packages.get(package, NONE)
        if npm not in (NONE, cellenv.checkout_npm_version(package)):
            if npm not in npm_checked:
                npm_checked[npm] = cellenv.npm_version_exists(package, npm)
            if not npm_checked[npm]:
                raise UsageError(f"cell {cell.name!r}: {package} {npm} does not exist on the npm registry; "
                                 f"pick a released version (`npm view {package} versions`)")
        resolution = cellenv.resolve(cell, scratch=scratch)
        if resolution.feasible:
            say(f"{cell.name}: resolved in {resolution.seconds:.1f}s "
                f"(tensorflow {resolution.versions().get('tensorflow')}, {len(resolution.versions())} packages)")
            planned.append(Planned(cell, resolution))
        else:
            last = [line.strip() for line in resolution.reason.splitlines() if line.strip()][-1:]
            say(f"{cell.name}: infeasible: {' '.join(last)[:300]}")
            planned.append(Planned(cell, resolution, record=_record(cell, "infeasible", reason=resolution.reason)))
    return planned


def _record(cell: Cell, status: str, *, versions: dict[str, str] | None = None, results: str | None = None,
            lock: str | None = None, reason: str = "", setup_seconds: float = 0.0,
            run_seconds: float = 0.0, notes: dict[str, object] | None = None) -> CellRecord:
    extra: dict[str, object] = dict(notes or {})
    if cell.compare:
        extra["compare"] = cell.compare
    if cell.targets:
        extra["targets"] = list(cell.targets)
    if cell.note:
        extra["note"] = cell.note
    return CellRecord(name=cell.name, status=status, requested=cell.requested, versions=versions or {},
                      results=results, lock=lock, reason=reason, setup_seconds=round(setup_seconds, 1),
                      run_seconds=round(run_seconds, 1), extra=extra)


def _stream(proc: subprocess.Popen[str], prefix: str, out: TextIO, log: TextIO) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        out.write(f"{prefix}{line}")
        out.flush()


def _run_logged(cmd: Sequence[str], *, env: dict[str, str], prefix: str, log_path: Path, timeout: float,
                out: TextIO) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        proc = subprocess.Popen(list(cmd), cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        reader = threading.Thread(target=_stream, args=(proc, prefix, out, log), daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(timeout=5)
            raise SetupError(f"{cmd[2:4]} did not finish in {timeout:.0f} s", evidence=str(log_path),
                             hint="raise --cell-timeout, or run fewer scenarios per cell") from None
        except KeyboardInterrupt:
            # Ctrl-C reaches the child too; a SIGTERM sent to this process alone does not: pass it on
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)  # `pitfalls run` and pytest tear their targets down
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        reader.join(timeout=5)
        return proc.returncode


def run_cell(planned: Planned, *, out_dir: Path, selection: Sequence[str], workers: str | None,
             cell_timeout: float, out: TextIO) -> CellRecord:
    """Set up and run one feasible cell; a broken set-up or run is a ``failed`` record, never a raise."""
    cell, resolution = planned.cell, planned.resolution
    assert resolution is not None and resolution.feasible
    cells_dir = out_dir / "cells"
    results_rel, lock_rel = f"cells/{cell.name}.json", f"cells/{cell.name}.lock"
    results, log = out_dir / results_rel, cells_dir / f"{cell.name}.log"
    lock_path = out_dir / lock_rel
    lock_path.write_text(resolution.lock or "", encoding="utf-8")
    prefix = f"[{cell.name}] "
    started = time.perf_counter()
    versions: dict[str, str] = {}
    try:
        venv, built = cellenv.ensure_venv(resolution, log=log)
        out.write(f"{prefix}venv {'built' if built else 'reused'}: {venv} ({time.perf_counter() - started:.0f}s)\n")
        package = npm_package()
        npm = cell.packages.get(package, NONE)
        node_modules, npm_built = (None, False) if npm == NONE else cellenv.ensure_npm(package, npm, log=log)
        if npm_built:
            out.write(f"{prefix}{package} {npm} installed: {node_modules}\n")
        versions = column_versions(cell, resolution, cellenv.installed_npm_version(package, node_modules)
                                   if npm != NONE else NONE)
        identity = json.dumps({"name": cell.name, "versions": versions, "lock_digest": resolution.digest()})
        env = cellenv.cell_environment(node_modules=node_modules, serving_tf=versions["serving-tf"], cell_json=identity)
        python = str(cellenv.venv_python(venv))
        rc = _run_logged([python, "-m", "harness.prebuild"], env=env, prefix=prefix, log_path=log,
                         timeout=PREBUILD_TIMEOUT_S, out=out)
        if rc != 0:  # the scenarios that need the piece that failed record their own set-up error
            planned.extra["prebuild"] = f"failed (exit {rc}); see {log}"
            out.write(f"{prefix}warning: the prebuild failed (exit {rc}); the cell runs, and the scenarios that "
                      f"need what failed will say so\n")
    except SetupError as exc:
        return _record(cell, "failed", versions=versions, lock=lock_rel, reason=str(exc),
                       setup_seconds=time.perf_counter() - started)
    setup_seconds = time.perf_counter() - started
    out.write(f"{prefix}set up in {setup_seconds:.0f}s\n")
    results.unlink(missing_ok=True)
    cmd = [python, "-m", "harness", "run", "--results", str(results), "--report-dir", str(cells_dir / cell.name),
           *(["-n", workers] if workers else []), *[a for t in cell.targets for a in ("--target", t)],
           *(cell.selection or selection)]
    ran = time.perf_counter()
    try:
        rc = _run_logged(cmd, env=env, prefix=prefix, log_path=log, timeout=cell_timeout, out=out)
    except SetupError as exc:
        return _record(cell, "failed", versions=versions, lock=lock_rel, reason=str(exc),
                       setup_seconds=setup_seconds, run_seconds=time.perf_counter() - ran)
    run_seconds = time.perf_counter() - ran
    if not results.exists():
        return _record(cell, "failed", versions=versions, lock=lock_rel, setup_seconds=setup_seconds,
                       run_seconds=run_seconds, reason=f"`pitfalls run` exited {rc} and wrote no results; {_tail(log)}")
    out.write(f"{prefix}ran in {run_seconds:.0f}s (exit {rc})\n")
    return _record(cell, "ran", versions=versions, results=results_rel, lock=lock_rel,
                   setup_seconds=setup_seconds, run_seconds=run_seconds, notes=planned.extra)


def _tail(path: Path, lines: int = 12) -> str:
    from harness.environments.build import tail

    try:
        return tail(path.read_text(encoding="utf-8", errors="replace"), lines)
    except OSError:
        return ""


def run_matrix(matrix: Matrix, *, out_dir: Path, selection: Sequence[str] = (), workers: str | None = None,
               cell_timeout: float = CELL_TIMEOUT_S, out: TextIO = sys.stdout) -> MatrixRun:
    """All three phases; returns the matrix run written to ``<out_dir>/matrix.json``.

    A Ctrl-C, or a SIGTERM (which ``pitfalls``'s ``main`` turns into KeyboardInterrupt for every
    command), is passed on to the cell's run by :func:`_run_logged`.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a directory such as results/matrix")

    def say(text: str) -> None:
        out.write(f"matrix: {text}\n")
        out.flush()

    chosen = tuple(selection) or matrix.selection
    say(f"{len(matrix.cells)} cell(s) from {matrix.path}; checking each with uv")
    scratch = cellenv.matrix_dir() / "resolve"
    planned = check(matrix, scratch=scratch, say=say)
    # from here on files are written
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "cells").glob("*.json"):
        stale.unlink()
    created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    records = [p.record or _record(p.cell, "not-run", reason="not run yet") for p in planned]

    def save() -> MatrixRun:
        run = MatrixRun(schema=SCHEMA, created=created, matrix_file=str(matrix.path),
                        selection=list(chosen), cells=list(records), extra={})
        write_matrix(out_dir / "matrix.json", run)
        return run

    save()
    feasible = [i for i, p in enumerate(planned) if p.record is None]
    started = time.perf_counter()
    for n, i in enumerate(feasible, 1):
        say(f"cell {n}/{len(feasible)}: {planned[i].cell.name}")
        records[i] = run_cell(planned[i], out_dir=out_dir, selection=chosen, workers=workers,
                              cell_timeout=cell_timeout, out=out)
        r = records[i]
        say(f"{r.name}: {r.status} (set-up {r.setup_seconds:.0f}s, run {r.run_seconds:.0f}s)"
            + (f": {r.reason.splitlines()[0][:300]}" if r.status == "failed" else ""))
        save()
    run = save()
    say(f"done in {time.perf_counter() - started:.0f}s: "
        + ", ".join(f"{s} {sum(1 for c in run.cells if c.status == s)}"
                    for s in ("ran", "infeasible", "failed", "not-run") if any(c.status == s for c in run.cells)))
    return run


def combine_runs(parts: Sequence[Path], *, out_dir: Path, matrix: Matrix) -> MatrixRun:
    """Join matrix runs of some cells each (one CI job per cell) into one run in the file's cell order.

    Every part must come from the same matrix file name and selection; a cell that ran (or was
    found infeasible or failed) in two parts is refused, and a cell of the file no part has is
    listed as not run.  The parts' results and lock files are copied under ``out_dir/cells``.
    Bad input is a UsageError before anything is written.
    """
    from harness.matrix.record import load_matrix

    if out_dir.resolve() in {p.resolve() for p in parts}:
        raise UsageError(f"--out {out_dir} is one of the parts; combine into a new directory")
    loaded = [(p, load_matrix(p / "matrix.json" if p.is_dir() else p)) for p in parts]
    first = loaded[0][1]
    found: dict[str, tuple[Path, CellRecord]] = {}
    for path, run in loaded:
        if Path(run.matrix_file).name != Path(first.matrix_file).name or run.selection != first.selection:
            raise UsageError(f"{path}: a run of {run.matrix_file} {run.selection} cannot join one of "
                             f"{first.matrix_file} {first.selection} (same matrix file and selection only)")
        for cell in run.cells:
            if cell.status == "not-run":
                continue
            if cell.name in found:
                raise UsageError(f"cell {cell.name!r} is in both {found[cell.name][0]} and {path}; give each cell once")
            found[cell.name] = (path if path.is_dir() else path.parent, cell)
    unknown = sorted(set(found) - set(matrix.names()))
    if unknown:
        raise UsageError(f"cell {unknown[0]!r} of the parts is not in {matrix.path}; combine with the matrix "
                         "file the parts ran")
    (out_dir / "cells").mkdir(parents=True, exist_ok=True)
    cells: list[CellRecord] = []
    for planned in matrix.cells:
        if planned.name not in found:
            cells.append(_record(planned, "not-run", reason="in none of the combined parts"))
            continue
        base, cell = found[planned.name]
        for rel in (cell.results, cell.lock):
            if rel:
                shutil.copyfile(base / rel, out_dir / rel)
        cells.append(cell)
    run = MatrixRun(schema=SCHEMA, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    matrix_file=first.matrix_file, selection=list(first.selection), cells=cells,
                    extra={"combined_from": [str(p) for p in parts]})
    write_matrix(out_dir / "matrix.json", run)
    return run
