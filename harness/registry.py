"""Discovery of scenario files and the catalog: the path under ``scenarios/`` is the scenario id.

:func:`load_scenario` imports one file; :func:`load_catalog` every file of a tree, reporting the
ones that cannot be loaded instead of failing; :func:`find_in_catalog` resolves an id a user typed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from harness.errors import UsageError
from harness.paths import SCENARIO_ROOT
from harness.scenario import Scenario
from harness.targets import TARGETS
from harness.taxonomy import PLATFORMS, taxonomy_node_for

SCENARIO_ROOT_ENV = "PITFALLS_SCENARIOS"
#: target name -> platform, from the one declaration in harness.targets
KNOWN_TARGETS: dict[str, str] = {t.name: t.platform for t in TARGETS}


def scenario_root() -> Path:
    """The scenario tree in use: ``$PITFALLS_SCENARIOS`` when set (the plugin's own tests point it
    at a temporary tree), else the repository's ``scenarios/``."""
    return Path(os.environ.get(SCENARIO_ROOT_ENV) or SCENARIO_ROOT).resolve()


class ScenarioDefinitionError(Exception):
    """A scenario file is malformed (no SCENARIO, unknown taxonomy node, unknown target)."""


def scenario_id_for(path: Path, root: Path = SCENARIO_ROOT) -> str:
    rel = path.resolve().relative_to(root.resolve())
    return str(rel.with_suffix("")).replace("\\", "/")


def is_scenario_file(path: Path, root: Path = SCENARIO_ROOT) -> bool:
    try:
        rel = path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return (path.suffix == ".py" and not path.name.startswith(("_", "test_"))
            and rel.parts[0] in PLATFORMS)


def _module_name(scenario_id: str) -> str:
    safe = scenario_id.replace("/", ".").replace("-", "_")
    return f"pitfalls_scenarios.{safe}"


def load_scenario(path: Path, root: Path = SCENARIO_ROOT) -> Scenario:
    """Import one scenario file and return its record with id, taxonomy and path filled in."""
    scenario_id = scenario_id_for(path, root)
    name = _module_name(scenario_id)
    module = sys.modules.get(name)
    if module is None or getattr(module, "__file__", None) != str(path.resolve()):
        spec = importlib.util.spec_from_file_location(name, path.resolve())
        if spec is None or spec.loader is None:
            raise ScenarioDefinitionError(f"{path}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    scenario = getattr(module, "SCENARIO", None)
    if not isinstance(scenario, Scenario):
        raise ScenarioDefinitionError(f"{path}: defines no `SCENARIO = Scenario(...)`")
    node = taxonomy_node_for(scenario_id)
    if node is None:
        raise ScenarioDefinitionError(
            f"{path}: {scenario_id!r} names no challenge node of the taxonomy "
            "(the path under scenarios/ must start with a node id, see `pitfalls list`)")
    platform = scenario_id.split("/", 1)[0]
    for target in scenario.targets:
        if target not in KNOWN_TARGETS:
            raise ScenarioDefinitionError(f"{path}: unknown target {target!r} (known: {sorted(KNOWN_TARGETS)})")
        if KNOWN_TARGETS[target] != platform:
            raise ScenarioDefinitionError(f"{path}: target {target!r} is not a {platform} target")
    if not scenario.targets:
        raise ScenarioDefinitionError(f"{path}: names no target")
    return dataclasses.replace(scenario, id=scenario_id, taxonomy=node, path=path.resolve())


def scenario_files(root: Path = SCENARIO_ROOT) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if is_scenario_file(p, root))


@lru_cache(maxsize=4)
def _all_scenarios(root: Path) -> tuple[Scenario, ...]:
    return tuple(load_scenario(p, root) for p in scenario_files(root))


def all_scenarios(root: Path = SCENARIO_ROOT) -> tuple[Scenario, ...]:
    return _all_scenarios(root.resolve())


# --------------------------------------------------------------------------------------------
# The catalog


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
        raise UsageError(f"scenario directory not found: {root} (set {SCENARIO_ROOT_ENV} or run from the repository)")
    for path in scenario_files(root):
        catalog.files[scenario_id_for(path, root)] = path
        try:
            catalog.scenarios.append(load_scenario(path, root))
        except Exception as exc:  # noqa: BLE001 - a broken file must not hide the others
            catalog.problems.append(f"{path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return catalog


def normalise_selection(text: str) -> str:
    """A scenario id, platform or taxonomy prefix as typed: ``scenarios/`` and ``.py`` dropped."""
    sel = text.strip().replace("\\", "/").strip("/")
    if sel.startswith("scenarios/"):
        sel = sel[len("scenarios/"):]
    return sel[:-3] if sel.endswith(".py") else sel


def find_in_catalog(catalog: Catalog, scenario_id: str) -> Scenario:
    wanted = normalise_selection(scenario_id)
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
