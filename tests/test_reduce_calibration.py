"""``pitfalls reduce --calibration FILE.npz``: int8 calibrated on the user's set, as ``check
--calibration`` calibrates it; the set's values at the reduced model's inputs are written beside
the reproducer and its script, run fresh, shows what the whole model showed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from check_models import require_targets
from check_models.reduce_models import plain_mlp_keras, reproduced_by_reduce
from harness.artifacts import ArtifactCache
from harness.cli import main
from harness.reduce.api import RESULT_PREFIX, reproducers
from harness.reduce.run import REDUCED, WHOLE_ONLY


def test_a_calibration_set_far_narrower_than_the_inputs_makes_int8_diverge(tmp_path: Path) -> None:
    """The plain MLP stays within int8's tolerance when calibrated on its sample (test_reduce_litert);
    calibrated on a set a thousand times narrower, the sample saturates the int8 ranges and the model
    diverges: reduce, given that set with --calibration, writes it at the window's inputs and the
    script, run fresh, calibrates on it and shows the divergence."""
    require_targets("litert")
    import numpy as np

    from harness.check.model import load_model, synthesise_inputs
    from harness.targets.base import ModelSource

    path = plain_mlp_keras(ArtifactCache())
    sample = synthesise_inputs(load_model(ModelSource.from_path(path)))
    narrow = tmp_path / "narrow.npz"
    np.savez(narrow, **{name: (value * 1e-3).astype(value.dtype) for name, value in sample.items()})
    out = tmp_path / "repro"
    code = main(["reduce", str(path), "--finding", "litert:int8", "--calibration", str(narrow), "--out", str(out),
                 "-q"])
    assert code in (REDUCED, WHOLE_ONLY)
    record = json.loads((out / "finding.json").read_text())
    assert record["calibrated"] and record["calibration_file"] == "narrow.npz" and record["probe"] == "sample"
    assert record["observed_on_model"]["kind"] == "divergence"
    calibration = sorted((out / "calibration").glob("*.npy"))
    inputs = sorted((out / "inputs").glob("*.npy"))
    assert [p.name for p in calibration] == [p.name for p in inputs]
    if record["window"][0] == 0:  # the window starts at the model's input: the values are the set itself
        assert np.allclose(np.load(calibration[0]), np.load(narrow)[calibration[0].stem])
    assert "the --calibration set `narrow.npz`" in (out / "README.md").read_text()
    # reduce's own run of the written script, fresh, as it recorded it (test_reduce_litert's first test runs a
    # written Keras reproducer once more itself and finds what reduce recorded)
    code, seen = reproduced_by_reduce(out, tmp_path / "home", reproducers()["litert"].key)
    assert code == 1 and seen["kind"] == "divergence", seen
    assert reproducers()["litert"].key(seen) == reproducers()["litert"].key(record["observed_on_model"])


def test_a_finding_on_the_calibration_set_needs_that_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check's label `litert int8 [--calibration cal.npz]` without that file: one line, exit 2, nothing written."""
    out = tmp_path / "repro"
    code = main(["reduce", str(tmp_path / "model.keras"), "--finding", "litert int8 [--calibration cal.npz]",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "give that file with --calibration" in err and not out.exists()
    assert RESULT_PREFIX not in err
