"""The deploy interface of the tfserving target, on the zoo's trained dense model and a real server."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.artifacts import ArtifactCache
from harness.compare import parity
from harness.errors import RuntimeFailure
from harness.models import Flavour, ModelSpec, saved_model, trained_model
from harness.targets.base import ModelSource, TensorSpec
from harness.targets.tfserving.target import TfservingTarget

#: The input name each Keras flavour gives the dense model (harness.models.build_model).
INPUT_NAMES = {"keras3": "input_layer", "tf_keras": "input_1"}


@pytest.fixture(scope="module")
def cache() -> ArtifactCache:
    return ArtifactCache()


@pytest.fixture(scope="module")
def target() -> Iterator[TfservingTarget]:
    reason = TfservingTarget.unavailable_reason()
    if reason:
        pytest.skip(reason)
    with TfservingTarget() as active:
        yield active


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_keras_file_is_exported_served_and_matches_keras(target: TfservingTarget, cache: ArtifactCache,
                                                         flavour: Flavour) -> None:
    trained = trained_model(cache, ModelSpec("dense", flavour))
    prepared = target.prepare(ModelSource.from_trained(trained), cache)
    assert prepared.target == "tfserving"
    assert (prepared.artifact / "saved_model.pb").is_file()
    assert prepared.sizes["saved_model.pb"] > 0 and prepared.sizes["variables"] > 0
    x, expected = trained.probe()
    with target.load(prepared) as deployed:
        signature = deployed.signature()
        assert signature.inputs == (TensorSpec(INPUT_NAMES[flavour], "float32", (None, 8)),)
        (output,) = signature.outputs
        assert (output.dtype, output.shape) == ("float32", (None, 3))
        outputs = deployed.predict({INPUT_NAMES[flavour]: x})
        assert list(outputs) == [output.name]  # the columnar reply's unnamed output, named
        assert outputs[output.name].dtype == "float32"
        assert parity(outputs[output.name], expected).max_abs_diff <= 1e-5
    assert deployed.closed


def test_saved_model_dir_is_served_as_given(target: TfservingTarget, cache: ArtifactCache) -> None:
    spec = ModelSpec("dense", "keras3")
    exported = saved_model(cache, spec)
    prepared = target.prepare(ModelSource.from_path(exported), cache)
    assert prepared.artifact == exported.resolve() and prepared.notes == {"export": "as given"}
    x, expected = trained_model(cache, spec).probe()
    with target.deploy(ModelSource.from_path(exported), cache) as deployed:
        (name,) = deployed.signature().input_names()
        (got,) = deployed.predict({name: x}).values()
    assert parity(got, expected).max_abs_diff <= 1e-5


def test_host_subprocess_mode_serves_the_same_outputs(cache: ArtifactCache) -> None:
    if TfservingTarget.unavailable_reason():
        pytest.skip(str(TfservingTarget.unavailable_reason()))
    trained = trained_model(cache, ModelSpec("dense", "keras3"))
    x, expected = trained.probe()
    with TfservingTarget("subprocess") as target, \
            target.deploy(ModelSource.from_trained(trained), cache) as deployed:
        assert target.mode == "subprocess"
        (got,) = deployed.predict({"input_layer": x}).values()
    assert parity(got, expected).max_abs_diff <= 1e-5


def test_prepare_is_cached(target: TfservingTarget, cache: ArtifactCache) -> None:
    source = ModelSource.from_trained(trained_model(cache, ModelSpec("dense", "keras3")))
    first = target.prepare(source, cache)
    hits = cache.hits
    again = target.prepare(source, cache)
    assert again.artifact == first.artifact
    assert cache.hits == hits + 1


def test_a_broken_saved_model_fails_with_the_servers_load_error(target: TfservingTarget, cache: ArtifactCache,
                                                                tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(saved_model(cache, ModelSpec("dense", "keras3")), broken)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel protocol buffer")
    prepared = target.prepare(ModelSource.from_path(broken), cache)
    with pytest.raises(RuntimeFailure) as failure:
        target.load(prepared)
    assert failure.value.runtime.startswith(("tfserving-compatible", "tensorflow/serving"))
    # TensorFlow's SavedModel loader's own words, as the server logged them.
    assert re.search(r"Can't parse \S*/1/saved_model\.pb as binary proto", failure.value.message), failure.value.message
