"""Scenario discovery: the path is the id, and it must name a taxonomy node."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.registry import ScenarioDefinitionError, all_scenarios, load_scenario, scenario_id_for
from harness.taxonomy import challenge_ids, load_taxonomy, taxonomy_node_for

SCENARIO_TEXT = '''
from harness.scenario import Raises, Scenario
def faulty(run): pass
def fixed(run): pass
SCENARIO = Scenario(title="t", targets=({targets}), faulty=faulty, fixed=fixed, symptom=Raises("x"))
'''


def write(root: Path, rel: str, targets: str = '"tfjs",') -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCENARIO_TEXT.format(targets=targets))
    return path


def test_taxonomy_has_80_nodes() -> None:
    nodes = load_taxonomy()
    assert len(nodes) == 80
    assert sum(n.platform == "server" for n in nodes) == 28
    assert sum(n.platform == "mobile" for n in nodes) == 28
    assert sum(n.platform == "browser" for n in nodes) == 24
    assert len(set(challenge_ids())) == 80


def test_id_and_node_from_path(tmp_path: Path) -> None:
    path = write(tmp_path, "browser/model-loading/asynchronous-loading.py")
    scenario = load_scenario(path, tmp_path)
    assert scenario.id == "browser/model-loading/asynchronous-loading"
    assert scenario.taxonomy == scenario.id and scenario.platform == "browser"
    nested = write(tmp_path, "browser/model-loading/asynchronous-loading/second.py")
    assert load_scenario(nested, tmp_path).taxonomy == "browser/model-loading/asynchronous-loading"
    assert scenario_id_for(nested, tmp_path).endswith("/second")


def test_unknown_node_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "browser/model-loading/teleportation.py")
    with pytest.raises(ScenarioDefinitionError, match="names no challenge node"):
        load_scenario(path, tmp_path)


def test_target_must_fit_platform(tmp_path: Path) -> None:
    path = write(tmp_path, "mobile/model-update.py", targets='"tfjs",')
    with pytest.raises(ScenarioDefinitionError, match="not a mobile target"):
        load_scenario(path, tmp_path)
    path = write(tmp_path, "mobile/data-extraction.py", targets='"android",')
    with pytest.raises(ScenarioDefinitionError, match="unknown target"):
        load_scenario(path, tmp_path)


def test_leaf_inner_category_is_a_node() -> None:
    assert taxonomy_node_for("server/model-update") == "server/model-update"
    assert taxonomy_node_for("server/model-update/rolling") == "server/model-update"
    assert taxonomy_node_for("server/nowhere") is None


def test_every_repository_scenario_loads_and_names_a_node() -> None:
    scenarios = all_scenarios()
    assert scenarios, "no scenario files found under scenarios/"
    ids = set(challenge_ids())
    for s in scenarios:
        assert s.taxonomy in ids
        assert s.cause and s.fix, f"{s.id}: cause and fix are needed for students"
        assert s.references, f"{s.id}: give at least one reference (docs, an issue, a Q&A thread)"
        assert s.title


def test_packaged_taxonomy_matches_the_shared_one() -> None:
    """harness/taxonomy.yaml is a copy of the project's shared taxonomy; they must not drift."""
    from harness.paths import REPO_ROOT

    shared = REPO_ROOT.parent / "shared" / "taxonomy.yaml"
    if not shared.is_file():
        pytest.skip(f"{shared} is not beside this checkout")
    packaged = REPO_ROOT / "harness" / "taxonomy.yaml"
    assert packaged.read_text() == shared.read_text(), "copy ../shared/taxonomy.yaml to harness/taxonomy.yaml"
