"""``pitfalls check`` on real architectures no one here wrote and on models converters reject,
compared with what each runtime says when it is called directly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactCache
from harness.check import CheckReport
from harness.paths import REPO_ROOT

from check_models import (custom_layer_keras, determinant_saved_model, efficientnet_b0, finding_texts,
                          mobilenet_v1_tf_keras, mobilenet_v2, require_targets, softsign_keras)

pytestmark = pytest.mark.slow


_available = require_targets
_texts = finding_texts


@pytest.fixture(scope="module")
def cache() -> ArtifactCache:
    return ArtifactCache()


def test_mobilenet_v2_deploys_on_every_target(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """keras.applications.MobileNetV2 (Keras 3): every target deploys; parity as the runtimes give it."""
    _available("tfserving", "litert", "coreml", "tfjs")
    path = mobilenet_v2(cache)
    report = pitfalls_check(path, cache=cache, profiles=("host",), progress=None)
    verdicts = {name: t.verdict for name, t in report.targets.items()}
    assert verdicts["tfserving"] == "deploys" and verdicts["tfjs"] in ("deploys", "warnings")
    # WebGL forced to half floats may leave the float16 tolerance on the wide/edge probes (0.023 / 0.17
    # measured, top-1 agreeing): a warning of that path only; the float32 backends deploy
    assert all(f.source.startswith("tfjs@webgl-f16") and f.severity == "warning"
               for f in report.targets["tfjs"].findings), report.targets["tfjs"].findings
    assert verdicts["litert"] in ("deploys", "warnings")  # int8 may drift beyond its tolerance: a warning
    assert report.ok, verdicts
    for name in ("tfserving", "litert", "tfjs"):
        assert report.targets[name].max_abs_diff is not None and report.targets[name].max_abs_diff < 1e-4
    # Core ML: the .keras as given is refused by coremltools itself, the traced-function path converts
    coreml = report.targets["coreml"]
    assert "Input model path should be .h5/.hdf5 file or a directory" in _texts(report, "coreml")
    assert any(f.step == "prepare" and "concrete function" in f.text for f in coreml.findings)
    assert coreml.figures["coreml.spec_inputs"] == 1.0
    # each costly thing once: the reference per distinct feed (the sample and its two probes, all rows,
    # their first 2 rows for the browser backends, the first row of each probe for the slow ones (cpu,
    # webgl, webgl-f16), the sample's first row for LiteRT at batch 1), one server, one browser at most (the
    # session's may be running already), no artifact built twice
    assert report.counts["reference computations"] == 9, report.counts
    assert report.targets["tfserving"].counts["servers started"] == 1
    assert report.targets["tfjs"].counts.get("browser launches", 0) <= 1
    assert report.targets["tfjs"].counts["model loads"] == len([p for p in report.targets["tfjs"].parity if "[" not in p])
    # the check's LiteRT float parity is what LiteRT gives when called directly
    _direct_litert_parity_matches(report, path, cache)


def _direct_litert_parity_matches(report: CheckReport, path: Path, cache: ArtifactCache) -> None:
    import numpy as np

    from harness.check.model import load_model, reference_outputs, synthesise_inputs
    from harness.targets.base import ModelSource
    from harness.targets.litert.target import LitertTarget

    model = load_model(ModelSource.from_path(path))
    x = synthesise_inputs(model)
    want = reference_outputs(model, x)[0]
    with LitertTarget() as litert:
        prepared = litert.prepare(ModelSource.from_path(path), cache)
        got = litert.predict(prepared.artifact, [x[model.inputs[0].name]], batch=True)[0]
    direct = float(np.max(np.abs(np.asarray(got, dtype="float64") - want)))
    assert report.targets["litert"].parity["litert"]["max_abs_diff"] == pytest.approx(direct, rel=1e-6, abs=1e-9)


def test_determinant_model_is_refused_as_each_converter_refuses_it(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """A SavedModel computing tf.linalg.det: TF Serving runs it; TF Lite needs Flex, which this LiteRT
    has not; Core ML and tf.js have no conversion — each finding is the runtime's own text."""
    _available("tfserving", "litert", "coreml", "tfjs")
    path = determinant_saved_model(cache)
    report = pitfalls_check(path, cache=cache, profiles=("host",), progress=None)
    assert report.targets["tfserving"].verdict == "deploys"
    assert report.targets["tfserving"].max_abs_diff is not None and report.targets["tfserving"].max_abs_diff < 1e-4
    for name in ("litert", "coreml", "tfjs"):
        assert report.targets[name].verdict == "fails", (name, report.targets[name].findings)
    assert not report.ok and report.exit_code() == 1

    litert = report.targets["litert"]
    direct = _direct_tflite_error(path)
    assert direct.splitlines()[0].strip() in _texts(report, "litert")
    assert any(f.scenario == "mobile/model-conversion/conversion-of-unsupported-models/litert" for f in litert.findings)
    # Select TF ops, tried as a remedy: this LiteRT has no Flex delegate, the lesson of its own
    flex = [r for f in litert.findings for r in f.remedies if r.name == "Select TF ops"]
    assert flex and flex[0].verdict == "does not work" and "Flex delegate" in flex[0].evidence, flex
    assert flex[0].scenario == "mobile/dl-library-compilation/usage-of-prebuilt-libraries/litert"

    assert _direct_coreml_error(path).strip() in _texts(report, "coreml")
    assert any(f.scenario == "mobile/model-conversion/conversion-of-unsupported-models/coreml"
               for f in report.targets["coreml"].findings)

    tfjs_text = _texts(report, "tfjs")
    assert "Unsupported Ops in the model before optimization" in tfjs_text and "MatrixDeterminant" in tfjs_text
    assert "MatrixDeterminant" in _direct_tfjs_error(path)


