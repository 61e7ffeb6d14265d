"""The Core ML target: conversion through the cache, spec reading, compression, macOS-only predict.

Everything except prediction runs on Linux with the real coremltools.  The trained models and
their SavedModels come from the shared artifact cache; conversions go to a per-test cache so that
cache hits and misses can be observed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactCache
from harness.errors import HarnessError, NotApplicable
from harness.models import ModelSpec, saved_model, trained_model
from harness.compare import max_abs_diff
from harness.targets.coreml.convert import compress_weights, convert_to_coreml
from harness.targets.coreml.kit import (MACOS_ONLY, image_preprocessing, mil_operations, on_macos, package_bytes,
                                        spec_summary, weight_bytes)
from harness.targets.coreml.target import CoremlTarget

pytestmark = pytest.mark.skipif(CoremlTarget.unavailable_reason() is not None,
                                reason=str(CoremlTarget.unavailable_reason()))


@pytest.fixture(scope="module")
def dense_saved_model() -> Path:
    return saved_model(ArtifactCache(), ModelSpec("dense", "tf_keras"))


@pytest.fixture(scope="module")
def rgb_saved_model() -> Path:
    return saved_model(ArtifactCache(), ModelSpec("rgb_cnn", "tf_keras"))


@pytest.fixture(scope="module")
def conversions(tmp_path_factory: pytest.TempPathFactory) -> ArtifactCache:
    return ArtifactCache(tmp_path_factory.mktemp("coreml-cache"))


def test_conversion_is_cached_and_spec_describes_the_model(conversions: ArtifactCache, dense_saved_model: Path) -> None:
    first = convert_to_coreml(conversions, dense_saved_model)
    builds = conversions.builds
    again = convert_to_coreml(conversions, dense_saved_model)
    assert again == first and conversions.builds == builds and conversions.hits >= 1
    summary = spec_summary(first)
    assert summary["model_type"] == "mlProgram" and first.suffix == ".mlpackage"
    assert summary["inputs"][0]["type"] == "multiArrayType"
    assert summary["inputs"][0]["shape"][-1] == 8 and summary["inputs"][0]["dtype"] == "FLOAT32"
    assert 0 < weight_bytes(first) < package_bytes(first)


def test_neuralnetwork_format_is_a_single_file(conversions: ArtifactCache, dense_saved_model: Path) -> None:
    model = convert_to_coreml(conversions, dense_saved_model,
                              options={"convert_to": "neuralnetwork", "minimum_deployment_target": "iOS14"})
    assert model.is_file() and model.suffix == ".mlmodel"
    assert spec_summary(model)["model_type"] == "neuralNetwork"
    assert weight_bytes(model) == package_bytes(model)
    assert mil_operations(model) == []


def test_inputs_factory_needs_a_label(conversions: ArtifactCache, dense_saved_model: Path) -> None:
    def fixed_batch(ct: Any) -> list[Any]:
        return [ct.TensorType(shape=(1, 8))]

    with pytest.raises(HarnessError, match="label"):
        convert_to_coreml(conversions, dense_saved_model, inputs=fixed_batch)
    model = convert_to_coreml(conversions, dense_saved_model, inputs=fixed_batch, label="batch 1")
    assert spec_summary(model)["inputs"][0]["ranges"] == []


def test_conversion_errors_keep_coremltools_text(conversions: ArtifactCache, dense_saved_model: Path) -> None:
    def unbounded(ct: Any) -> list[Any]:
        return [ct.TensorType(shape=(ct.RangeDim(lower_bound=1), 8))]

    with pytest.raises(ValueError, match="infinite upper_bound is not allowed"):
        convert_to_coreml(conversions, dense_saved_model, inputs=unbounded, label="unbounded")
    keras3_file = trained_model(ArtifactCache(), ModelSpec("dense", "keras3")).model_file
    with pytest.raises(ValueError, match=r"should be \.h5/\.hdf5 file or a directory"):
        convert_to_coreml(conversions, keras3_file)


def test_image_preprocessing_reads_scale_and_bias(conversions: ArtifactCache, rgb_saved_model: Path) -> None:
    def plain(ct: Any) -> list[Any]:
        return [ct.ImageType(shape=(1, 16, 16, 3))]

    def scaled(ct: Any) -> list[Any]:
        return [ct.ImageType(shape=(1, 16, 16, 3), scale=2 / 255, bias=[-1.0, -1.0, -1.0])]

    raw = image_preprocessing(convert_to_coreml(conversions, rgb_saved_model, inputs=plain, label="plain"))
    assert list(raw.values()) == [{"scale": [1.0], "bias": [0.0]}]
    model = convert_to_coreml(conversions, rgb_saved_model, inputs=scaled, label="scaled")
    (pre,) = image_preprocessing(model).values()
    assert pre["scale"] == pytest.approx([2 / 255]) and pre["bias"] == pytest.approx([-1.0, -1.0, -1.0])
    assert spec_summary(model)["inputs"][0]["type"] == "imageType"
    assert mil_operations(model)[:4].count("mul") == 1


def test_compress_weights_respects_the_threshold(conversions: ArtifactCache) -> None:
    package = convert_to_coreml(conversions, saved_model(ArtifactCache(), ModelSpec("cnn", "tf_keras")))
    untouched = compress_weights(conversions, package, method="linear", config={"mode": "linear_symmetric"})
    quantized = compress_weights(conversions, package, method="linear",
                                 config={"mode": "linear_symmetric", "weight_threshold": 256})
    palettized = compress_weights(conversions, package, method="palettize",
                                  config={"mode": "uniform", "nbits": 4, "weight_threshold": 256})
    assert weight_bytes(untouched) == weight_bytes(package)
    assert weight_bytes(quantized) < 0.7 * weight_bytes(package)
    assert weight_bytes(palettized) < weight_bytes(quantized)
    assert "constexpr_affine_dequantize" in mil_operations(quantized)
    with pytest.raises(ValueError, match="unknown compression method"):
        compress_weights(conversions, package, method="prune", config={})


def test_predict_skips_off_macos_quoting_coremltools(conversions: ArtifactCache, dense_saved_model: Path) -> None:
    model = convert_to_coreml(conversions, dense_saved_model)
    x, expected = trained_model(ArtifactCache(), ModelSpec("dense", "tf_keras")).probe()
    name = spec_summary(model)["inputs"][0]["name"]
    with CoremlTarget() as target:
        assert target.versions()["coremltools"] != "missing" and "os" in target.versions()
        if on_macos():
            out = target.predict(model, {name: x[:1]})
            assert max_abs_diff(next(iter(out.values())), expected[:1]) < 1e-2
            assert max_abs_diff(target.predict_array(model, x[:4]), expected[:4]) < 1e-2
            return
        with pytest.raises(NotApplicable) as skipped:
            target.predict(model, {name: x[:1]})
        with pytest.raises(NotApplicable):
            target.predict_array(model, x[:1])
        assert target.open_model(model) is target.open_model(model)  # opened once per path
    assert str(skipped.value).startswith(MACOS_ONLY)
    assert "Model prediction is only supported on macOS" in str(skipped.value)
