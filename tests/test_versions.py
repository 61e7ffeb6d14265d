"""harness.versions: installed versions (pip and npm) and the version ranges scenarios state."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import pytest

import harness.paths
from harness.versions import MISSING, VersionRange, installed_version, installed_versions, package_key


@pytest.mark.parametrize("text, canonical", [
    ("tensorflow>=2.20", "tensorflow>=2.20"),
    ("TF_Keras <2.19, >=2.15", "tf-keras<2.19,>=2.15"),
    ("ai_edge.litert==2.*", "ai-edge-litert==2.*"),
    ("@tensorflow/tfjs>=4.22", "@tensorflow/tfjs>=4.22"),
    ("npm:@tensorflow/tfjs<5", "@tensorflow/tfjs<5"),
    ("npm:playwright-core<2", "npm:playwright-core<2"),
    ("numpy", "numpy"),
])
def test_a_range_parses_and_its_text_round_trips(text: str, canonical: str) -> None:
    parsed = VersionRange.parse(text)
    assert str(parsed) == canonical
    assert VersionRange.parse(str(parsed)) == parsed


@pytest.mark.parametrize("bad", ["tensorflow>>2", "", ">=2.0", "tensorflow[and-cuda]>=2",
                                 'tensorflow; python_version<"3"', "@/x>=1", "@tensorflow/tfjs>=four",
                                 "tensorflow >= two"])
def test_a_bad_range_is_one_line_naming_the_text(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        VersionRange.parse(bad)
    message = str(info.value)
    assert "\n" not in message and repr(bad.strip()) in message and "e.g. 'tensorflow>=2.20'" in message


def test_a_non_string_range_is_refused() -> None:
    with pytest.raises(ValueError, match="is a string"):
        VersionRange.parse(2.20)  # type: ignore[arg-type]  # the mistake under test


def test_contains_compares_versions_not_text() -> None:
    below = VersionRange.parse("tensorflow<2.20")
    assert below.contains({"tensorflow": "2.19.1"})
    assert not below.contains({"tensorflow": "2.20.0"})
    assert not below.contains({"tensorflow": "2.100.0"})  # a text comparison would say "2.100" < "2.20"
    assert below.contains({"TensorFlow": "2.9.0"})  # names are compared as PEP 503 normalises them
    assert not below.contains({"tensorflow": "2.20.0rc1"})  # PEP 440: <2.20 excludes 2.20's pre-releases
    assert VersionRange.parse("tensorflow>=2.20").contains({"tensorflow": "2.21.0rc0"})  # judged by number


def test_a_missing_or_unreadable_version_is_in_no_range() -> None:
    rng = VersionRange.parse("tensorflow>=2")
    assert not rng.contains({})
    assert not rng.contains({"tensorflow": MISSING})
    assert not rng.contains({"tensorflow": "not started"})
    assert not VersionRange.parse("tensorflow").contains({"keras": "3.0"})
    assert VersionRange.parse("tensorflow").contains({"tensorflow": "2.19.0"})


def test_explain_says_within_or_outside() -> None:
    rng = VersionRange.parse("tensorflow<2.20")
    assert rng.explain({"tensorflow": "2.21.0"}) == "tensorflow 2.21.0 is outside tensorflow<2.20"
    assert rng.explain({"tensorflow": "2.19.0"}) == "tensorflow 2.19.0 is within tensorflow<2.20"
    assert rng.explain({}) == "tensorflow is not installed (tensorflow<2.20)"


def test_installed_version_of_a_pip_distribution_with_any_spelling() -> None:
    want = metadata.version("packaging")
    assert installed_version("packaging") == want
    assert installed_version("tf-keras") == installed_version("TF_Keras") == installed_version("tf.keras")
    assert installed_version("no-such-distribution-pitfalls") is None
    assert installed_versions(["Packaging", "no-such-distribution-pitfalls"]) == {
        "packaging": want, "no-such-distribution-pitfalls": MISSING}


def _npm_package(root: Path, name: str, version: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "package.json").write_text(json.dumps({"name": name, "version": version}), encoding="utf-8")


def test_installed_version_of_an_npm_package_reads_node_modules_at_call_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _npm_package(tmp_path, "@tensorflow/tfjs", "9.8.7")
    _npm_package(tmp_path, "left-pad", "1.3.0")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "package.json").write_text("{not json", encoding="utf-8")
    monkeypatch.setattr(harness.paths, "NODE_MODULES", tmp_path)
    assert installed_version("@tensorflow/tfjs") == "9.8.7"
    assert installed_version("npm:@tensorflow/tfjs") == "9.8.7"
    assert installed_version("npm:left-pad") == "1.3.0"
    assert installed_version("left-pad") is None  # without "npm:" an unscoped name is a pip distribution
    assert installed_version("npm:broken") is None and installed_version("@no/such") is None
    assert VersionRange.parse("@tensorflow/tfjs>=9").contains(installed_versions(["@tensorflow/tfjs"]))
    monkeypatch.setattr(harness.paths, "NODE_MODULES", tmp_path / "elsewhere")
    assert installed_version("@tensorflow/tfjs") is None


def test_package_keys_keep_npm_and_pip_apart() -> None:
    assert package_key("Tensorflow_JS") == "tensorflow-js"
    assert package_key("npm:left-pad") == "npm:left-pad" != package_key("left-pad")
    assert package_key("npm:@tensorflow/tfjs") == package_key("@tensorflow/tfjs") == "@tensorflow/tfjs"