def _direct_tflite_error(path: Path) -> str:
    """The TF Lite converter's own refusal, called in this process (TensorFlow is loaded already:
    the check computed its reference here), not in a new interpreter that imports it again."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(path))
    with pytest.raises(Exception) as caught:
        converter.convert()
    lines = [line for line in str(caught.value).splitlines() if "Some ops are not supported" in line]
    assert lines, str(caught.value)[-2000:]
    return lines[0]


def _direct_coreml_error(path: Path) -> str:
    import coremltools as ct

    with pytest.raises(Exception) as caught:
        ct.convert(str(path), source="tensorflow", convert_to="mlprogram", minimum_deployment_target=ct.target.iOS15)
    return str(caught.value)


def _direct_tfjs_error(path: Path) -> str:
    """The tensorflowjs converter's own refusal: ``convert_tf_saved_model`` (what
    ``tensorflowjs_converter --input_format=tf_saved_model`` runs), called in this process."""
    import tempfile

    from tensorflowjs.converters import tf_saved_model_conversion_v2

    with tempfile.TemporaryDirectory(prefix="pitfalls-direct-tfjs-") as out, pytest.raises(Exception) as caught:
        tf_saved_model_conversion_v2.convert_tf_saved_model(str(path), out)
    return f"{type(caught.value).__name__}: {caught.value}"


def test_softsign_model_needs_flex_on_litert_and_has_no_tfjs_kernel(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """Softsign is neither a TF Lite builtin (the converter asks for Select TF ops, which this LiteRT
    cannot run) nor a tf.js op (the converter lists it as unsupported); each finding keeps the
    runtime's text and says the op is in layer ``hidden`` (the Dense whose activation is softsign:
    issue 22 item 4, the op-to-layer mapping of harness.check.localise).  No conversion succeeds,
    so no probe would run: the sample alone."""
    import keras

    _available("litert", "tfjs")
    path = softsign_keras(cache)
    assert keras.models.load_model(path).get_layer("hidden").get_config()["activation"] == "softsign"
    report = pitfalls_check(path, targets=["litert", "tfjs"], cache=cache, profiles=("host",), probes=(), progress=None)
    litert = report.targets["litert"]
    assert litert.verdict == "fails"
    assert any(f.step == "prepare litert" and "Softsign" in f.text and f.verified == "runtime" for f in litert.findings)
    flex = [r for f in litert.findings if f.step == "prepare litert" for r in f.remedies if r.name == "Select TF ops"]
    assert flex and flex[0].verdict == "does not work" and "Flex delegate" in flex[0].evidence
    tfjs = report.targets["tfjs"]
    assert tfjs.verdict == "fails"
    assert any("Unsupported Ops in the model before optimization" in f.text and "Softsign" in f.text
               and f.scenario == "browser/general-questions/limitations-of-frameworks" for f in tfjs.findings)
    # the op located in its Keras layer, on each target
    converted = next(f for f in litert.findings if f.step == "prepare litert")
    assert "TF Select ops: Softsign" in converted.text and converted.verified == "runtime"
    assert converted.where.startswith("Softsign: layer hidden (tf.function softsign_mlp.call")
    refused = next(f for f in tfjs.findings if f.step == "prepare tfjs")
    assert "Unsupported Ops in the model before optimization\nSoftsign" in refused.text
    assert refused.where.startswith("Softsign: layer hidden")


def test_tf_keras_mobilenet_converts_on_core_ml_as_given(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """tf_keras.applications.MobileNet as .h5: Core ML converts it as given (its tf_keras SavedModel);
    tf.js runs the graph model, while the layers model of the same network fails to load in tf.js
    (its Reshape before conv_preds) — a warning, with tf.js's own text."""
    _available("coreml", "tfjs")
    report = pitfalls_check(mobilenet_v1_tf_keras(cache), targets=["coreml", "tfjs"], cache=cache, progress=None)
    coreml = report.targets["coreml"]
    # its one warning: coremltools gave the free batch the range 1..2 by itself (its own text; the bound is tried)
    warned = [f for f in coreml.findings if f.severity in ("blocker", "warning")]
    assert coreml.verdict == "warnings" and [(f.source, f.text[:47]) for f in warned] == \
        [("coremltools", "Some dimensions in the input shape are unknown,")], coreml.findings
    assert coreml.figures["coreml.artifact_bytes"] > 0
    assert coreml.figures["coreml linear int8.weights_bytes"] < coreml.figures["coreml.weights_bytes"]
    tfjs = report.targets["tfjs"]
    assert tfjs.verdict == "warnings", tfjs.findings
    assert tfjs.max_abs_diff is not None and tfjs.max_abs_diff < 1e-4
    layers = [f for f in tfjs.findings if f.step == "load tfjs layers@cpu"]
    assert layers and layers[0].severity == "warning" and layers[0].verified == "runtime"
    assert "is incompatible with layer conv_preds" in layers[0].text
    graph = [r for r in layers[0].remedies if r.name == "graph model"]  # the remedy: the graph model's own runs
    assert graph and graph[0].verdict == "works" and graph[0].evidence.startswith("tfjs@cpu: max |diff|"), graph


