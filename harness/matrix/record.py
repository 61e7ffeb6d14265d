"""The matrix run file ``<out>/matrix.json``, schema ``pitfalls-matrix/1`` (docs/results-schema.md).

One :class:`MatrixRun` per ``pitfalls matrix`` run: which matrix file, which selection, and one
:class:`CellRecord` per cell in the matrix file's order (the order is the neighbour order the
report compares in).  A cell's ``status`` says what became of it:

* ``ran``: its results file exists (``results``, relative to the matrix.json's folder);
* ``infeasible``: the resolver could not resolve the cell's versions (``reason`` is its own text);
* ``failed``: setting the cell up or running it broke (``reason`` is the error);
* ``not-run``: it was not attempted (the run stopped, or the cell was not selected).

``to_json()`` / ``from_json()`` are the codec; :func:`load_matrix` reads and validates a file (a
bad or missing one is a one-line :class:`~harness.errors.UsageError`); :func:`write_matrix` writes
atomically.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Mapping

from harness.errors import UsageError
from harness.results import decode_items, write_json_atomically

SCHEMA = "pitfalls-matrix/1"
FILE_NAME = "matrix.json"
CELLS_DIR = "cells"
STATUSES = ("ran", "infeasible", "failed", "not-run")
CELL_FIELDS = ("name", "status", "requested", "versions", "results", "lock", "reason", "setup_seconds",
               "run_seconds")
RUN_FIELDS = ("schema", "created", "matrix_file", "selection", "cells")


def cell_results_name(name: str) -> str:
    """Where a cell's results file goes, relative to the matrix.json's folder."""
    return f"{CELLS_DIR}/{name}.json"


def cell_lock_name(name: str) -> str:
    """Where a cell's lock file (the resolved versions, exactly) goes, relative to the matrix.json's folder."""
    return f"{CELLS_DIR}/{name}.lock"


def _str_map(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError(f"{what} is not an object of texts")
    return dict(value)


def _relative(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} is not a path text or null")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} {value!r} is not a path inside the matrix folder")
    return value


def _seconds(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{what} is {value!r}, not a number of seconds")
    return float(value)


@dataclass(frozen=True)
class CellRecord:
    """What became of one cell: its requested and resolved versions, its files, its status and times."""

    name: str
    status: str
    requested: dict[str, str] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # resolved: what heads the report's column
    results: str | None = None  # relative to the matrix.json's folder, e.g. cells/<name>.json
    lock: str | None = None  # likewise, e.g. cells/<name>.lock
    reason: str = ""  # infeasible: the resolver's text; failed: the error
    setup_seconds: float = 0.0
    run_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer writer added, kept as read

    def results_path(self, base: Path) -> Path | None:
        """The results file as a path, ``base`` being the matrix.json's folder."""
        return base / self.results if self.results else None

    def lock_path(self, base: Path) -> Path | None:
        return base / self.lock if self.lock else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "requested": dict(self.requested),
                "versions": dict(self.versions), "results": self.results, "lock": self.lock,
                "reason": self.reason, "setup_seconds": self.setup_seconds, "run_seconds": self.run_seconds,
                **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> "CellRecord":
        """The inverse of :meth:`to_json`; a malformed cell raises ValueError with one line."""
        if not isinstance(data, Mapping):
            raise ValueError(f"is a {type(data).__name__}, not an object")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("has no name")
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"{name!r} has status {status!r}, not one of {', '.join(STATUSES)}")
        results = _relative(data.get("results"), f"{name!r} results")
        if status == "ran" and results is None:
            raise ValueError(f"{name!r} ran but names no results file")
        reason = data.get("reason", "")
        if not isinstance(reason, str):
            raise ValueError(f"{name!r} has a reason that is not a text")
        return cls(name=name, status=status,
                   requested=_str_map(data.get("requested") or {}, f"{name!r} requested"),
                   versions=_str_map(data.get("versions") or {}, f"{name!r} versions"),
                   results=results, lock=_relative(data.get("lock"), f"{name!r} lock"), reason=reason,
                   setup_seconds=_seconds(data.get("setup_seconds", 0.0), f"{name!r} setup_seconds"),
                   run_seconds=_seconds(data.get("run_seconds", 0.0), f"{name!r} run_seconds"),
                   extra={k: v for k, v in data.items() if k not in CELL_FIELDS})


@dataclass(frozen=True)
class MatrixRun:
    """A whole matrix run: the matrix file it came from, the selection, and its cells in order."""

    schema: str
    created: str
    matrix_file: str
    selection: list[str]
    cells: list[CellRecord]
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, matrix_file: str, selection: list[str], cells: list[CellRecord]) -> "MatrixRun":
        return cls(schema=SCHEMA, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   matrix_file=matrix_file, selection=list(selection), cells=list(cells))

    def cell(self, name: str) -> CellRecord:
        for c in self.cells:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "created": self.created, "matrix_file": self.matrix_file,
                "selection": list(self.selection), "cells": [c.to_json() for c in self.cells], **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> "MatrixRun":
        """The inverse of :meth:`to_json`; raises ValueError with one line naming what is wrong."""
        cells = decode_items(data, SCHEMA, "cells", "cell", CellRecord.from_json)
        selection = data.get("selection") or []
        if not isinstance(selection, list) or not all(isinstance(s, str) for s in selection):
            raise ValueError("has a selection that is not a list of texts")
        names = [c.name for c in cells]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"names cell {', '.join(map(repr, twice))} more than once")
        matrix_file = data.get("matrix_file")
        if not isinstance(matrix_file, str):
            raise ValueError("has no matrix_file text")
        return cls(schema=SCHEMA, created=str(data.get("created") or "?"), matrix_file=matrix_file,
                   selection=list(selection), cells=cells,
                   extra={k: v for k, v in data.items() if k not in RUN_FIELDS})


def write_matrix(path: Path, run: MatrixRun) -> None:
    """Write the matrix run file atomically (a temporary file renamed into place, 0644 under the usual umask)."""
    write_json_atomically(path, run.to_json())


def read_json(path: Path, what: str, hint: str) -> Any:
    """A JSON file's content; a missing or unreadable file is a one-line UsageError naming ``what`` and ``hint``."""
    if not path.is_file():
        raise UsageError(f"{what} {path} not found; {hint}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{what} {path} is not valid JSON ({exc}); {hint}") from None


def load_matrix(path: Path) -> MatrixRun:
    """Read and validate a matrix run file (or the ``matrix.json`` in a folder); one-line UsageError if bad."""
    if path.is_dir():
        path = path / FILE_NAME
    data = read_json(path, "matrix run file", "run `pitfalls matrix` (again) to write it, or pass its matrix.json")
    try:
        return MatrixRun.from_json(data)
    except ValueError as exc:
        raise UsageError(f"matrix run file {path}: {exc}; re-run `pitfalls matrix` to rewrite it") from None
