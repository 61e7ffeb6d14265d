"""The matrix report: scenario × cell, the outcome in each cell, the changes between neighbours.

Read from a matrix run file (:mod:`harness.matrix.record`) and the results file of each cell that
ran.  Rows are (scenario, target, variant) over all cells that ran; a cell shows the record's
outcome, or ``infeasible`` / ``failed`` when the cell did not resolve or broke, or ``—`` when it
did not run or holds no record of the row.  Each cell that ran is compared with its nearest left
neighbour that ran (the matrix file's order), or with the cell its ``compare`` names, and a change is one of :data:`CHANGE_KINDS`.

What counts as a change is :mod:`harness.diff`'s judgement, not a second one: error texts are
compared after :func:`harness.diff.normalise_text` (timestamps, paths, ports, ids are volatile),
figures through :func:`harness.diff.figure_moved` (its figure classes and noise rules: a timing
moves only beyond its noise band or when a bound of the expectation flips).  Wall times
(``seconds``) and other volatile fields are never compared.

Renderers: :func:`render_terminal` (a compact table of the changed rows and a summary),
:func:`write_html` (one self-contained file from ``matrix.html.j2`` of :mod:`harness.render`), and
:func:`report_json` (schema ``pitfalls-matrix-report/1``).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.diff import (NOT_APPLICABLE, PASSING, Change, _error_text, _repeats, figure_bounds, figure_class_in, figure_moved,
                          normalise_text)
from harness.errors import UsageError
from harness.matrix.record import FILE_NAME, CellRecord, MatrixRun, load_matrix, read_json
from harness.render import render
from harness.results import RunResults, write_text_atomically

REPORT_SCHEMA = "pitfalls-matrix-report/1"
NO_RECORD = "—"

#: (kind, what it means), in the order the legend and the summary list them.
CHANGE_KINDS: tuple[tuple[str, str], ...] = (
    ("symptom no longer reproduced", "the faulty variant reproduced its symptom in the left cell and not here"),
    ("symptom appears", "the faulty variant did not reproduce its symptom in the left cell and does here"),
    ("fixed variant now broken", "the fixed variant worked in the left cell and is broken here"),
    ("fixed again", "the fixed variant was broken in the left cell and works here"),
    ("new error wording", "same outcome, but the runtime's error text differs once its volatile parts are normalised"),
    ("ratio check flipped", "a figure satisfied a bound of the scenario's expectation on one side and not on the other"),
    ("parity moved", "a parity figure (a difference to the reference) moved by an order of magnitude or more"),
    ("figure moved", "another figure moved beyond what its class counts as noise (size, count, timing band)"),
    ("applicability", "the scenario's declared version range includes one cell and excludes the other"),
    ("outcome changed", "another change of outcome (an error, a skip)"),
    ("record appears", "the left cell has no record of this row, this cell has"),
    ("record missing", "the left cell has a record of this row, this cell has none"),
)
KIND_NAMES = tuple(k for k, _ in CHANGE_KINDS)
REGRESSIONS = ("symptom no longer reproduced", "fixed variant now broken")
IMPROVEMENTS = ("symptom appears", "fixed again")

Key = tuple[str, str, str]
Found = tuple[str, str, str, Any, Any]  # kind, severity, what, old, new


@dataclass(frozen=True)
class CellChange(Change):
    """One change of a row between a cell and its left neighbour that ran: a :class:`harness.diff.Change`
    whose ``kind`` is one of :data:`KIND_NAMES`, with the two cells' names."""

    cell: str
    against: str  # the left neighbour's name


@dataclass(frozen=True)
class Column:
    """A cell as a column of the report: its record in the matrix run and the left neighbour it is compared with."""

    cell: CellRecord
    against: str | None  # the nearest left cell that ran (None for the first that ran, or one that did not run)
    version_changes: dict[str, tuple[str | None, str | None]]  # versions that differ from `against`
    records: dict[Key, Mapping[str, Any]] | None  # None when the cell did not run

    @property
    def name(self) -> str:
        return self.cell.name


@dataclass(frozen=True)
class Row:
    scenario: str
    target: str
    variant: str
    shown: tuple[str, ...]  # per column: the outcome, infeasible, failed or —
    changes: tuple[CellChange, ...]

    @property
    def key(self) -> Key:
        return (self.scenario, self.target, self.variant)

    def changes_in(self, cell: str) -> list[CellChange]:
        return [c for c in self.changes if c.cell == cell]


