"""Catalog consistency: the scenarios, the taxonomy and the README's catalog table agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.registry import load_catalog, scenario_root
from harness.report import CATALOG_END, CATALOG_START, catalog_markdown, marked_block
from harness.paths import REPO_ROOT
from harness.results import TRACKED_DISTRIBUTIONS
from harness.scenario import Scenario
from harness.taxonomy import coverage
from harness.versions import TRACKED_NPM_PACKAGES, package_key

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


def test_no_scenario_hides_its_lesson_in_a_flag_pair() -> None:
    """Faulty and fixed must not each be one call of the same function that differ only in literal
    arguments (``_go(run, quantize=False)`` / ``_go(run, quantize=True)``): the mistake and the remedy
    would live in the shared function, not in the scenario a student reads."""
    from harness.lesson import flag_pair

    flagged = [f"{s.id}: {why}" for s in load_catalog(scenario_root()).scenarios if (why := flag_pair(s))]
    assert not flagged, f"{len(flagged)} scenario(s) with a flag pair:\n" + "\n".join(flagged)


FLAG_PAIR_CASES = {
    "flags": ("def faulty(run):\n    return _go(run, quantize=False)\n",
              'def fixed(run):\n    """Quantise."""\n    return _go(run, quantize=True)\n', True),
    "strings and numbers": ("def faulty(run):\n    _go(run, 'float16', -1)\n",
                            "def fixed(run):\n    _go(run, 'float32', 3)\n", True),
    "the same call, judged differently": ("def faulty(run):\n    return _measure(run)\n",
                                          "def fixed(run):\n    return _measure(run)\n", True),
    "two constants of code": ("def faulty(run):\n    return _go(run, FAULTY_JS)\n",
                              "def fixed(run):\n    return _go(run, FIXED_JS)\n", False),
    "settings spelled as a dict": ("def faulty(run):\n    return convert(run, {'optimizations': []})\n",
                                   "def fixed(run):\n    return convert(run, {'optimizations': ['DEFAULT']})\n", False),
    "two statements": ("def faulty(run):\n    x = 1\n    return _go(run, x)\n",
                       "def fixed(run):\n    return _go(run, 2)\n", False),
    "different functions": ("def faulty(run):\n    return load_sync(run, 1)\n",
                            "def fixed(run):\n    return load_async(run, 2)\n", False),
}


@pytest.mark.parametrize("case", sorted(FLAG_PAIR_CASES))
def test_flag_pair_detection(case: str, tmp_path: Path) -> None:
    import importlib.util

    from harness.lesson import flag_pair
    from harness.scenario import Raises, Scenario

    faulty_src, fixed_src, expected = FLAG_PAIR_CASES[case]
    path = tmp_path / f"flag_case_{abs(hash(case))}.py"
    path.write_text(faulty_src + "\n\n" + fixed_src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    scenario = Scenario(title="t", targets=("tfjs",), faulty=module.faulty, fixed=module.fixed, symptom=Raises("x"))
    assert (flag_pair(scenario) is not None) is expected, flag_pair(scenario)


def untracked_ranges(scenarios: list[Scenario] | tuple[Scenario, ...]) -> list[str]:
    """The version ranges (``applies`` and ``ByVersion``) that name a package a run does not track
    (harness.results.TRACKED_DISTRIBUTIONS, harness.versions.TRACKED_NPM_PACKAGES): a range on a
    package no results file records could never be checked by a reader of the results."""
    tracked = {package_key(n) for n in (*TRACKED_DISTRIBUTIONS, *TRACKED_NPM_PACKAGES)}
    return [f"{s.id}: {r}" for s in scenarios for r in s.ranges() if r.name not in tracked]


def test_every_version_range_parses_and_names_a_tracked_package() -> None:
    catalog = load_catalog(scenario_root())  # a range that does not parse is a load problem, named above
    assert not [p for p in catalog.problems if "version range" in p], catalog.problems
    bad = untracked_ranges(catalog.scenarios)
    assert not bad, "version ranges on packages a run does not record:\n" + "\n".join(bad)


def test_an_untracked_or_unparsable_range_is_caught(tmp_path: Path) -> None:
    from crafted import DEMO_ID, DEMO_SCENARIO, write_scenario_tree

    root = write_scenario_tree(tmp_path, {
        DEMO_ID: DEMO_SCENARIO.replace("KNOWN_GAP", "applies=('tensorflow<2.20', 'left-pad>=1'),"),
        "mobile/model-update/demo": DEMO_SCENARIO.replace("KNOWN_GAP", "applies=('tensorflow<<2.20',),")})
    catalog = load_catalog(root)
    assert untracked_ranges(catalog.scenarios) == [f"{DEMO_ID}: left-pad>=1"]
    assert len(catalog.problems) == 1 and "version range 'tensorflow<<2.20'" in catalog.problems[0]
