"""The LiteRT deploy interface end to end: prepare -> load -> signature -> predict, real models.

Trained zoo models come from the shared artifact cache; conversions go to a per-module cache so
that builds and hits can be counted.  TensorFlow converts in this process; LiteRT runs in the
target's worker processes (and under qemu for the arm64 profile).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from harness.artifacts import ArtifactCache
from harness.compare import max_abs_diff, parity
from harness.errors import HarnessError, RuntimeFailure, UsageError
from harness.models import ModelSpec, saved_model, trained_model
from harness.targets.base import ModelSource
from harness.targets.litert.arm64 import arm64_unavailable_reason
from harness.targets.litert.target import LitertDeployment, LitertTarget

pytestmark = pytest.mark.skipif(LitertTarget.unavailable_reason() is not None,
                                reason=str(LitertTarget.unavailable_reason()))

PARITY = 1e-5


@pytest.fixture(scope="module")
def shared() -> ArtifactCache:
    return ArtifactCache()


@pytest.fixture(scope="module")
def conversions(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("litert-conversions"))


@pytest.fixture(scope="module")
def target() -> Iterator[LitertTarget]:
    with LitertTarget(timeout=120) as t:
        yield t


def only(outputs: dict[str, np.ndarray]) -> np.ndarray:
    (value,) = outputs.values()
    return value


@pytest.mark.parametrize("spec, route, input_shape", [
    (ModelSpec("dense", "keras3"), "model.export -> TFLiteConverter.from_saved_model", (None, 8)),
    (ModelSpec("cnn", "tf_keras"), "tf_keras.models.load_model -> TFLiteConverter.from_keras_model", (None, 28, 28, 1)),
], ids=["keras3-dense", "tf_keras-cnn"])
def test_model_files_deploy_on_the_host_profile_and_match_keras(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache,
        spec: ModelSpec, route: str, input_shape: tuple[int | None, ...]) -> None:
    trained = trained_model(shared, spec)
    prepared = target.prepare(ModelSource.from_trained(trained), conversions)
    assert prepared.target == "litert" and prepared.artifact.suffix == ".tflite"
    assert prepared.notes["route"] == route
    assert prepared.sizes == {"artifact": prepared.artifact.stat().st_size}
    assert prepared.artifact.read_bytes()[4:8] == b"TFL3"

    with target.load(prepared, options={"profile": "host"}) as deployed:
        signature = deployed.signature()
        (inp,), (out,) = signature.inputs, signature.outputs
        assert (inp.dtype, inp.shape) == ("float32", input_shape)
        assert (out.dtype, out.shape) == ("float32", (None, 3))
        x, expected = trained.probe()
        outputs = deployed.predict({inp.name: x})
    assert list(outputs) == [out.name]
    assert parity(outputs[out.name], expected).max_abs_diff <= PARITY


def test_saved_model_deploys_and_a_second_prepare_hits_the_cache(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    spec = ModelSpec("dense", "tf_keras")
    source = ModelSource.from_path(saved_model(shared, spec))
    assert source.format == "saved_model"
    first = target.prepare(source, conversions)
    builds, hits = conversions.builds, conversions.hits
    again = target.prepare(source, conversions)
    assert again.artifact == first.artifact
    assert conversions.builds == builds and conversions.hits == hits + 1
    assert first.notes["route"] == "TFLiteConverter.from_saved_model"

    x, expected = trained_model(shared, spec).probe()
    with target.load(again) as deployed:
        name = deployed.signature().input_names()[0]
        assert max_abs_diff(only(deployed.predict({name: x})), expected) <= PARITY


def test_a_copy_of_the_model_elsewhere_hits_the_same_conversion(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache, tmp_path: Path) -> None:
    trained = trained_model(shared, ModelSpec("dense", "keras3"))
    first = target.prepare(ModelSource.from_trained(trained), conversions)
    moved = tmp_path / "elsewhere" / "model.keras"
    moved.parent.mkdir()
    shutil.copyfile(trained.model_file, moved)
    builds = conversions.builds
    assert target.prepare(ModelSource.from_path(moved), conversions).artifact == first.artifact
    assert conversions.builds == builds


def test_dynamic_range_quantisation_is_smaller_and_close(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    trained = trained_model(shared, ModelSpec("cnn", "tf_keras"))
    source = ModelSource.from_trained(trained)
    plain = target.prepare(source, conversions)
    dynamic = target.prepare(source, conversions, options={"quantize": "dynamic"})
    assert dynamic.notes["quantize"] == "dynamic"
    assert dynamic.sizes["artifact"] < 0.6 * plain.sizes["artifact"]
    x, expected = trained.probe()
    with target.load(dynamic, options={"profile": "low-end"}) as deployed:
        name = deployed.signature().input_names()[0]
        result = parity(only(deployed.predict({name: x})), expected)
    assert result.label_agreement == 1.0 and result.max_abs_diff <= 0.05


def test_converter_and_runtime_errors_keep_their_own_text(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    source = ModelSource.from_trained(trained_model(shared, ModelSpec("dense", "keras3")))
    with pytest.raises(ValueError, match=r"For full integer quantization, a `representative_dataset` must be specified"):
        target.prepare(source, conversions, options={"quantize": "int8"})
    with target.load(target.prepare(source, conversions)) as deployed:
        name = deployed.signature().input_names()[0]
        with pytest.raises(RuntimeFailure) as info:
            deployed.predict({name: np.zeros((2, 8), "float64")})
    assert info.value.runtime == "litert"
    assert "Got value of type FLOAT64 but expected type FLOAT32" in info.value.message


def test_bad_options_and_input_names_are_usage_errors(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    source = ModelSource.from_trained(trained_model(shared, ModelSpec("dense", "keras3")))
    with pytest.raises(UsageError, match="unknown LiteRT prepare option"):
        target.prepare(source, conversions, options={"quantise": "dynamic"})
    prepared = target.prepare(source, conversions)
    with pytest.raises(UsageError, match="unknown LiteRT device profile 'pixel-9'"):
        target.load(prepared, options={"profile": "pixel-9"})
    deployed = target.load(prepared)
    with pytest.raises(UsageError, match="do not match the model's inputs"):
        deployed.predict({"x": np.zeros((1, 8), "float32")})
    deployed.close()
    with pytest.raises(HarnessError, match="closed"):
        deployed.predict({})


def test_load_needs_an_active_target(shared: ArtifactCache, conversions: ArtifactCache) -> None:
    idle = LitertTarget()
    prepared = idle.prepare(ModelSource.from_trained(trained_model(shared, ModelSpec("dense", "keras3"))), conversions)
    with pytest.raises(HarnessError, match="used before activate"):
        idle.load(prepared)


def test_arm64_profile_matches_the_host_and_keras(
        target: LitertTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    reason = arm64_unavailable_reason()
    if reason is not None:
        pytest.skip(f"arm64 device: {reason}")
    trained = trained_model(shared, ModelSpec("dense", "keras3"))
    prepared = target.prepare(ModelSource.from_trained(trained), conversions)
    x, expected = trained.probe()
    with target.load(prepared, options={"profile": "arm64"}) as on_arm, target.load(prepared) as on_host:
        assert isinstance(on_arm, LitertDeployment) and on_arm.profile.arch == "arm64"
        assert on_arm.signature() == on_host.signature()
        name = on_arm.signature().input_names()[0]
        arm = only(on_arm.predict({name: x[:1]}))  # the allocated batch of one: no resizing under qemu
        host = only(on_host.predict({name: x[:1]}))
    assert max_abs_diff(arm, host) <= PARITY
    assert max_abs_diff(arm, expected[:1]) <= PARITY
