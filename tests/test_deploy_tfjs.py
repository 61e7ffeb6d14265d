"""The tfjs deploy interface end to end: prepare (the real converter) -> load in Chromium -> signature -> predict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.artifacts import ArtifactCache
from harness.compare import parity
from harness.errors import RuntimeFailure, UsageError
from harness.models import ModelSpec, trained_model
from harness.targets.base import ModelSource, TensorSpec
from harness.targets.tfjs.kit import custom_model
from harness.plugin import TargetPool
from harness.targets.tfjs.target import TfjsDeployment, TfjsTarget

KERAS3, TF_KERAS = ModelSpec("dense", "keras3"), ModelSpec("dense", "tf_keras")


@pytest.fixture()
def target(pitfalls_targets: TargetPool) -> TfjsTarget:
    """The session's one browser, as scenarios get it."""
    if TfjsTarget.unavailable_reason():
        pytest.skip(f"tfjs target not available here: {TfjsTarget.unavailable_reason()}")
    found = pitfalls_targets.get("tfjs")
    assert isinstance(found, TfjsTarget)
    return found


@pytest.mark.parametrize("backend", ["cpu", "wasm"])
def test_graph_model_from_keras3_file(target: TfjsTarget, pitfalls_cache: ArtifactCache, backend: str) -> None:
    trained = trained_model(pitfalls_cache, KERAS3)
    prepared = target.prepare(ModelSource.from_trained(trained), pitfalls_cache, options={"backend": backend})
    assert prepared.target == "tfjs" and prepared.notes["format"] == "graph"
    assert "--output_format=tfjs_graph_model" in prepared.notes["converter_args"]
    assert (prepared.artifact / "model.json").is_file()
    assert prepared.sizes["shards"] >= 1 and prepared.sizes["model_json"] > 0
    assert prepared.sizes["weights"] == sum(p.stat().st_size for p in prepared.artifact.glob("*.bin"))
    # 8*16 + 16 + 16*3 + 3 float32 parameters
    assert prepared.sizes["weights"] == 4 * (8 * 16 + 16 + 16 * 3 + 3)
    with target.load(prepared, options={"backend": backend}) as deployed:
        assert isinstance(deployed, TfjsDeployment)
        signature = deployed.signature()
        assert signature.inputs == (TensorSpec("input_layer", "float32", (None, 8)),)
        assert [(t.dtype, t.shape) for t in signature.outputs] == [("float32", (None, 3))]
        assert deployed.page.evaluate("() => tf.getBackend()") == backend
        x, want = trained.probe()
        got = deployed.predict({"input_layer": x})
        assert list(got) == signature.output_names()
        out = got[signature.outputs[0].name]
        assert out.dtype.name == "float32" and out.shape == want.shape
        assert parity(out, want).max_abs_diff <= 1e-4
    assert deployed.closed
    with pytest.raises(Exception):
        deployed.page.evaluate("() => 1")  # its browser context is gone


def test_layers_model_from_tf_keras_h5_on_webgl(target: TfjsTarget, pitfalls_cache: ArtifactCache) -> None:
    trained = trained_model(pitfalls_cache, TF_KERAS)
    options = {"format": "layers", "backend": "webgl"}
    with target.deploy(ModelSource.from_trained(trained), pitfalls_cache, options=options) as deployed:
        assert deployed.prepared.notes["converter_args"] == ["--input_format=keras"]
        signature = deployed.signature()
        assert signature.inputs == (TensorSpec("input_1", "float32", (None, 8)),)
        assert signature.outputs == (TensorSpec("dense_1", "float32", (None, 3)),)
        x, want = trained.probe()
        got = deployed.predict({"input_1": x})
        assert parity(got["dense_1"], want).max_abs_diff <= 1e-4


def test_prepare_is_cached_by_content(target: TfjsTarget, pitfalls_cache: ArtifactCache, tmp_path: Path) -> None:
    trained = trained_model(pitfalls_cache, TF_KERAS)
    first = target.prepare(ModelSource.from_trained(trained), pitfalls_cache)
    builds, hits = pitfalls_cache.builds, pitfalls_cache.hits
    assert target.prepare(ModelSource.from_trained(trained), pitfalls_cache).artifact == first.artifact
    assert (pitfalls_cache.builds, pitfalls_cache.hits) == (builds, hits + 2)  # the export and the conversion
    # The same model file kept at two other paths, in a cache that is then moved: keys hold content, not paths.
    copies = [tmp_path / name / "model.h5" for name in ("a", "b")]
    for copy in copies:
        copy.parent.mkdir()
        shutil.copyfile(trained.model_file, copy)
    cache = ArtifactCache(tmp_path / "cache")
    built = target.prepare(ModelSource.from_path(copies[0]), cache)
    assert cache.builds == 2
    assert target.prepare(ModelSource.from_path(copies[1]), cache).artifact == built.artifact
    (tmp_path / "cache").rename(tmp_path / "moved")
    moved = ArtifactCache(tmp_path / "moved")
    again = target.prepare(ModelSource.from_path(copies[0]), moved)
    assert (moved.builds, moved.hits) == (0, 2)
    assert again.artifact == tmp_path / "moved" / built.artifact.relative_to(tmp_path / "cache")


def test_unsupported_op_surfaces_the_converters_error(target: TfjsTarget, pitfalls_cache: ArtifactCache) -> None:
    model = custom_model(pitfalls_cache, "softsign")
    with pytest.raises(RuntimeFailure) as info:
        target.prepare(ModelSource.from_path(model.saved_model), pitfalls_cache)
    assert (info.value.runtime, info.value.kind) == ("tensorflowjs converter", "ValueError")
    assert "Unsupported Ops in the model before optimization" in info.value.message
    assert "Softsign" in info.value.message
    assert "stderr of `tensorflowjs_converter" in info.value.source


def test_keras3_file_as_layers_model_fails_in_the_converter(target: TfjsTarget, pitfalls_cache: ArtifactCache) -> None:
    source = ModelSource.from_trained(trained_model(pitfalls_cache, KERAS3))
    with pytest.raises(RuntimeFailure, match=r"file signature not found") as info:
        target.prepare(source, pitfalls_cache, options={"format": "layers"})
    assert info.value.runtime == "tensorflowjs converter"


def test_page_errors_and_bad_inputs(target: TfjsTarget, pitfalls_cache: ArtifactCache) -> None:
    trained = trained_model(pitfalls_cache, TF_KERAS)
    source = ModelSource.from_trained(trained)
    with pytest.raises(UsageError, match="format='onnx'"):
        target.prepare(source, pitfalls_cache, options={"format": "onnx"})
    with pytest.raises(UsageError, match="quantize"):
        target.prepare(source, pitfalls_cache, options={"quantize": True})
    prepared = target.prepare(source, pitfalls_cache)
    with pytest.raises(UsageError, match="backend='gpu'"):
        target.load(prepared, options={"backend": "gpu"})
    with target.load(prepared) as deployed:
        x = trained.probe()[0]
        with pytest.raises(UsageError, match=r"do not match the model's inputs \['input_1'\]"):
            deployed.predict({"x": x})
        # An int32 tensor for a float32 graph input: tf.js's own check, passed through verbatim.
        with pytest.raises(RuntimeFailure, match=r"must be float32, but was int32") as info:
            deployed.predict({"input_1": x.astype("int32")})
        assert info.value.runtime == "tfjs/chromium"