@dataclass(frozen=True)
class MatrixReport:
    matrix_path: Path
    run: MatrixRun
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    changes: tuple[CellChange, ...] = ()

    @property
    def changed_rows(self) -> list[Row]:
        return [r for r in self.rows if r.changes]

    def summary(self) -> dict[str, int]:
        counts = Counter(c.kind for c in self.changes)
        return {k: counts[k] for k in KIND_NAMES if counts[k]}


# ---------------------------------------------------------------------------------- reading


def _cell_records(path: Path, cell: str) -> dict[Key, Mapping[str, Any]]:
    """A cell's results file, validated as :mod:`harness.results` does, as JSON-shaped records by key."""
    data = read_json(path, f"cell {cell!r}: results file", "re-run `pitfalls matrix` for that cell")
    try:
        run = RunResults.from_json(data)
    except ValueError as exc:
        raise UsageError(f"cell {cell!r}: results file {path}: {exc}") from None
    return {record.key: record.to_json() for record in run.records}


def _version_changes(left: Mapping[str, str], right: Mapping[str, str]) -> dict[str, tuple[str | None, str | None]]:
    return {k: (left.get(k), right.get(k)) for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k)}


# ---------------------------------------------------------------------------------- judging


def _outcome_change(variant: str, a: str, b: str) -> tuple[str, str, str]:
    """(kind, severity, what) of an outcome moving from ``a`` to ``b``."""
    if NOT_APPLICABLE in (a, b):
        what = "now outside the scenario's version range" if b == NOT_APPLICABLE else "now inside the scenario's version range"
        return "applicability", "changed", what
    if variant == "faulty" and a == "reproduced" and b == "not-reproduced":
        return "symptom no longer reproduced", "regression", "symptom no longer reproduced"
    if variant == "faulty" and a == "not-reproduced" and b == "reproduced":
        return "symptom appears", "improvement", "symptom appears"
    if variant == "fixed" and a == "works" and b == "broken":
        return "fixed variant now broken", "regression", "fixed variant now broken"
    if variant == "fixed" and a == "broken" and b == "works":
        return "fixed again", "improvement", "fixed variant works again"
    passing = PASSING
    severity = "regression" if a in passing and b not in (*passing, "skipped") else (
        "improvement" if b in passing else "changed")
    return "outcome changed", severity, f"outcome {a} -> {b}"


def compare_records(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Found]:
    """The changes of one row between two cells: (kind, severity, what, old, new), nothing volatile."""
    found: list[Found] = []
    a, b = str(old["outcome"]), str(new["outcome"])
    if a != b:
        kind, severity, what = _outcome_change(str(new["variant"]), a, b)
        found.append((kind, severity, what, a, b))
    else:
        ta, tb = _error_text(old), _error_text(new)
        if (ta or tb) and normalise_text(ta) != normalise_text(tb):
            found.append(("new error wording", "changed", "the runtime's error text differs", ta, tb))
    if NOT_APPLICABLE in (a, b):
        return found  # a variant that did not run has no figures to judge
    fo = (old.get("evidence") or {}).get("figures") or {}
    fn = (new.get("evidence") or {}).get("figures") or {}
    bounds_old, bounds_new = figure_bounds(old), figure_bounds(new)
    for name in sorted(set(fo) & set(fn)):
        x, y = float(fo[name]), float(fn[name])
        bounds = bounds_new.get(name) or bounds_old.get(name) or ()
        cls = figure_class_in(new, name)
        why = figure_moved(cls, x, y, bounds=bounds, repeats=(_repeats(old, name), _repeats(new, name)),
                           variant=str(new["variant"]))
        if why is None:
            continue
        if why in ("now violates its bound", "now satisfies its bound"):
            kind = "ratio check flipped"
            severity = "regression" if why == "now violates its bound" else "improvement"
            check = " and ".join(f"{name} {op} {bound:g}" for op, bound in bounds)
            what = f"{check}: held in the left cell, not here" if severity == "regression" else \
                f"{check}: did not hold in the left cell, holds here"
        else:
            kind = "parity moved" if cls == "parity" else "figure moved"
            severity = "changed"
            what = f"{name} {x:.4g} -> {y:.4g} ({cls}: {why})"
        found.append((kind, severity, what, x, y))
    return found


def _shown(column: Column, key: Key) -> str:
    status = column.cell.status
    if status in ("infeasible", "failed"):
        return status
    if column.records is None:
        return NO_RECORD
    record = column.records.get(key)
    return str(record["outcome"]) if record is not None else NO_RECORD




