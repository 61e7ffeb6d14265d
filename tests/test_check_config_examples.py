"""The checked-in example bundles (examples/check-config/<kind>/{faulty,fixed}): small, the faulty models derived
from the fixed ones, every planted mistake reported statically with its lesson, nothing on the fixed bundles.

The runtime half (each faulty bundle's verified findings) is in tests/test_check_config_verified.py.
"""

from __future__ import annotations

import pytest

from harness.configcheck import check_config
from harness.configcheck.examples import EXAMPLES_DIR, KINDS, PLANTED, PLANTED_VERIFIED, example, with_newer_op_versions
from harness.registry import load_catalog

BUNDLE_BYTES = 1 << 20  # each bundle well under 1 MiB


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("variant", ["faulty", "fixed"])
def test_each_bundle_is_small_and_checked_in(kind: str, variant: str) -> None:
    root = example(kind, variant)
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files and sum(p.stat().st_size for p in files) < BUNDLE_BYTES / 4, root  # 256 KiB
    assert not [p for p in root.rglob("*") if p.is_symlink()]


def test_the_faulty_models_are_the_fixed_ones_broken_as_planted() -> None:
    fixed_tflite = (example("android", "fixed") / "app/src/main/assets/model.tflite").read_bytes()
    faulty_assets = example("android", "faulty") / "app/src/main/assets"
    assert (faulty_assets / "model.tflite").read_bytes() == with_newer_op_versions(fixed_tflite)
    assert (faulty_assets / "legacy.tflite").read_bytes() == fixed_tflite[:len(fixed_tflite) // 2]
    fixed_js, faulty_js = example("tfjs", "fixed"), example("tfjs", "faulty")
    for name in ("model.json", "group1-shard1of1.bin"):
        assert (faulty_js / "model" / name).read_bytes() == (fixed_js / "model" / name).read_bytes()
    assert (faulty_js / "backup" / "model.json").read_bytes() == (fixed_js / "model" / "model.json").read_bytes()
    assert not (faulty_js / "backup" / "group1-shard1of1.bin").exists()
    fixed_sm, faulty_sm = example("tfserving", "fixed") / "models", example("tfserving", "faulty") / "models"
    for path in (fixed_sm / "classifier" / "1").rglob("*"):
        if path.is_file():
            assert (faulty_sm / path.relative_to(fixed_sm)).read_bytes() == path.read_bytes()


def test_every_planted_mistake_is_reported_with_its_lesson_and_nothing_on_the_fixed_bundles() -> None:
    report = check_config([example(k, "faulty") for k in KINDS] + [example(k, "fixed") for k in KINDS], verify=False)
    catalog = load_catalog()
    by_kind: dict[str, set[str]] = {k: set() for k in KINDS}
    for finding in report.findings:
        kind = next(k for k in KINDS if finding.file.startswith(str(example(k, "faulty"))))  # none on a fixed one
        by_kind[kind].add(finding.step)
        assert finding.verified == "static" and finding.file and finding.text
        if finding.scenario is not None:
            assert finding.scenario in catalog.files, finding.step
    for kind in KINDS:
        assert by_kind[kind] == set(PLANTED[kind]), kind
    lessonless = {f.step for f in report.findings if f.scenario is None}
    assert lessonless <= {"tfserving/monitoring-file-unused", "tfserving/flag-without-equals"}


def test_the_examples_readme_names_every_planted_rule() -> None:
    readme = (EXAMPLES_DIR / "README.md").read_text()
    for kind in KINDS:
        for rule in PLANTED[kind] + PLANTED_VERIFIED[kind]:
            assert f"`{rule}`" in readme, rule
