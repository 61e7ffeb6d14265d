"""The matrix file: which versions each cell of a version matrix runs (``matrix.toml``).

A cell is one environment: the versions of the packages the catalog's pitfalls depend on
(:func:`packages`), everything else resolved by uv around them.  The file::

    [matrix]
    selection = []             # what each cell runs, as `pitfalls run` takes it (default: every scenario)

    [defaults]                 # every cell starts from these
    tensorflow = "2.19.0"
    tensorflowjs = "4.22.0"    # a target's Python package (harness.targets.TargetInfo.matrix_packages)
    "<npm package>" = "4.22.0" # a target's npm package, with its bundle (TargetInfo.npm_package)
    constraints = ["ydf<0.14"] # extra pip constraints for every cell

    [[cell]]
    name = "tf2.18"
    tensorflow = "2.18.0"      # overrides the default
    tf-keras = "2.18.0"
    compare = "tf2.19"         # the report compares this cell with that one (default: its left neighbour)
    targets = ["<target>"]     # run only these targets in this cell (default: all)

    [axes]                     # optional: cells as the cross product of these lists, over [defaults]
    coremltools = ["8.3.0", "9.0"]

    [[exclude]]                # a cell matching every key is listed as not run, with the reason
    tensorflow = "2.21.0"
    tensorflowjs = "4.22.0"
    reason = "..."

A version is exact (``"2.19.0"``) or ``"none"``: the package is left out of the cell (its
scenarios then skip with the target's own reason).  ``serving-tf`` (the TF inside the serving
image) follows the cell's ``tensorflow`` unless given.  Anything else is a one-line
:class:`~harness.errors.UsageError`: an unknown key or package, a malformed version, a duplicate
or unknown cell name.  Whether a version exists is asked of the registry by :mod:`harness.matrix.env`.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import UsageError
from harness.paths import REPO_ROOT
from harness.targets import matrix_packages, package_owner

DEFAULT_MATRIX = REPO_ROOT / "matrix.toml"
NONE = "none"  # a package left out of a cell

# The packages a cell may set: name -> where it comes from.  "pip" packages go to uv; the npm
# packages into the cell's own node_modules; "image" is the serving image's TF.  Besides the
# common ones, each target's (harness.targets.TargetInfo.matrix_packages and npm_package).
COMMON_PACKAGES: dict[str, str] = {"tensorflow": "pip", "keras": "pip", "tf-keras": "pip",
                                   "tensorflow-decision-forests": "pip", "numpy": "pip"}


def packages() -> dict[str, str]:
    """Every package a cell may set, read from the target declarations when asked."""
    return {**COMMON_PACKAGES, **matrix_packages(), "serving-tf": "image"}


def optional() -> tuple[str, ...]:
    """What "none" may leave out: the optional common packages and every target's."""
    return ("tf-keras", "tensorflow-decision-forests", *matrix_packages())


PACKAGES = packages()  # the packages of the targets declared in harness.targets (as imported)
CELL_KEYS = ("name", "constraints", "compare", "targets", "selection", "note")
MATRIX_KEYS = ("selection",)
TOP_KEYS = ("matrix", "defaults", "cell", "axes", "exclude")
VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?$")
CELL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


@dataclass(frozen=True)
class Cell:
    """One environment of the matrix: the requested versions and how it is run."""

    name: str
    packages: dict[str, str]  # package -> exact version or "none"
    constraints: tuple[str, ...] = ()
    compare: str | None = None
    targets: tuple[str, ...] = ()
    selection: tuple[str, ...] = ()
    note: str = ""
    excluded: str | None = None  # the [[exclude]] reason when an exclusion matched

    @property
    def requested(self) -> dict[str, str]:
        """What the file asked for, ``serving-tf`` filled in from ``tensorflow``."""
        wanted = dict(self.packages)
        if "serving-tf" not in wanted and wanted.get("tensorflow", NONE) != NONE:
            wanted["serving-tf"] = wanted["tensorflow"]
        return wanted

    def pip_pins(self) -> dict[str, str]:
        return {p: v for p, v in self.packages.items() if packages()[p] == "pip"}

    def npm_pins(self) -> dict[str, str]:
        return {p: v for p, v in self.packages.items() if packages()[p] == "npm"}


