"""Catalog consistency: the scenarios, the taxonomy and the README's catalog table agree."""

from __future__ import annotations

from harness.registry import load_catalog, scenario_root
from harness.report import CATALOG_END, CATALOG_START, catalog_markdown, marked_block
from harness.paths import REPO_ROOT
from harness.taxonomy import coverage

README = REPO_ROOT / "README.md"
REGENERATE = "pitfalls list --markdown --update README.md"


def test_every_scenario_file_loads_and_names_a_taxonomy_node() -> None:
    catalog = load_catalog(scenario_root())
    assert not catalog.problems, "scenario files that cannot be loaded:\n" + "\n".join(catalog.problems)


def test_readme_catalog_block_matches_the_scenarios() -> None:
    text = README.read_text(encoding="utf-8") if README.exists() else ""
    block = marked_block(text)
    assert block is not None, f"{README} has no {CATALOG_START} … {CATALOG_END} block; add the markers, then run `{REGENERATE}`"
    expected = catalog_markdown(load_catalog(scenario_root()).scenarios)
    assert block == expected, f"the README's catalog table is out of date; run `{REGENERATE}`"


def test_every_taxonomy_node_has_a_scenario() -> None:
    """The project's promise: every challenge node of the taxonomy is reproduced."""
    missing = coverage(s.taxonomy for s in load_catalog(scenario_root()).scenarios)["missing"]
    assert not missing, f"{len(missing)} challenge(s) without a scenario: " + ", ".join(missing)
