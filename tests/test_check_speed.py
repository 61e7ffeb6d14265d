"""``pitfalls check`` does each costly thing once: counted, never timed.

The counts (:mod:`harness.counts`) are what the report's ``counts`` sections hold: one browser
launch and one server per check, the reference computed once per distinct feed, every artifact
built once.  No test here reads a duration (the machine may be as busy as it likes).
"""

from __future__ import annotations

import contextvars
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.counts import as_dict, count, counting
from harness.paths import REPO_ROOT
from harness.targets.base import ModelSource

from check_models import require_targets


def test_tallies_nest_and_follow_work_into_threads() -> None:
    count("outside any tally")  # counted nowhere, and no error
    with counting() as outer:
        count("model loads")
        with counting() as inner:
            count("model loads", 2)
            workers = [threading.Thread(target=contextvars.copy_context().run, args=(count, "browser launches"))
                       for _ in range(3)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
        count("servers started")
    assert as_dict(inner) == {"browser launches": 3, "model loads": 2}
    assert as_dict(outer) == {"browser launches": 3, "model loads": 3, "servers started": 1}


def test_the_reference_is_computed_once_per_distinct_feed(tmp_path: Path) -> None:
    """The same arrays again (a copy, not the same object) reuse the reference; other rows, another
    dtype or another shape are another feed; an error is kept for its feed too."""
    import keras
    import numpy as np

    from harness.check.model import load_model, reference_outputs
    from harness.check.steps import reference_or_none

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    keras.Model(inputs, keras.layers.Dense(3)(inputs)).save(tmp_path / "m.keras")
    model = load_model(ModelSource.from_path(tmp_path / "m.keras"))
    sample = {"x": np.arange(16, dtype="float32").reshape(4, 4)}
    with counting() as tally:
        first = reference_outputs(model, sample)
        again = reference_outputs(model, {"x": sample["x"].copy()})
        rows = reference_outputs(model, {"x": sample["x"][:2]})
        reference_outputs(model, {"x": sample["x"][:2].copy()})
        failed = reference_or_none(model, {"x": np.ones((2, 5), dtype="float32")})  # Dense(4 -> 3) cannot take 5
        failed_again = reference_or_none(model, {"x": np.ones((2, 5), dtype="float32")})
    assert as_dict(tally) == {"reference computations": 3, "references reused": 3}
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_allclose(rows[0], first[0][:2], rtol=1e-5, atol=1e-5)
    assert failed[0] is None and failed[1] is not None and failed_again[1] is not None
    assert failed[1].text == failed_again[1].text


def test_jobs_variable_that_is_not_a_number_is_one_line_and_exit_2(tmp_path: Path) -> None:
    model = tmp_path / "m.keras"
    model.write_bytes(b"")  # never read: the variable is refused before the model is opened
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(model), "--json"], cwd=REPO_ROOT,
                          capture_output=True, text=True, env=dict(os.environ, PITFALLS_CHECK_JOBS="two"))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "PITFALLS_CHECK_JOBS='two'" in done.stderr


def test_jobs_variable_is_read_as_a_number_of_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.check.run import check_jobs
    from harness.errors import UsageError

    monkeypatch.delenv("PITFALLS_CHECK_JOBS", raising=False)
    assert check_jobs(4) == 4  # every target at once
    monkeypatch.setenv("PITFALLS_CHECK_JOBS", "1")
    assert check_jobs(4) == 1
    monkeypatch.setenv("PITFALLS_CHECK_JOBS", "9")
    assert check_jobs(3) == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("PITFALLS_CHECK_JOBS", bad)
        with pytest.raises(UsageError, match="PITFALLS_CHECK_JOBS"):
            check_jobs(4)


@pytest.mark.slow
def test_side_by_side_check_starts_each_runtime_once_and_keeps_the_order(tmp_path: Path) -> None:
    """The command line runs the targets side by side: one browser launch for every tf.js backend,
    one serving container, the reference once per distinct feed, the report in the asked order,
    and the same verdicts and parities as one after the other."""
    require_targets("tfjs", "tfserving")
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.models import ModelSpec, trained_model

    model = trained_model(ArtifactCache(), ModelSpec("dense", "keras3")).model_file
    reports = {}
    for jobs in ("2", "1"):
        done = subprocess.run([sys.executable, "-m", "harness", "check", str(model), "--targets", "tfjs,tfserving",
                               "--json", "-q"], cwd=REPO_ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PITFALLS_CHECK_JOBS=jobs))
        assert done.returncode == 0, done.stderr[-3000:]
        reports[jobs] = json.loads(done.stdout)
    side_by_side, one_by_one = reports["2"], reports["1"]
    assert list(side_by_side["targets"]) == ["tfjs", "tfserving"]
    tfjs, serving = side_by_side["targets"]["tfjs"], side_by_side["targets"]["tfserving"]
    backends = [label for label in tfjs["parity"] if "[" not in label]
    assert len(backends) >= 2 and tfjs["counts"]["browser launches"] == 1
    assert tfjs["counts"]["model loads"] == len(backends)
    assert serving["counts"]["servers started"] == 1 and serving["counts"]["model loads"] == 1
    assert serving["counts"].get("serving containers started", 0) <= 1  # none in a host process
    assert "waiting" in tfjs["timings"]  # started while the model loaded, then waited for it
    # feeds: the sample and its probes (all rows: serving), the sample's first rows (the browser
    # backends) and the first rows of each probe each backend is fed (fewer on the slow ones)
    from harness.targets.tfjs.backends import check_backends
    from harness.targets.tfjs.checks import BROWSER_ROWS

    probes = len(side_by_side["inputs"]["probes"])
    probe_rows = [min(b.probe_rows, BROWSER_ROWS) for b in check_backends()]
    assert len(backends) == len(probe_rows) and min(probe_rows) < BROWSER_ROWS  # cpu: one row of each probe
    assert side_by_side["counts"]["reference computations"] == 2 + probes * (1 + len(set(probe_rows)))
    # every predict is a sample or a probe: the warm predict timed is the first probe's, not a repeat
    rows = side_by_side["inputs"]["rows"]
    assert serving["counts"]["predictions"] == 1 + probes + 1  # REST: the sample and each probe; gRPC: the sample
    assert serving["counts"]["rows predicted"] == rows * (1 + probes + 1)
    assert tfjs["counts"]["predictions"] == len(backends) * (1 + probes)
    assert tfjs["counts"]["rows predicted"] == sum(BROWSER_ROWS + probes * n for n in probe_rows)
    assert all(f"{label}.warm_predict_s" in tfjs["figures"] for label in backends)
    for name in ("tfjs", "tfserving"):  # the whole check's counts hold its targets'
        for what, n in side_by_side["targets"][name]["counts"].items():
            assert side_by_side["counts"][what] >= n
    for name in ("tfjs", "tfserving"):
        fast, slow = side_by_side["targets"][name], one_by_one["targets"][name]
        assert fast["verdict"] == slow["verdict"] and sorted(fast["parity"]) == sorted(slow["parity"])
        for label in fast["parity"]:
            assert np.isclose(fast["parity"][label]["max_abs_diff"], slow["parity"][label]["max_abs_diff"],
                              rtol=0, atol=1e-6, equal_nan=True)  # webgl-f16 overflows on the edge probe: NaN both ways
    assert "load model" in side_by_side["timings"] and "targets" in side_by_side["timings"]
    assert any(step.startswith("load tfjs@") for step in tfjs["timings"])