def _ran_target(cell: CellRecord, target: str) -> bool:
    """Whether the cell ran ``target`` at all: not when its ``targets`` leave it out, nor when the
    matrix file left the target's package out of the cell (``tensorflowjs = "none"``: it skips)."""
    targets = cell.extra.get("targets")
    if targets and target not in targets:
        return False
    from harness.targets import TARGET_INFO

    info = TARGET_INFO.get(target)
    package = info.matrix_packages[0] if info is not None and info.matrix_packages else ""
    return cell.requested.get(package, "") != "none"


def build_report(matrix_path: Path) -> MatrixReport:
    """The report of a matrix run (its ``matrix.json`` or the folder holding it)."""
    path = matrix_path / FILE_NAME if matrix_path.is_dir() else matrix_path
    run = load_matrix(path)
    base = path.parent
    columns: list[Column] = []
    left: CellRecord | None = None
    for cell in run.cells:
        records = None
        results = cell.results_path(base)
        if cell.status == "ran" and results is not None:
            records = _cell_records(results, cell.name)
        base_cell = left
        named = cell.extra.get("compare")  # the matrix file's `compare = "<cell>"` overrides the left neighbour
        if isinstance(named, str):
            base_cell = next((c.cell for c in columns if c.name == named and c.records is not None), None)
        against = base_cell.name if records is not None and base_cell is not None else None
        moved = _version_changes(base_cell.versions, cell.versions) if against and base_cell else {}
        columns.append(Column(cell, against, moved, records))
        if records is not None:
            left = cell
    keys = sorted({k for c in columns if c.records for k in c.records})
    rows: list[Row] = []
    everything: list[CellChange] = []
    by_name = {c.name: c for c in columns}
    for key in keys:
        shown = tuple(_shown(c, key) for c in columns)
        changes: list[CellChange] = []
        for col in columns:
            if col.records is None or col.against is None:
                continue
            prev = by_name[col.against].records or {}
            old, new = prev.get(key), col.records.get(key)
            if old is None and new is None:
                continue
            if not (_ran_target(col.cell, key[1]) and _ran_target(by_name[col.against].cell, key[1])):
                continue  # one of the two cells did not run this target (`targets = [...]`, or its package "none")
            if old is None or new is None:
                kind = "record appears" if old is None else "record missing"
                found: list[Found] = [(kind, "changed", kind, None if old is None else old["outcome"],
                                       None if new is None else new["outcome"])]
            else:
                found = compare_records(old, new)
            changes.extend(CellChange(*key, *f, cell=col.name, against=col.against) for f in found)
        rows.append(Row(*key, shown, tuple(changes)))
        everything.extend(changes)
    return MatrixReport(path, run, tuple(columns), tuple(rows), tuple(everything))


# ---------------------------------------------------------------------------------- JSON


def report_json(report: MatrixReport) -> dict[str, Any]:
    """The report as data, schema ``pitfalls-matrix-report/1``."""
    return {
        "schema": REPORT_SCHEMA,
        "matrix": str(report.matrix_path),
        "created": report.run.created,
        "matrix_file": report.run.matrix_file,
        "selection": list(report.run.selection),
        "cells": [{"name": c.name, "status": c.cell.status, "versions": dict(c.cell.versions),
                   "requested": dict(c.cell.requested), "reason": c.cell.reason, "results": c.cell.results,
                   "compared_with": c.against,
                   "version_changes": {k: list(v) for k, v in c.version_changes.items()}}
                  for c in report.columns],
        "rows": [{"scenario": r.scenario, "target": r.target, "variant": r.variant,
                  "outcomes": {c.name: s for c, s in zip(report.columns, r.shown)},
                  "changed": bool(r.changes)} for r in report.rows],
        "changes": [c.to_json() for c in report.changes],
        "summary": {"rows": len(report.rows), "changed_rows": len(report.changed_rows),
                    "kinds": report.summary(),
                    "regressions": sum(1 for c in report.changes if c.severity == "regression")},
    }


# ---------------------------------------------------------------------------------- terminal

_COLOURS = {"regression": "\033[31m", "improvement": "\033[32m", "changed": "\033[33m"}
_RESET = "\033[0m"
REASON_LINES = 12  # of an infeasible or failed cell's reason, wrapped; the rest is in matrix.json


