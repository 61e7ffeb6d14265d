"""The Core ML deploy interface: prepare (coremltools, cached), signature from the spec, predict
on macOS only (a skip quoting coremltools elsewhere), and coremltools' own conversion errors.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from harness.artifacts import ArtifactCache
from harness.compare import max_abs_diff
from harness.errors import HarnessError, NotApplicable
from harness.models import ModelSpec, saved_model, trained_model
from harness.targets.base import ModelSource
from harness.targets.coreml.kit import MACOS_ONLY, on_macos, spec_summary
from harness.targets.coreml.target import CoremlTarget

pytestmark = pytest.mark.skipif(CoremlTarget.unavailable_reason() is not None,
                                reason=str(CoremlTarget.unavailable_reason()))


@pytest.fixture(scope="module")
def shared() -> ArtifactCache:
    return ArtifactCache()


@pytest.fixture(scope="module")
def conversions(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("coreml-conversions"))


@pytest.fixture(scope="module")
def target() -> Iterator[CoremlTarget]:
    with CoremlTarget() as t:
        yield t


def test_tf_keras_model_prepares_to_an_ml_program_with_its_sizes(
        target: CoremlTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    source = ModelSource.from_trained(trained_model(shared, ModelSpec("dense", "tf_keras")))
    assert source.format == "h5"
    prepared = target.prepare(source, conversions)
    assert prepared.target == "coreml" and prepared.artifact.suffix == ".mlpackage"
    assert prepared.notes["convert_to"] == "mlprogram" and prepared.notes["minimum_deployment_target"] == "iOS15"
    assert 0 < prepared.sizes["weights"] < prepared.sizes["artifact"]
    assert spec_summary(prepared.artifact)["model_type"] == "mlProgram"
    builds = conversions.builds
    assert target.prepare(source, conversions).artifact == prepared.artifact and conversions.builds == builds


def test_signature_comes_from_the_spec_and_predict_needs_macos(
        target: CoremlTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    trained = trained_model(shared, ModelSpec("dense", "tf_keras"))
    prepared = target.prepare(ModelSource.from_trained(trained), conversions)
    summary = spec_summary(prepared.artifact)
    with target.load(prepared) as deployed:
        signature = deployed.signature()
        (inp,), (out,) = signature.inputs, signature.outputs
        assert inp.name == summary["inputs"][0]["name"] and out.name == summary["outputs"][0]["name"]
        assert inp.dtype == "float32" and inp.shape[-1] == 8
        assert out.dtype == "float32" and out.shape == (None, 3)  # from the ML program's own types
        ranges = summary["inputs"][0]["ranges"]
        assert inp.shape[0] == (None if ranges and ranges[0][0] != ranges[0][1] else summary["inputs"][0]["shape"][0])
        x, expected = trained.probe()
        if on_macos():
            got = deployed.predict({inp.name: x[:1]})
            assert max_abs_diff(next(iter(got.values())), expected[:1]) < 1e-2
            return
        with pytest.raises(NotApplicable) as skipped:
            deployed.predict({inp.name: x[:1]})
    assert str(skipped.value).startswith(MACOS_ONLY)
    assert "Model prediction is only supported on macOS" in str(skipped.value)


def test_keras3_export_fails_with_coremltools_own_error(
        target: CoremlTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    exported = ModelSource.from_path(saved_model(shared, ModelSpec("dense", "keras3")))
    with pytest.raises(Exception, match="Only a single concrete function is supported") as info:
        target.prepare(exported, conversions)
    assert not isinstance(info.value, HarnessError)
    assert not type(info.value).__module__.startswith("harness")


def test_keras3_file_is_refused_by_coremltools(
        target: CoremlTarget, shared: ArtifactCache, conversions: ArtifactCache) -> None:
    keras_file = ModelSource.from_trained(trained_model(shared, ModelSpec("dense", "keras3")))
    with pytest.raises(ValueError, match=r"Input model path should be \.h5/\.hdf5 file or a directory"):
        target.prepare(keras_file, conversions)
