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
from typing import TYPE_CHECKING

import pytest

from harness.counts import as_dict, count, counting
from harness.paths import REPO_ROOT
from harness.targets.base import ModelSource

if TYPE_CHECKING:
    from harness.plugin import TargetPool

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
    # every backend's page started loading before any was waited for, and every predict it made was
    # queued in its page ahead (none sent again when the check went through the backends in turn)
    assert tfjs["counts"]["pages loading side by side"] == len(backends)
    assert tfjs["counts"]["predictions started ahead"] == tfjs["counts"]["predictions"]
    assert serving["counts"]["requests sent side by side"] == probes  # after the sample's, alone: first predict
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


def test_tfjs_pages_load_and_predict_side_by_side_and_a_failing_page_is_its_own_backends(
        pitfalls_targets: "TargetPool", tmp_path: Path) -> None:
    """``TfjsTarget.side_by_side``: every backend's page is started before any is waited for and its
    feeds are queued in it; the common path's loads and predicts then collect them.  A prediction
    tf.js refuses in one page (a feed of the wrong shape) is raised, with tf.js's own text, by that
    page's predict only (the same text as when sent directly); a page whose start failed raises by
    its own load only; the pages not loaded are closed at the end of the block."""
    require_targets("tfjs")
    import keras
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.errors import HarnessError, RuntimeFailure
    from harness.targets.tfjs.target import TfjsDeployment, TfjsTarget

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(inputs))).save(tmp_path / "m.keras")
    model = keras.models.load_model(tmp_path / "m.keras")
    target = pitfalls_targets.get("tfjs")
    assert isinstance(target, TfjsTarget)
    prepared = target.prepare(ModelSource.from_path(tmp_path / "m.keras"), ArtifactCache(tmp_path / "cache"))
    good = {"x": np.linspace(-1, 1, 16, dtype="float32").reshape(2, 8)}
    wrong = {"x": np.ones((1, 5), dtype="float32")}  # Dense(8 -> 16) cannot take 5 features

    def no_feeds(_deployment: TfjsDeployment) -> list[dict[str, np.ndarray]]:
        raise HarnessError("this backend's feeds could not be made")

    contexts = sum(len(browser.contexts) for browser in target._browsers.values())
    with counting() as tally:
        with target.side_by_side(prepared, [("cpu", lambda _d: [good, good]), ("wasm", lambda _d: [wrong, good]),
                                            ("webgl", no_feeds)]):
            ahead = as_dict(tally)  # before any backend is collected
            # cpu's and wasm's pages compute side by side; webgl's, whose feeds failed, is closed already
            assert ahead["pages loading side by side"] == 2 and ahead["predictions started ahead"] == 4
            with target.load(prepared, options={"backend": "cpu"}) as cpu:
                first, again = cpu.predict(good), cpu.predict(good)
                assert cpu.predict_seconds is not None and cpu.predict_seconds >= 0
            np.testing.assert_allclose(next(iter(first.values())), np.asarray(model(good["x"])), rtol=1e-4, atol=1e-5)
            np.testing.assert_array_equal(next(iter(first.values())), next(iter(again.values())))
            with target.load(prepared, options={"backend": "wasm"}) as wasm:
                with pytest.raises(RuntimeFailure) as queued:
                    wasm.predict(wrong)  # its queued outcome
                with pytest.raises(RuntimeFailure) as direct:
                    wasm.predict(wrong)  # nothing queued any more: sent now
                np.testing.assert_allclose(next(iter(wasm.predict(good).values())), np.asarray(model(good["x"])),
                                           rtol=1e-4, atol=1e-5)  # the page goes on after its error
            assert queued.value.message == direct.value.message and "[1,5]" in queued.value.message
            with pytest.raises(HarnessError, match="this backend's feeds could not be made"):
                target.load(prepared, options={"backend": "webgl"})
            assert as_dict(tally)["predictions started ahead"] == 4  # nothing was queued twice
    assert sum(len(browser.contexts) for browser in target._browsers.values()) == contexts  # every page closed


def test_tfserving_requests_sent_side_by_side_are_collected_in_order_with_their_errors(
        pitfalls_targets: "TargetPool", tmp_path: Path) -> None:
    """``ServedModel.start_predict``: requests sent at once are collected by the predict of the same
    inputs, each its own reply (in the order asked, not the order answered); a request the server
    refuses raises, by its own predict, the server's own text, the same as when sent alone."""
    require_targets("tfserving")
    import keras
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.errors import RuntimeFailure

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    keras.Model(inputs, keras.layers.Dense(3)(inputs)).save(tmp_path / "m.keras")
    model = keras.models.load_model(tmp_path / "m.keras")
    target = pitfalls_targets.get("tfserving")
    prepared = target.prepare(ModelSource.from_path(tmp_path / "m.keras"), ArtifactCache(tmp_path / "cache"))
    feeds = [{"x": np.full((2, 8), value, dtype="float32")} for value in (-1.0, 0.5, 2.0)]
    wrong = {"x": np.ones((1, 5), dtype="float32")}
    with counting() as tally, target.load(prepared) as served:
        name = served.signature().input_names()[0]
        for feed in (*feeds, wrong):
            getattr(served, "start_predict")({name: feed["x"]})
        assert as_dict(tally)["requests sent side by side"] == 4
        for feed in reversed(feeds):
            got = next(iter(served.predict({name: feed["x"]}).values()))
            np.testing.assert_allclose(got, np.asarray(model(feed["x"])), rtol=1e-5, atol=1e-5)
        with pytest.raises(RuntimeFailure) as queued:
            served.predict({name: wrong["x"]})
        with pytest.raises(RuntimeFailure) as direct:
            served.predict({name: wrong["x"]})
    assert queued.value.message == direct.value.message