def _versions_line(versions: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items()) or "(no versions recorded)"


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def render_terminal(report: MatrixReport, colour: bool = False, width: int = 100) -> str:
    """One line per cell (its versions, or why it did not run), one line per changed row, a summary."""
    lines = [f"matrix {report.matrix_path} ({report.run.created}), {len(report.columns)} cells, "
             f"{len(report.rows)} rows"]
    for i, col in enumerate(report.columns, 1):
        status = "" if col.cell.status == "ran" else f" [{col.cell.status}]"
        lines.append(f"  c{i} {col.name}{status}: {_versions_line(col.cell.versions)}")
        if col.version_changes:
            lines.append(f"     vs {col.against}: " + "; ".join(
                f"{k} {a or 'absent'} -> {b or 'absent'}" for k, (a, b) in col.version_changes.items()))
        if col.cell.status in ("infeasible", "failed") and col.cell.reason:
            reason = [part for text in col.cell.reason.strip().splitlines()
                      for part in textwrap.wrap(text, width, subsequent_indent="  ") or [""]]
            lines.extend(f"     | {text}" for text in reason[:REASON_LINES])
            if len(reason) > REASON_LINES:
                lines.append(f"     | … ({len(reason) - REASON_LINES} more lines in matrix.json)")
    changed = report.changed_rows
    lines.append("")
    if changed:
        head = ["scenario", "target", "variant", *(f"c{i}" for i in range(1, len(report.columns) + 1))]
        table = []
        for row in changed:
            marked = [s + ("*" if row.changes_in(col.name) else "") for col, s in zip(report.columns, row.shown)]
            table.append([row.scenario, row.target, row.variant, *marked])
        widths = [max(len(r[i]) for r in [head, *table]) for i in range(len(head))]
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
        for row, cells in zip(changed, table):
            lines.append("  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip())
            for ch in row.changes:
                text = f"    {ch.cell}: {ch.kind}" + ("" if ch.what == ch.kind else f" — {_clip(ch.what, width)}")
                lines.append(f"{_COLOURS[ch.severity]}{text}{_RESET}" if colour else text)
                if ch.kind == "new error wording":
                    lines.append(f"      was: {_clip(str(ch.old), width)}")
                    lines.append(f"      now: {_clip(str(ch.new), width)}")
        lines.append("* the cell changed against its left neighbour that ran")
    else:
        lines.append("no row changed between neighbouring cells")
    unchanged = len(report.rows) - len(changed)
    if unchanged:
        lines.append(f"{unchanged} unchanged row(s) not shown")
    summary = report.summary()
    regressions = sum(1 for c in report.changes if c.severity == "regression")
    lines.append(f"{len(report.changes)} change(s) in {len(changed)} row(s), {regressions} regression(s)"
                 + (": " + ", ".join(f"{k} {n}" for k, n in summary.items()) if summary else ""))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- HTML

def _cell_class(shown: str) -> str:
    if shown in ("infeasible", "failed"):
        return f"st-{shown}"
    if shown == NO_RECORD:
        return "st-norecord"
    return f"o-{shown}"


def _severity(changes: Sequence[CellChange]) -> str:
    severities = {c.severity for c in changes}
    return next(s for s in ("regression", "improvement", "changed") if s in severities)


@dataclass(frozen=True)
class ShownCell:
    """One cell of the HTML table: what it shows, its classes, its tooltip and the numbers of its changes."""

    column: str
    shown: str
    css_class: str
    title: str
    numbers: tuple[int, ...]


@dataclass(frozen=True)
class ShownRow:
    scenario: str
    target: str
    variant: str
    changed: bool
    cells: tuple[ShownCell, ...]


def shown_rows(report: MatrixReport) -> list[ShownRow]:
    """The table's rows as the page shows them (changes numbered as in the list below the table)."""
    numbers = {id(ch): n for n, ch in enumerate(report.changes, 1)}
    rows = []
    for row in report.rows:
        cells = []
        for col, shown in zip(report.columns, row.shown):
            mine = row.changes_in(col.name)
            css = f"cell {_cell_class(shown)}"
            title = ""
            if mine:
                css += f" changed sev-{_severity(mine)}"
                title = f"vs {col.against}: " + "; ".join(f"{c.kind}: {c.what}" if c.what != c.kind else c.kind
                                                          for c in mine)
            elif shown in ("infeasible", "failed"):
                title = _clip(col.cell.reason, 300)
            cells.append(ShownCell(col.name, shown, css, title, tuple(numbers[id(c)] for c in mine)))
        rows.append(ShownRow(row.scenario, row.target, row.variant, bool(row.changes), tuple(cells)))
    return rows


def render_html(report: MatrixReport) -> str:
    """The whole HTML report as one string (inline CSS, no script, no network)."""
    return render("matrix.html.j2", report=report, summary=report.summary(), rows=shown_rows(report),
                  kinds=CHANGE_KINDS)


def write_html(report: MatrixReport, path: Path) -> None:
    """Write the HTML report atomically (a temporary file renamed into place)."""
    write_text_atomically(path, render_html(report))
