"""The runtime texts no rule knows yet, on the real test models (issue 21, item 5).

``pitfalls check`` lists every target runtime's text that no rule of the catalog maps to a lesson
in its report (``unknown_texts``).  ``tests/fixtures/unknown_texts.json`` holds those the models
of ``tests/check_models/wild.py`` produce, per model and target (keyed by
:func:`harness.check.report.text_key`: paths and numbers rubbed out), so that the catalog can grow
toward them: this test fails when a new unknown text appears (add a rule, or list it) or a listed
one disappears (a rule now knows it, or the runtime no longer says it: take it out of the list).

Regenerate the fixture after such a change (about a minute per model on a quiet machine)::

    PYTHONPATH=$PWD .venv/bin/python tests/test_check_unknown_texts.py [MODEL ...]

(naming models regenerates only their entries).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.artifacts import ArtifactCache
from harness.check import CheckReport

from check_models import shared_check, shared_memo_dir

FIXTURE = Path(__file__).parent / "fixtures" / "unknown_texts.json"

pytestmark = pytest.mark.slow


def _models() -> dict[str, Callable[[ArtifactCache], Path]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from check_models.wild import ALL, large_activations_keras, stateful_lstm_keras

    return {**ALL, "large_activations": large_activations_keras, "stateful_lstm": stateful_lstm_keras}


def unknown_of(report: CheckReport) -> dict[str, list[str]]:
    """Target -> the sorted keys of its unknown texts, for every target that ran (not skipped)."""
    found: dict[str, set[str]] = {name: set() for name, t in report.targets.items() if t.verdict != "skipped"}
    for entry in report.unknown_texts():
        found[entry["target"]].add(entry["key"])
    return {name: sorted(keys) for name, keys in found.items()}


#: what every check of this test runs: the sample only, LiteRT on this machine's CPU profile
OPTIONS: dict[str, Any] = {"probes": (), "profiles": ("host",)}


@pytest.fixture(scope="module")
def shared_memo(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path | None:
    return shared_memo_dir(tmp_path_factory, worker_id)


@pytest.mark.parametrize("model", sorted(_models()))
def test_unknown_texts_of_the_wild_models_are_those_listed(model: str, pitfalls_cache: ArtifactCache,
                                                          pitfalls_check: Any, shared_memo: Path | None) -> None:
    listed: dict[str, dict[str, list[str]]] = json.loads(FIXTURE.read_text())
    path = _models()[model](pitfalls_cache)
    # test_check_wild's tests of these models read the same report (one check per session, on any worker)
    report = shared_check(pitfalls_check, path, shared_memo, **OPTIONS)
    got = unknown_of(report)
    assert got, "no target ran here"
    for target, keys in got.items():
        want = listed.get(model, {}).get(target, [])
        new = sorted(set(keys) - set(want))
        gone = sorted(set(want) - set(keys))
        assert not new and not gone, (
            f"{model} on {target}: new unknown texts {new} (add a rule in harness/targets/{target}/checks.py or "
            f"regenerate {FIXTURE.name}), listed but not met {gone} (regenerate: see this file's docstring)")


def main(names: list[str]) -> None:
    """Check every model (or those ``names``) on every target and write the fixture."""
    from harness.check import check

    cache = ArtifactCache()
    found: dict[str, dict[str, list[str]]] = json.loads(FIXTURE.read_text()) if names and FIXTURE.is_file() else {}
    for name, build in sorted(_models().items()):
        if names and name not in names:
            continue
        print(f"checking {name}", file=sys.stderr, flush=True)
        report = check(build(cache), cache=cache, progress=None, **OPTIONS)
        found[name] = unknown_of(report)
    FIXTURE.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