def test_int8_divergence_is_localised_to_a_layer(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """EfficientNetB0 under full-integer quantisation: if the int8 outputs leave their tolerance, the
    per-layer table names the first layer that fails while its inputs pass.  (The remedies, which
    this test does not read, are not tried: test_check_remedies and the README example test them.)"""
    _available("litert")
    report = pitfalls_check(efficientnet_b0(cache), targets=["litert"], cache=cache, profiles=("host",), progress=None,
                            remedies="none")
    litert = report.targets["litert"]
    assert litert.parity["litert"]["max_abs_diff"] < 1e-3
    int8 = litert.parity["litert int8"]
    if any(f.step == "parity" and f.source == "litert int8" for f in litert.findings):
        d = litert.divergence
        assert d is not None and d.layers and d.first_layer is not None
        first = next(r for r in d.layers if r.layer == d.first_layer)
        assert not first.passes and first.attribution == "local"
        assert all(r.passes for r in d.layers[: d.layers.index(first)])
    else:
        assert int8["shape_match"]


def _dense_model(cache: ArtifactCache) -> Path:
    from harness.models import ModelSpec, trained_model

    return trained_model(cache, ModelSpec("dense", "keras3")).model_file


def test_pytest_fixture(pitfalls_check: Any, cache: ArtifactCache) -> None:
    """The fixture a user's own suite uses (it lends the session's running targets to the check)."""
    _available("litert")
    report = pitfalls_check(_dense_model(cache), targets=["litert"], profiles=("host",))
    assert report.ok and set(report.targets) == {"litert"}


def test_cli_writes_json_and_html(tmp_path: Path, cache: ArtifactCache) -> None:
    _available("litert")
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(_dense_model(cache)), "--targets", "litert",
                           "--json", "--report-dir", str(out), "-q"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    import json

    data = json.loads(done.stdout)
    assert data["schema"] == "pitfalls-check/1" and data["targets"]["litert"]["verdict"] in ("deploys", "warnings")
    assert json.loads((out / "check.json").read_text()) == data
    assert (out / "check.json").stat().st_mode & 0o777 == 0o644
    assert "pitfalls check: model.keras" in (out / "check.html").read_text()


def test_custom_layer_model_needs_its_code_and_then_meets_each_converters_refusal(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """A Keras 3 model with a registered custom layer (tf.linalg.det inside): without its code the
    trust gate refuses at once (exit 2, one line: its config names a module outside Keras); with
    --import (trusted code) it runs, TF Serving serves it and the three converters refuse
    MatrixDeterminant in their own words."""
    _available("tfserving", "litert", "coreml", "tfjs")
    path = custom_layer_keras(cache)
    env = {**__import__("os").environ, "PYTHONPATH": f"{REPO_ROOT}:{REPO_ROOT / 'tests'}"}
    done = subprocess.run([sys.executable, "-m", "harness", "check", str(path), "--targets", "litert", "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert "refused to load" in line and "check_models.custom_layers.GramDeterminant" in line
    assert "gram_det" in line and "--import MODULE" in line and "--trust-model" in line

    report = pitfalls_check(path, imports=("check_models.custom_layers",), cache=cache, profiles=("host",), progress=None)
    assert report.targets["tfserving"].verdict == "deploys"
    assert report.targets["tfserving"].max_abs_diff is not None and report.targets["tfserving"].max_abs_diff < 1e-4
    assert report.targets["litert"].verdict == "fails" and "MatrixDeterminant" in _texts(report, "litert")
    assert "Conversion for TF op 'MatrixDeterminant' not implemented" in _texts(report, "coreml")
    assert "MatrixDeterminant" in _texts(report, "tfjs") and report.targets["tfjs"].verdict == "fails"
