"""``pitfalls reduce`` on real failing models and the real LiteRT runtime: each model is cut to a
reproducer of at most a few layers, and the script written is run as a person would run it (the
virtual environment's Python, a clean environment without PYTHONPATH, in a fresh process) and must
fail the same way.  reduce runs it so itself before it writes the directory and records what that
run printed (``finding.json``); the tests read that record, and a Keras model's and a SavedModel's
test also run the written script themselves from the directory and find the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from check_models import determinant_saved_model, require_targets
from check_models.wild import batch_dependent_saved_model, module_saved_model
from check_models.reduce_models import (FLEX_CULPRIT, QUANTISED_CULPRIT, flex_buried_h5, flex_buried_keras,
                                        plain_mlp_keras, quantisation_outlier_keras, reproduced_by_reduce,
                                        run_reproducer_fresh)
from harness.artifacts import ArtifactCache
from harness.cli import main
from harness.reduce.api import reproducers
from harness.reduce.oracle import reused_workers
from harness.reduce.run import CANNOT_CUT, NOT_SHOWN, REDUCED, WHOLE_ONLY


@pytest.fixture(scope="module")
def cache() -> ArtifactCache:
    require_targets("litert")
    return ArtifactCache()


@pytest.fixture(scope="module", autouse=True)
def one_worker_python() -> Iterator[None]:
    """The reductions of this file share one candidate worker (a Python that has imported the runtime
    already) instead of starting one each; every written script is still run in a fresh process."""
    with reused_workers():
        yield


def _reduce(model: Path, finding: str, out: Path) -> int:
    return main(["reduce", str(model), "--finding", finding, "--out", str(out), "-q"])


def _reduced_layers(out: Path) -> list[str]:
    return json.loads((out / "finding.json").read_text())["layers"]


def _check_written(out: Path, tmp_path: Path, kind: str, model_file: str = "model.keras",
                   extra: tuple[str, ...] = (), run_here: bool = False) -> dict[str, Any]:
    """The directory holds what a bug report needs, and its script fails the same way fresh (as
    reduce ran it and recorded; ``run_here``: run by this test too, in one more fresh process)."""
    assert sorted(p.name for p in out.iterdir()) == sorted(["README.md", "finding.json", "inputs", model_file,
                                                           "reproduce.py", "versions.json", *extra])
    assert "import harness" not in (out / "reproduce.py").read_text()
    versions = json.loads((out / "versions.json").read_text())
    assert versions["tensorflow"] != "missing" and versions["ai-edge-litert"] != "missing"
    record = json.loads((out / "finding.json").read_text())
    key = reproducers()["litert"].key
    code, seen = reproduced_by_reduce(out, tmp_path / "home", key, run_here)
    assert code == 1 and seen["kind"] == kind, seen
    assert key(seen) == key(record["observed_on_model"]), "the reproducer fails differently from the model"
    assert record["observed_on_model"]["kind"] == kind
    return seen


def test_a_buried_unsupported_op_reduces_to_its_layer_and_the_converter_fails_the_same(
        cache: ArtifactCache, tmp_path: Path) -> None:
    out = tmp_path / "flex"
    assert _reduce(flex_buried_keras(cache), "litert:float32", out) == REDUCED
    assert _reduced_layers(out) == [FLEX_CULPRIT]
    seen = _check_written(out, tmp_path, "converter", run_here=True)
    assert "Some ops are not supported by the native TFLite runtime" in seen["text"]
    assert "tf.ResizeBicubic" in seen["text"]
    assert "Some ops are not supported" in (out / "README.md").read_text()


def test_a_tf_keras_h5_model_reduces_the_same_way(cache: ArtifactCache, tmp_path: Path) -> None:
    out = tmp_path / "h5"
    assert _reduce(flex_buried_h5(cache), "litert:float32", out) == REDUCED
    assert _reduced_layers(out) == [FLEX_CULPRIT]
    seen = _check_written(out, tmp_path, "converter", model_file="model.h5")
    assert "tf.ResizeBicubic" in seen["text"] and "'keras': 'tf_keras'" in (out / "reproduce.py").read_text()


def test_select_tf_ops_reduces_to_the_op_this_interpreter_refuses(cache: ArtifactCache, tmp_path: Path) -> None:
    out = tmp_path / "flex-runtime"
    assert _reduce(flex_buried_keras(cache), "litert:select_tf_ops", out) == REDUCED
    assert _reduced_layers(out) == [FLEX_CULPRIT]
    seen = _check_written(out, tmp_path, "runtime")
    assert "is(are) not supported by this interpreter" in seen["text"] and "FlexResizeBicubic" in seen["text"]


def test_a_layer_diverging_under_quantisation_reduces_to_that_layer(cache: ArtifactCache, tmp_path: Path) -> None:
    out = tmp_path / "dynamic"
    assert _reduce(quantisation_outlier_keras(cache), "litert:dynamic", out) == REDUCED
    assert len(_reduced_layers(out)) <= 2 and QUANTISED_CULPRIT in _reduced_layers(out)
    seen = _check_written(out, tmp_path, "divergence")
    assert seen["max_abs_diff"] > seen["bound"]


def test_a_finding_the_model_does_not_show_writes_nothing_and_exits_1(
        cache: ArtifactCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plain"
    assert _reduce(plain_mlp_keras(cache), "litert:float32", out) == NOT_SHOWN == 1
    assert "does not show a finding" in capsys.readouterr().out
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == [], "something was left behind"


@pytest.mark.parametrize(("model", "finding", "kind", "text", "run_here"), [
    (determinant_saved_model, "litert:float32", "converter", "Some ops are not supported by the native TFLite runtime",
     True),
    (batch_dependent_saved_model, "litert:int8", "divergence", None, False),
], ids=["det-converter", "batch-dependent-int8"])
def test_a_saved_model_cannot_be_cut_and_its_whole_model_reproducer_fails_the_same(
        cache: ArtifactCache, tmp_path: Path, capsys: pytest.CaptureFixture[str], model: Any, finding: str, kind: str,
        text: str | None, run_here: bool) -> None:
    """The failing tf.Module SavedModels of check's tests: no layer graph to cut, said in one line;
    the reproducer is the whole SavedModel and its script fails the same way in a fresh process."""
    out = tmp_path / "saved"
    assert _reduce(model(cache), finding, out) == WHOLE_ONLY
    assert CANNOT_CUT in capsys.readouterr().out
    seen = _check_written(out, tmp_path, kind, model_file="saved_model", run_here=run_here)
    record = json.loads((out / "finding.json").read_text())
    assert record["cannot_reduce"] == CANNOT_CUT and record["layers"] == []
    assert "whole SavedModel" in (out / "README.md").read_text()
    if text is not None:
        assert text in seen["text"] and "MatrixDeterminant" in seen["text"]
    else:
        assert seen["max_abs_diff"] > seen["bound"]


def _arrays(directory: Path) -> dict[str, Any]:
    import numpy as np

    return {p.stem: np.load(p, allow_pickle=False) for p in sorted(directory.glob("*.npy"))}


def _check_feeds(model_path: Path, out: Path, probe: str) -> None:
    """The reproducer's inputs are exactly check's ``probe`` and its calibration set check's sample
    (the model's own inputs: the kept window starts at the first layer)."""
    import numpy as np

    from harness.check.model import load_model, synthesise_inputs, synthesise_probes
    from harness.targets.base import ModelSource

    loaded = load_model(ModelSource.from_path(model_path))
    for written, made in ((_arrays(out / "inputs"), synthesise_probes(loaded)[probe]),
                          (_arrays(out / "calibration"), synthesise_inputs(loaded))):
        assert written.keys() == made.keys() and all(np.array_equal(written[k], made[k]) for k in made)


def test_a_saved_model_diverging_only_on_checks_wide_probe_is_reproduced_on_that_probe(
        cache: ArtifactCache, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The two-signature tf.Module of check's tests: int8 keeps within tolerance on the sample and
    leaves it on check's `wide` probe.  On the sample reduce exits 1 and says which probes to try;
    with check's label `litert int8 [wide]` it feeds exactly that probe, calibrates on the sample as
    check does, and the script diverges in a fresh process; calibrated on the probe itself instead,
    the same script shows nothing (so the calibration set written beside it is what makes it)."""
    import shutil

    path = module_saved_model(cache)
    assert _reduce(path, "litert:int8", tmp_path / "sample") == NOT_SHOWN
    assert "pass --probe wide|edge" in capsys.readouterr().out and not (tmp_path / "sample").exists()
    out = tmp_path / "wide"
    assert _reduce(path, "litert int8 [wide]", out) == WHOLE_ONLY
    seen = _check_written(out, tmp_path, "divergence", model_file="saved_model", extra=("calibration",))
    assert seen["max_abs_diff"] > seen["bound"]
    record = json.loads((out / "finding.json").read_text())
    assert record["probe"] == "wide" and "`wide` probe" in (out / "README.md").read_text()
    _check_feeds(path, out, "wide")
    shutil.rmtree(out / "calibration")
    code, alone, stdout = run_reproducer_fresh(out, tmp_path / "home")
    assert code == 0 and alone["kind"] == "none", stdout[-2000:]


def test_a_keras_model_diverging_on_checks_wide_probe_reduces_with_the_samples_calibration(
        cache: ArtifactCache, tmp_path: Path) -> None:
    """--probe wide on a Keras MLP: the window is cut with the probe's values at its boundary and
    the sample's beside them for int8 calibration; one layer is left and fails fresh."""
    out = tmp_path / "mlp"
    path = plain_mlp_keras(cache)
    assert main(["reduce", str(path), "--finding", "litert:int8", "--probe", "wide", "--out", str(out), "-q"]) == REDUCED
    seen = _check_written(out, tmp_path, "divergence", extra=("calibration",))
    assert _reduced_layers(out) == ["hidden"] and seen["max_abs_diff"] > seen["bound"]
    _check_feeds(path, out, "wide")