@dataclass(frozen=True)
class Matrix:
    path: Path
    cells: tuple[Cell, ...]
    selection: tuple[str, ...] = ()

    def names(self) -> list[str]:
        return [c.name for c in self.cells]

    def pick(self, names: Sequence[str]) -> "Matrix":
        """Only the named cells, in the file's order; an unknown name is a UsageError."""
        known = self.names()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UsageError(f"--cells: no cell named {', '.join(map(repr, unknown))} in {self.path} "
                             f"(cells: {', '.join(known)})")
        return Matrix(self.path, tuple(c for c in self.cells if c.name in names), self.selection)


def _where(path: Path, what: str) -> str:
    return f"{path}: {what}"


def _string_list(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UsageError(_where(path, f"{where} must be a list of strings, e.g. [\"ydf<0.14\"]"))
    return tuple(v.strip() for v in value)


def _packages(path: Path, where: str, table: Mapping[str, Any], allowed_extra: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        if key in allowed_extra:
            continue
        if key not in packages():
            raise UsageError(_where(path, f"{where}: unknown package or key {key!r} (packages: "
                                          f"{', '.join(packages())}; keys: {', '.join(allowed_extra)})"))
        if not isinstance(value, str):
            raise UsageError(_where(path, f"{where}: {key} must be a version string such as \"2.19.0\", "
                                          f"not {value!r}"))
        if value == NONE:
            if key not in optional():
                raise UsageError(_where(path, f"{where}: {key} cannot be \"none\" (only {', '.join(optional())} "
                                              "can be left out)"))
        elif not VERSION.match(value):
            raise UsageError(_where(path, f"{where}: {key} = {value!r} is not an exact version such as "
                                          "\"2.19.0\" (or \"none\")"))
        out[key] = value
    return out


def parse_matrix(path: Path) -> Matrix:
    """Read and validate a matrix file; every problem is a one-line UsageError naming it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"matrix file {path} does not exist (the default is {DEFAULT_MATRIX.name} at the "
                         "checkout's root)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"matrix file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"matrix file {path} is not valid TOML: {exc}") from None
    return matrix_from_data(path, data)


def matrix_from_data(path: Path, data: Mapping[str, Any]) -> Matrix:
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise UsageError(_where(path, f"unknown table {unknown[0]!r} (tables: {', '.join(TOP_KEYS)})"))
    head = data.get("matrix", {})
    if not isinstance(head, Mapping) or any(k not in MATRIX_KEYS for k in head):
        raise UsageError(_where(path, f"[matrix] takes only {', '.join(MATRIX_KEYS)}"))
    selection = _string_list(path, "[matrix] selection", head.get("selection", []))
    defaults_table = data.get("defaults", {})
    if not isinstance(defaults_table, Mapping):
        raise UsageError(_where(path, "[defaults] must be a table"))
    defaults = _packages(path, "[defaults]", defaults_table, ("constraints",))
    default_constraints = _string_list(path, "[defaults] constraints", defaults_table.get("constraints", []))

    cells: list[Cell] = []
    raw_cells = data.get("cell", [])
    if not isinstance(raw_cells, list):
        raise UsageError(_where(path, "cells are [[cell]] tables (an array of tables)"))
    for i, raw in enumerate(raw_cells, 1):
        if not isinstance(raw, Mapping):
            raise UsageError(_where(path, f"[[cell]] #{i} is not a table"))
        name = raw.get("name")
        if not isinstance(name, str) or not CELL_NAME.match(name):
            raise UsageError(_where(path, f"[[cell]] #{i} needs a name of letters, digits and ._+- "
                                          f"(e.g. name = \"tf2.19\"), not {name!r}"))
        where = f"cell {name!r}"
        packages = {**defaults, **_packages(path, where, raw, CELL_KEYS)}
        targets = _string_list(path, f"{where} targets", raw.get("targets", []))
        _check_targets(path, where, targets)
        compare = raw.get("compare")
        if compare is not None and not isinstance(compare, str):
            raise UsageError(_where(path, f"{where}: compare names another cell, e.g. compare = \"tf2.19\""))
        cells.append(Cell(name=name, packages=packages,
                          constraints=default_constraints + _string_list(path, f"{where} constraints",
                                                                         raw.get("constraints", [])),
                          compare=compare, targets=targets,
                          selection=_string_list(path, f"{where} selection", raw.get("selection", [])),
                          note=str(raw.get("note", ""))))
    cells.extend(_axes_cells(path, data.get("axes"), defaults, default_constraints))
    if not cells:
        raise UsageError(_where(path, "no cells: add [[cell]] tables or an [axes] table"))
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UsageError(_where(path, f"cell name {dupes[0]!r} is used twice; every cell needs its own name"))
    for cell in cells:
        earlier = names[:names.index(cell.name)]
        if cell.compare is not None and cell.compare not in earlier:
            raise UsageError(_where(path, f"cell {cell.name!r}: compare = {cell.compare!r} names no cell above it "
                                          f"(cells above: {', '.join(earlier) or 'none'})"))
        if cell.packages.get("tensorflow", NONE) == NONE:
            raise UsageError(_where(path, f"cell {cell.name!r} has no tensorflow version (set one in "
                                          "[defaults] or in the cell)"))
    cells = _apply_exclusions(path, data.get("exclude", []), cells)
    return Matrix(path=path, cells=tuple(cells), selection=selection)


def _check_targets(path: Path, where: str, targets: Sequence[str]) -> None:
    from harness.targets import TARGET_NAMES

    bad = [t for t in targets if t not in TARGET_NAMES]
    if bad:
        raise UsageError(_where(path, f"{where}: unknown target {bad[0]!r} (targets: {', '.join(TARGET_NAMES)})"))


def _short(package: str) -> str:
    """A package's part of a generated cell name: a target's package is named after its target."""
    if package == "tensorflow":
        return "tf"
    owner = package_owner(package)
    if owner is None:
        return package
    return owner + ("npm" if packages().get(package) == "npm" else "")


def _axes_cells(path: Path, axes: Any, defaults: Mapping[str, str],
                constraints: tuple[str, ...]) -> list[Cell]:
    if axes is None:
        return []
    if not isinstance(axes, Mapping) or not axes:
        raise UsageError(_where(path, "[axes] must be a table of lists, e.g. coremltools = [\"8.3.0\", \"9.0\"]"))
    lists: dict[str, list[str]] = {}
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise UsageError(_where(path, f"[axes] {key} must be a non-empty list of versions"))
        lists[key] = [_packages(path, "[axes]", {key: v}, ())[key] for v in values]
    cells = []
    for combo in itertools.product(*lists.values()):
        chosen = dict(zip(lists, combo))
        name = "-".join(f"{_short(p)}{v}" for p, v in chosen.items())
        cells.append(Cell(name=name, packages={**defaults, **chosen}, constraints=constraints))
    return cells


def _apply_exclusions(path: Path, raw: Any, cells: list[Cell]) -> list[Cell]:
    if not isinstance(raw, list):
        raise UsageError(_where(path, "exclusions are [[exclude]] tables"))
    rules: list[tuple[dict[str, str], str]] = []
    for i, table in enumerate(raw, 1):
        if not isinstance(table, Mapping):
            raise UsageError(_where(path, f"[[exclude]] #{i} is not a table"))
        reason = table.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise UsageError(_where(path, f"[[exclude]] #{i} needs a reason = \"...\" (it is shown in the report)"))
        match = _packages(path, f"[[exclude]] #{i}", table, ("reason",))
        if not match:
            raise UsageError(_where(path, f"[[exclude]] #{i} names no package version to match"))
        rules.append((match, reason.strip()))
    out = []
    for cell in cells:
        hit = next((reason for match, reason in rules
                    if all(cell.requested.get(p) == v for p, v in match.items())), None)
        out.append(cell if hit is None else replace(cell, excluded=hit))
    return out
