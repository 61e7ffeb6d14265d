"""``pitfalls reduce`` on Core ML: coremltools' conversion failures of check's failing models cut to
the layer (or the whole SavedModel) that shows them, and the written script, run fresh with
coremltools alone, fails with the same text (as reduce ran it and recorded in ``finding.json``;
the first test runs it once more itself from the written directory); off macOS a model that converts shows nothing, with
coremltools' own refusal to predict quoted."""

from __future__ import annotations

import json
from collections.abc import Iterator
import sys
from pathlib import Path

import pytest

from check_models import determinant_saved_model, require_targets
from check_models.reduce_models import FLEX_CULPRIT, flex_buried_keras, plain_mlp_keras, reproduced_by_reduce
from harness.artifacts import ArtifactCache
from harness.cli import main
from harness.reduce.api import reproducers
from harness.reduce.oracle import reused_workers
from harness.reduce.run import CANNOT_CUT, NOT_SHOWN, REDUCED, WHOLE_ONLY


@pytest.fixture(scope="module")
def cache() -> ArtifactCache:
    require_targets("coreml")
    return ArtifactCache()


@pytest.fixture(scope="module", autouse=True)
def one_worker_python() -> Iterator[None]:
    """The reductions of this file share one candidate worker (a Python that has imported the runtime
    already) instead of starting one each; every written script is still run in a fresh process."""
    with reused_workers():
        yield


def _reduce(model: Path, finding: str, out: Path) -> int:
    return main(["reduce", str(model), "--finding", finding, "--out", str(out), "-q"])


def _fails_the_same_fresh(out: Path, tmp_path: Path, sentence: str, run_here: bool = False) -> dict:
    """The script, run fresh, fails in coremltools' own words, with the key of the whole model's finding
    (as reduce ran it and recorded; ``run_here``: run by this test too, in one more fresh process)."""
    record = json.loads((out / "finding.json").read_text())
    assert "import harness" not in (out / "reproduce.py").read_text()
    assert json.loads((out / "versions.json").read_text())["coremltools"] != "missing"
    key = reproducers()["coreml"].key
    code, seen = reproduced_by_reduce(out, tmp_path / "home", key, run_here)
    assert code == 1 and seen["kind"] == "converter" and sentence in seen["text"], seen
    assert key(seen) == key(record["observed_on_model"])
    return record


def test_an_op_coremltools_cannot_convert_reduces_to_its_layer(cache: ArtifactCache, tmp_path: Path) -> None:
    """The bicubic Resizing among convolutions, on check's concrete-function route: coremltools has
    no conversion for ResizeBicubic; one layer is left and its script says so fresh."""
    out = tmp_path / "bicubic"
    assert _reduce(flex_buried_keras(cache), "coreml:concrete-function", out) == REDUCED
    record = _fails_the_same_fresh(out, tmp_path, "Conversion for TF op 'ResizeBicubic' not implemented",
                                   run_here=True)
    assert record["layers"] == [FLEX_CULPRIT] and record["layers_total"] == 7


def test_a_keras_file_as_given_is_refused_by_coremltools_on_any_one_layer(cache: ArtifactCache,
                                                                           tmp_path: Path) -> None:
    """check's bare `coreml` (the model as given): coremltools refuses a .keras path in its own words."""
    out = tmp_path / "as-given"
    assert _reduce(flex_buried_keras(cache), "coreml", out) == REDUCED
    record = _fails_the_same_fresh(out, tmp_path, "Input model path should be .h5/.hdf5 file or a directory")
    assert len(record["layers"]) == 1 and record["finding"] == "coreml:as-given"


@pytest.mark.parametrize(("make", "finding", "sentence"), [
    (determinant_saved_model, "coreml:as-given", "Conversion for TF op 'MatrixDeterminant' not implemented"),
    (determinant_saved_model, "coreml [edge]", "Conversion for TF op 'MatrixDeterminant' not implemented"),
    ("export", "coreml:as-given", "Only a single concrete function is supported"),
], ids=["det-module", "det-module-edge-probe", "keras3-export"])
def test_a_saved_model_coremltools_refuses_is_reproduced_whole(cache: ArtifactCache, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str], make: object,
                                                               finding: str, sentence: str) -> None:
    """check's failing SavedModels: the tf.linalg.det module, and a Keras 3 model.export (two concrete
    functions): no layers to cut, the whole SavedModel's script fails fresh as check saw it.  On a
    probe the script is fed it, and no calibration set is written (Core ML calibrates on nothing)."""
    if make == "export":
        import keras

        path = tmp_path / "exported"
        keras.models.load_model(plain_mlp_keras(cache), compile=False).export(str(path), verbose=False)
    else:
        path = make(cache)  # type: ignore[operator]
    out = tmp_path / "saved"
    assert _reduce(path, finding, out) == WHOLE_ONLY
    assert CANNOT_CUT in capsys.readouterr().out
    record = _fails_the_same_fresh(out, tmp_path, sentence)
    assert record["probe"] == ("edge" if "[edge]" in finding else "sample") and not (out / "calibration").exists()


@pytest.mark.skipif(sys.platform == "darwin", reason="on macOS Core ML predicts: the comparison runs")
def test_off_macos_a_model_that_converts_shows_nothing_in_coremltools_own_words(
        cache: ArtifactCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plain"
    assert _reduce(plain_mlp_keras(cache), "coreml:concrete-function", out) == NOT_SHOWN
    said = capsys.readouterr().out
    assert "nothing could be compared here" in said and "Model prediction is only supported on macOS" in said
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []
