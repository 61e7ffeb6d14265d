"""Discovery of scenario files: the path under ``scenarios/`` is the scenario id."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

from harness.paths import REPO_ROOT
from harness.scenario import Scenario
from harness.targets import TARGETS
from harness.taxonomy import PLATFORMS, taxonomy_node_for

SCENARIO_ROOT = REPO_ROOT / "scenarios"
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
