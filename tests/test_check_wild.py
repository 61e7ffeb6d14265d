"""``pitfalls check`` on the model shapes people bring (issue 21): string inputs with a lookup
inside, several outputs, int64 ids, a dynamic sequence length, a subclassed ``tf.Module`` with two
signatures, a model whose output depends on the whole batch, a tf_keras ``.keras`` — nothing ends
in a traceback, and each verdict, figure and text is compared with the runtime called directly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactCache
from harness.check import CheckReport
from harness.check.steps import HARNESS_LIMITATION
from harness.paths import REPO_ROOT
from harness.targets.base import ModelSource

from check_models import finding_texts, require_targets, shared_check, shared_memo_dir
from check_models.wild import (batch_dependent_saved_model, dynamic_length_keras, int64_ids_keras, large_activations_keras,
                               module_saved_model, stateful_lstm_keras, string_lookup_keras, tf_keras_keras, two_outputs_keras)

pytestmark = pytest.mark.slow


_available = require_targets
_texts = finding_texts


@pytest.fixture(scope="module")
def cache(pitfalls_cache: ArtifactCache) -> ArtifactCache:
    return pitfalls_cache


@pytest.fixture(scope="module")
def shared_memo(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path | None:
    return shared_memo_dir(tmp_path_factory, worker_id)


#: the options of test_check_unknown_texts's check of every wild model on every target: the tests here
#: that need no probe and no other LiteRT profile read its report (:func:`shared_check`) instead of a check of their own
SHARED = {"probes": (), "profiles": ("host",)}


def _sample(path: Path) -> tuple[Any, dict[str, Any]]:
    from harness.check.model import load_model, synthesise_inputs

    model = load_model(ModelSource.from_path(path))
    return model, synthesise_inputs(model)


def _no_harness_blocker(report: CheckReport) -> None:
    """Whatever pitfalls itself could not do is a warning that says so, never a blocker."""
    for name, target in report.targets.items():
        for f in target.findings:
            if f.source.startswith("pitfalls ("):
                assert f.severity != "blocker" and f.fix == HARNESS_LIMITATION, (name, f)


def test_batch_dependent_model_is_compared_with_the_reference_of_the_rows_each_path_is_fed(
        cache: ArtifactCache, pitfalls_check: Any, pitfalls_targets: Any, shared_memo: Path | None) -> None:
    """A normalisation over the whole tensor: tf.js runs the first 2 rows, and the model run by
    TensorFlow on those 2 rows is what it must match (the whole batch's output, sliced, differs)."""
    import numpy as np

    from harness.check.model import reference_outputs
    from harness.targets.tfjs.checks import BROWSER_ROWS

    _available("tfjs")
    path = batch_dependent_saved_model(cache)
    report = shared_check(pitfalls_check, path, shared_memo, **SHARED)
    tfjs = report.targets["tfjs"]
    assert tfjs.verdict == "deploys", tfjs.findings
    model, x = _sample(path)
    rows = {k: v[:BROWSER_ROWS] for k, v in x.items()}
    right = reference_outputs(model, rows)[0]
    sliced = reference_outputs(model, x)[0][:BROWSER_ROWS]
    assert float(np.max(np.abs(right - sliced))) > 0.1  # the batch matters: slicing would show a false divergence
    target = pitfalls_targets.get("tfjs")
    prepared = target.prepare(ModelSource.from_path(path), cache)
    with target.load(prepared, options={"backend": "cpu"}) as deployed:
        got = deployed.predict({deployed.signature().input_names()[0]: rows["x"]})
    direct = float(np.max(np.abs(np.asarray(next(iter(got.values())), dtype="float64") - right)))
    assert direct < 1e-4
    assert tfjs.parity["tfjs@cpu"]["max_abs_diff"] == pytest.approx(direct, rel=1e-6, abs=1e-9)


def test_two_outputs_are_compared_one_by_one_by_name(cache: ArtifactCache, pitfalls_check: Any,
                                                    pitfalls_targets: Any) -> None:
    """A dict of two heads of different scales (a softmax, a regression of order 100): LiteRT
    renames and may reorder them; each is paired with its reference and judged on its own."""
    import numpy as np

    from harness.check.model import reference_outputs

    _available("litert", "tfserving")
    path = two_outputs_keras(cache)
    report = pitfalls_check(path, targets=["litert", "tfserving"], cache=cache, profiles=("host",))
    _no_harness_blocker(report)
    assert report.model["outputs"] == ["amount", "label"]
    assert report.ok, {n: t.findings for n, t in report.targets.items()}
    litert = report.targets["litert"]
    per_output = litert.parity["litert"]["outputs"]
    assert set(per_output) == {"amount", "label"}
    model, x = _sample(path)
    want = dict(zip(model.outputs, reference_outputs(model, x)))
    target = pitfalls_targets.get("litert")
    prepared = target.prepare(ModelSource.from_path(path), cache)
    direct = target.predict(prepared.artifact, [x["features"]], batch=True)
    by_shape = {tuple(o.shape): o for o in direct}
    for name, reference in want.items():
        diff = float(np.max(np.abs(np.asarray(by_shape[tuple(reference.shape)], dtype="float64") - reference)))
        assert per_output[name]["max_abs_diff"] == pytest.approx(diff, rel=1e-6, abs=1e-9)
    assert float(np.max(np.abs(want["amount"]))) > 10.0  # the scales differ: one tolerance for both would not do
    assert report.targets["tfserving"].parity["tfserving"]["outputs"]["amount"]["max_abs_diff"] < 1e-3


def test_int64_ids_run_on_every_litert_path_without_a_harness_error(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """int64 token ids: the full-int8 model quantises its float tensors only; the ids go in as
    they are (this once ended in KeyError: 'serving_default_ids:0')."""
    _available("litert")
    report = pitfalls_check(int64_ids_keras(cache), targets=["litert"], cache=cache, profiles=("host",))
    litert = report.targets["litert"]
    assert not [f for f in litert.findings if f.source.startswith("pitfalls (")], litert.findings
    assert "KeyError" not in _texts(report, "litert")
    for path in ("litert", "litert batch 1", "litert float16", "litert dynamic", "litert int8"):
        assert litert.parity[path]["shape_match"], path
    assert litert.parity["litert"]["max_abs_diff"] < 1e-4


def test_dynamic_sequence_length_is_resized_not_a_false_blocker(cache: ArtifactCache, pitfalls_check: Any,
                                                                pitfalls_targets: Any) -> None:
    """Input (None, None, 4): the interpreter is resized to the probe's length on every LiteRT
    call, the latency timing included (it once said "Cannot set tensor: Dimension mismatch")."""
    import numpy as np

    from harness.check.model import reference_outputs

    _available("litert")
    path = dynamic_length_keras(cache)
    report = pitfalls_check(path, targets=["litert"], cache=cache, profiles=("host",))
    litert = report.targets["litert"]
    assert "Dimension mismatch" not in _texts(report, "litert"), litert.findings
    assert litert.figures["litert@host.median_ms"] > 0
    model, x = _sample(path)
    target = pitfalls_targets.get("litert")
    prepared = target.prepare(ModelSource.from_path(path), cache)
    got = target.predict(prepared.artifact, [x["seq"]], resize=True)[0]
    direct = float(np.max(np.abs(np.asarray(got, dtype="float64") - reference_outputs(model, x)[0])))
    assert litert.parity["litert"]["max_abs_diff"] == pytest.approx(direct, rel=1e-6, abs=1e-9)


def test_string_input_model_is_checked_on_every_target_without_a_traceback(cache: ArtifactCache, pitfalls_check: Any,
                                                                          pitfalls_targets: Any,
                                                                          shared_memo: Path | None) -> None:
    """A string input read by a StringLookup: words drawn from its vocabulary; TF Serving serves
    it; LiteRT runs it at batch 8 and fails at batch 1 in its own words (as its int8 calibration
    does); Core ML refuses strings; tf.js's converter turns the table into an input the check
    cannot feed, which it says (a warning from pitfalls, not a verdict)."""
    _available("tfserving", "litert", "coreml", "tfjs")
    path = string_lookup_keras(cache)
    report = shared_check(pitfalls_check, path, shared_memo, **SHARED)
    _no_harness_blocker(report)
    assert report.inputs["synthesised"] == {"word": "string: words of lookup"}
    tfserving = report.targets["tfserving"]
    assert tfserving.verdict == "deploys" and tfserving.max_abs_diff is not None and tfserving.max_abs_diff < 1e-5
    assert tfserving.parity["tfserving grpc"]["max_abs_diff"] < 1e-5
    litert = report.targets["litert"]
    assert litert.parity["litert"]["max_abs_diff"] < 1e-5
    batch1 = [f for f in litert.findings if f.step == "predict litert batch 1"]
    model, x = _sample(path)
    target = pitfalls_targets.get("litert")
    prepared = target.prepare(ModelSource.from_path(path), cache)
    try:
        target.predict(prepared.artifact, [x["word"][:1]], batch=True)
        direct = ""
    except Exception as exc:  # noqa: BLE001 - LiteRT's own text, compared below
        direct = str(exc)
    if direct:
        assert batch1 and batch1[0].severity == "warning" and batch1[0].verified == "runtime"
        assert batch1[0].text.splitlines()[0][:60] in direct  # LiteRT's own words, as it says them directly
    else:
        assert not batch1
    coreml = report.targets["coreml"]
    assert coreml.verdict == "fails" and "is unsupported for inputs/outputs of the model" in _texts(report, "coreml")
    tfjs = report.targets["tfjs"]
    assert any("pitfalls check cannot feed" in f.text and f.severity == "warning" for f in tfjs.findings)


def test_subclassed_module_with_two_signatures(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """A tf.Module saved with tf.saved_model.save and two signatures: the check says which one it
    checked; TF Serving and LiteRT run serving_default; coremltools refuses two functions in its
    own words (compared with coremltools called directly)."""
    _available("tfserving", "litert", "coreml")
    path = module_saved_model(cache)
    report = pitfalls_check(path, targets=["tfserving", "litert", "coreml"], cache=cache, profiles=("host",))
    notes = [f for f in report.findings if f.step == "load"]
    assert notes and "checked serving_default" in notes[0].text and "doubled" in notes[0].text
    assert report.targets["tfserving"].verdict == "deploys"
    assert report.targets["litert"].parity["litert"]["max_abs_diff"] < 1e-4
    import coremltools as ct

    with pytest.raises(Exception) as caught:
        ct.convert(str(path), source="tensorflow", convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15)
    assert str(caught.value) in _texts(report, "coreml") and report.targets["coreml"].verdict == "fails"


def test_tf_keras_keras_file_is_never_a_false_litert_blocker(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """A .keras written by tf_keras: the reference loads it with tf_keras, and so does the LiteRT
    conversion (it once loaded it with Keras 3: "Could not locate class 'Functional'")."""
    _available("litert")
    report = pitfalls_check(tf_keras_keras(cache), targets=["litert"], cache=cache, profiles=("host",))
    assert report.model["flavour"] == "tf_keras"
    litert = report.targets["litert"]
    assert "Could not locate class" not in _texts(report, "litert")
    assert litert.verdict in ("deploys", "warnings") and litert.parity["litert"]["max_abs_diff"] < 1e-4


def test_terminal_shows_progress_and_the_runtime_log_goes_to_the_report(tmp_path: Path, cache: ArtifactCache) -> None:
    """What TensorFlow prints on start-up (called directly: `import tensorflow`) is in the report's
    runtime_log, and the terminal shows only pitfalls' own lines."""
    _available("litert")
    direct = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True, text=True)
    noisy = [token for token in ("computation_placer.cc", "cuda_dnn.cc", "cuda_blas.cc", "cudart_stub.cc", "cuInit")
             if token in direct.stderr]
    path = int64_ids_keras(cache)
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(path), "--targets", "litert", "--profile", "host",
                           "--probes", "none", "--json"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("check: ") for line in lines), lines
    log = json.loads(done.stdout)["runtime_log"]
    for token in noisy:
        assert token in log and token not in done.stderr


def test_calibration_set_is_a_probe_and_the_int8_representative_set(tmp_path: Path, cache: ArtifactCache,
                                                                    pitfalls_check: Any, pitfalls_targets: Any) -> None:
    """--calibration: fed to every path as a probe of its own (named in parity), and the int8
    model is the one LiteRT's converter makes from that set (same parity when called directly)."""
    import numpy as np

    from harness.check.model import reference_outputs

    _available("litert")
    path = two_outputs_keras(cache)
    calibration = np.random.default_rng(7).normal(0.0, 3.0, (16, 6)).astype("float32")
    npz = tmp_path / "cal.npz"
    np.savez(npz, features=calibration)
    report = pitfalls_check(path, targets=["litert"], cache=cache, profiles=("host",), probes=(), calibration=npz)
    assert report.inputs["calibration"]["file"] == str(npz.resolve())
    litert = report.targets["litert"]
    assert "litert [--calibration cal.npz]" in litert.parity and "litert [wide]" not in litert.parity
    model, x = _sample(path)
    target = pitfalls_targets.get("litert")
    int8 = target.prepare(ModelSource.from_path(path), cache, options={"quantize": "int8", "representative": calibration})
    with target.load(int8) as deployed:
        from harness.targets.litert.checks import integer_io

        io = integer_io(target, deployed)
        feed = {deployed.signature().input_names()[0]: x["features"]}
        got = deployed.predict(io.encode(feed) if io is not None else feed)
        got = io.decode(got) if io is not None else got
    want = dict(zip(model.outputs, reference_outputs(model, x)))
    by_shape = {tuple(np.shape(v)): v for v in got.values()}
    direct = max(float(np.max(np.abs(np.asarray(by_shape[tuple(w.shape)], dtype="float64") - w))) for w in want.values())
    assert litert.parity["litert int8"]["max_abs_diff"] == pytest.approx(direct, rel=1e-6, abs=1e-9)


def test_webgl_half_floats_are_a_path_of_their_own_and_overflow_is_named(cache: ArtifactCache, pitfalls_check: Any,
                                                                          pitfalls_targets: Any,
                                                                          shared_memo: Path | None) -> None:
    """Hidden activations of ~1e5 (float16 holds 65504): tf.js's WebGL forced to half-float textures
    (WEBGL_FORCE_F16_TEXTURES) gives NaN where float32 WebGL and cpu are exact; ``check`` runs the
    half-float path on its own tolerance and names what it shows an overflow, as the page does."""
    import numpy as np

    from harness.check.model import reference_outputs
    from harness.compare import non_finite
    from harness.targets.tfjs.backends import backend_named
    from harness.targets.tfjs.checks import BROWSER_ROWS

    _available("tfjs")
    path = large_activations_keras(cache)
    report = shared_check(pitfalls_check, path, shared_memo, **SHARED)
    tfjs = report.targets["tfjs"]
    half = [f for f in tfjs.findings if f.source == "tfjs@webgl-f16"]
    assert [f.step for f in half] == ["parity"] and half[0].severity == "warning", tfjs.findings
    assert "overflow" in half[0].text and "inf or NaN" in half[0].text
    assert not [f for f in tfjs.findings if f.source in ("tfjs@cpu", "tfjs@webgl")], tfjs.findings
    assert tfjs.verdict == "warnings"
    assert backend_named("webgl-f16").tolerance == "float16"
    model, x = _sample(path)
    rows = {k: v[:BROWSER_ROWS] for k, v in x.items()}
    want = reference_outputs(model, rows)[0]
    target = pitfalls_targets.get("tfjs")
    prepared = target.prepare(ModelSource.from_path(path), cache)
    direct = {}
    for backend in ("webgl", "webgl-f16"):
        with target.load(prepared, options={"backend": backend}) as deployed:
            flags = deployed.page.evaluate("() => [tf.getBackend(), tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED')]")
            assert flags == ["webgl", backend == "webgl"]
            got = deployed.predict({deployed.signature().input_names()[0]: rows["x"]})
            direct[backend] = np.asarray(next(iter(got.values())), dtype="float64")
    assert non_finite(direct["webgl"], want) == 0 and float(np.max(np.abs(direct["webgl"] - want))) < 1e-3
    assert non_finite(direct["webgl-f16"], want) > 0
    assert f"{non_finite(direct['webgl-f16'], want)} of {want.size} values are inf or NaN" in half[0].text


def test_stateful_rnn_is_checked_on_the_fixed_batch_export_and_every_target_runs(cache: ArtifactCache,
                                                                                 pitfalls_check: Any,
                                                                                 shared_memo: Path | None) -> None:
    """A stateful LSTM (batch fixed at 2): the default model.export's signature takes any batch and a
    request of 3 rows fails in the graph (the finding quotes TensorFlow); the export with a fixed-batch
    input_signature runs, every target is checked on it (the report says so), and TensorFlow's int8
    calibrator, which dies of SIGSEGV on this model, no longer ends the check."""
    import numpy as np
    import tensorflow as tf

    from harness.export import saved_model_of

    path = stateful_lstm_keras(cache)
    source = ModelSource.from_path(path)
    default = tf.saved_model.load(str(saved_model_of(cache, source))).signatures["serving_default"]
    assert default.structured_input_signature[1]["x"].shape.as_list() == [None, 5, 3]
    with pytest.raises(tf.errors.InvalidArgumentError) as direct:
        default(x=tf.constant(np.zeros((3, 5, 3), "float32")))
    report = shared_check(pitfalls_check, path, shared_memo, **SHARED)
    texts = [f.text for f in report.findings]
    assert any("stateful layers (lstm)" in t for t in texts), texts
    failed = [t for t in texts if t.startswith("the default model.export's serving signature")]
    assert len(failed) == 1 and "Incompatible shapes: [3,16] vs. [2,16]" in failed[0]
    assert "Incompatible shapes: [3,16] vs. [2,16]" in str(direct.value)
    assert report.model["export"] == "model.export(input_signature=<batch 2>) of stateful_lstm.keras"
    fixed = tf.saved_model.load(str(saved_model_of(cache, source, recipe="fixed-batch"))).signatures["serving_default"]
    assert fixed.structured_input_signature[1]["x"].shape.as_list() == [2, 5, 3]
    _no_harness_blocker(report)
    ran = {name: t for name, t in report.targets.items() if t.verdict != "skipped"}
    assert ran, "no target can run here"
    for name, t in ran.items():
        assert t.findings or t.parity, (name, t)
    if "litert" in ran:
        litert = ran["litert"]
        assert litert.parity["litert"]["max_abs_diff"] < 1e-4  # the fixed-batch export, converted and run
        int8 = [f for f in litert.findings if f.step == "prepare litert int8"]
        assert len(int8) == 1 and int8[0].severity == "warning", litert.findings
        assert int8[0].text.startswith("the int8 calibration process was killed by SIGSEGV")
        assert "calibrator.py" in int8[0].text
    if "tfserving" in ran:  # the first request on a fresh server starts from zero states, as the reference
        assert ran["tfserving"].parity["tfserving"]["max_abs_diff"] < 1e-5