@pytest.mark.parametrize("name", ["tfjs", "tfserving"])
def test_what_a_target_starts_early_is_what_its_common_path_takes(pitfalls_targets: "TargetPool", tmp_path: Path,
                                                                   name: str) -> None:
    """``TargetChecks.early`` (run before the check has its inputs, while the model loads for the
    reference): tf.js converts the model and opens a page per backend with the model loaded, TF
    Serving exports and serves it; the common path then loads each of them once (no page opened,
    no model served again), and its verdicts and parities are those of a path started afresh.
    Nothing is started once the check is ready for its paths."""
    require_targets(name)
    import keras
    import numpy as np

    from harness.artifacts import ArtifactCache
    from harness.check.model import load_model, synthesise_inputs
    from harness.check.report import TargetReport
    from harness.check.steps import Context, declared, reference_or_none, run_declared

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,), name="x")
    keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(inputs))).save(tmp_path / "m.keras")
    source, cache = ModelSource.from_path(tmp_path / "m.keras"), ArtifactCache(tmp_path / "cache")
    target, checks = pitfalls_targets.get(name), declared(name)
    assert checks.early is not None
    model = load_model(source)
    feed = synthesise_inputs(model)
    ctx = Context(model, feed, reference_or_none(model, feed)[0], cache, (), lambda _message: None)
    with counting() as tally:
        checks.early(target, source, cache, lambda: True)  # the check is ready: nothing starts early
    assert as_dict(tally) == {}
    reports = {}
    for early in (True, False):
        with counting() as tally:
            if early:
                checks.early(target, source, cache, lambda: False)
            started = as_dict(tally)
            reports[early] = report = TargetReport(name)
            run_declared(target, report, ctx, checks)
            counts = as_dict(tally)
        loads = [label for label in report.parity if "[" not in label and " " not in label.removeprefix(name)]
        assert loads and counts["model loads"] == len(loads)
        if not early:
            assert not started
        elif name == "tfjs":  # a page per backend, each the page its load took
            assert started["pages opened early"] == len(loads) and "pages opened early" not in counts.keys() - started
            assert counts["pages opened early"] == len(loads)
        else:  # one model served, the one the load took: one server in all
            assert started["models served early"] == len(loads) and started["servers started"] == len(loads)
            assert counts["servers started"] == len(loads)
    assert reports[True].verdict == reports[False].verdict == "deploys"
    assert sorted(reports[True].parity) == sorted(reports[False].parity)
    for label, figures in reports[True].parity.items():
        assert np.isclose(figures["max_abs_diff"], reports[False].parity[label]["max_abs_diff"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["tfjs", "tfserving"])
def test_a_file_that_fails_early_fails_once_with_the_same_error(pitfalls_targets: "TargetPool", tmp_path: Path,
                                                                  name: str) -> None:
    """A model file whose export fails in ``early`` is not exported again by the common path's
    prepare: that prepare raises the very error met early (the finding carries Keras's own text),
    once; a later prepare of the file tries again."""
    require_targets(name)
    from harness.artifacts import ArtifactCache
    from harness.check.steps import declared

    model_file = tmp_path / "m.keras"
    model_file.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip: no config.json for Keras to read
    # trusted: the check's trust scan ran before (early never starts on a refused file), so the
    # error is the export's own
    source, cache = ModelSource.from_path(model_file, trusted=True), ArtifactCache(tmp_path / "cache")
    target, checks = pitfalls_targets.get(name), declared(name)
    assert checks.early is not None
    with counting() as tally:
        checks.early(target, source, cache, lambda: False)
    assert "model loads" not in as_dict(tally) and not any(k.startswith("artifacts built") for k in as_dict(tally))
    met_early = getattr(target, "_early").prepare_failed[source.path]
    with pytest.raises(Exception) as first:
        target.prepare(source, cache)
    with pytest.raises(Exception) as again:
        target.prepare(source, cache)
    assert first.value is met_early and again.value is not met_early  # raised once, then tried anew
    assert str(again.value) == str(met_early) and source.path not in getattr(target, "_early").prepare_failed
