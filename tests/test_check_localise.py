"""Findings located in the model (issue 22 items 1 and 4, issue 21 item 4): the first layer of a
divergence on LiteRT and on every tf.js backend, each suspect layer run alone on the same path, and
confirmed here by running that layer alone with the runtime itself; an unsupported op mapped to the
Keras layer that holds it; the per-layer table as Model Explorer node data and on the check page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactCache
from harness.check.localise import _layer_in_name, layer_alone, layer_inputs, localise, op_locations
from harness.check.model import load_model, synthesise_inputs
from harness.check.report import CheckReport, Divergence, Finding, LayerError, TargetReport
from harness.compare import Tolerance, tolerance_for
from harness.targets.base import ModelSource

from check_models import cancelling_dense_keras, outlier_dense_keras, require_targets, softsign_keras

# ------------------------------------------------------------------------------------ fast


def test_tfjs_and_litert_names_carry_the_keras_layer() -> None:
    layers = {"d1", "ln", "head"}
    assert _layer_in_name("StatefulPartitionedCall/toy_1/d1_1/MatMul", layers, "toy") == "d1"
    assert _layer_in_name("StatefulPartitionedCall/toy_1/ln_1/moments/mean", layers, "toy") == "ln"
    assert _layer_in_name("toy_1/head_1/MatMul;toy_1/head_1/BiasAdd", layers, "toy") == "head"
    assert _layer_in_name("StatefulPartitionedCall/toy_1/other_1/MatMul", layers, "toy") is None
    from harness.check.localise import layer_scoped

    ln = [f"StatefulPartitionedCall/toy_1/ln_1/{op}" for op in ("moments/mean", "Neg", "Rsqrt", "mul_1", "add_2")]
    nodes = ["x", "StatefulPartitionedCall/toy_1/d1_1/MatMul", "StatefulPartitionedCall/toy_1/d1_1/Relu", *ln, "Identity"]
    assert layer_scoped(nodes, layers | {"d1"}, "toy") == nodes[1:3] + ln[-3:]


def test_each_target_reads_the_ops_its_converter_names() -> None:
    """The converters' own wording (LiteRT 2.19's, tensorflowjs 4.22's, coremltools 9's)."""
    from harness.targets.coreml.checks import unsupported_ops as coreml_ops
    from harness.targets.litert.checks import unsupported_ops as litert_ops
    from harness.targets.tfjs.checks import unsupported_ops as tfjs_ops

    litert = ("ConverterError: ... 'tf.Softsign' op is neither a custom op nor a flex op\n<unknown>:0: error: failed\n"
              "Some ops are not supported by the native TFLite runtime, you can enable TF kernels fallback using "
              "TF Select. See instructions: https://www.tensorflow.org/lite/guide/ops_select \nTF Select ops: Softsign, "
              "MatrixDeterminant\nDetails:\n\ttf.Softsign(tensor<?x16xf32>) -> (tensor<?x16xf32>)")
    assert litert_ops(litert) == ["Softsign", "MatrixDeterminant"]
    assert litert_ops("Flex ops: FlexErf") == ["Erf"]
    assert tfjs_ops("ValueError: Unsupported Ops in the model before optimization\nSoftsign, Erf") == ["Softsign", "Erf"]
    assert coreml_ops("NotImplementedError: Conversion for TF op 'MatrixDeterminant' not implemented.\n name: "
                      "\"PartitionedCall/MatrixDeterminant\"") == ["MatrixDeterminant"]
    assert litert_ops("ValueError: something else") == tfjs_ops("x") == coreml_ops("y") == []


def _table() -> Divergence:
    want = {"a": [1.0, 2.0], "b": [1.0, 1.0], "c": [2.0, 2.0]}
    mapped = {"a": ("m_1/a_1/MatMul", [1.0, 2.0]), "b": ("m_1/b_1/Relu", [3.0, 1.0]), "c": ("model output", [9.0, 2.0])}
    d = localise("litert dynamic", ["a", "b", "c"], {k: __import__("numpy").asarray(v) for k, v in want.items()},
                 mapped, {"b": ["a"], "c": ["b"]}, Tolerance(1e-3, 1e-3))
    d.layers[1] = LayerError(**{**d.layers[1].__dict__, "local_max_abs": 2.0, "local_passes": False})
    d.layers[2] = LayerError(**{**d.layers[2].__dict__, "local_max_abs": 0.0, "local_passes": True})
    d.measured, d.measured_first_layer = ["b", "c"], "b"
    return d


def test_model_explorer_reads_the_node_data_with_its_own_classes() -> None:
    """Our export is a ``GraphNodeData`` of ai-edge-model-explorer: its dataclasses read it strictly
    (no unknown key, right types) and write back the same JSON."""
    import dacite
    from model_explorer.node_data_builder import GraphNodeData

    from harness.check.render import model_explorer_node_data

    data = model_explorer_node_data(_table())
    read = dacite.from_dict(GraphNodeData, json.loads(json.dumps(data)), config=dacite.Config(strict=True))
    written = json.loads(read.to_json_string())  # with its defaults for the optional fields we leave out
    assert {key: written[key] for key in data} == data
    assert set(read.results) == {"m_1/a_1/MatMul", "m_1/b_1/Relu", "c"}  # converted tensor names; the output by layer
    assert read.results["m_1/b_1/Relu"].value == pytest.approx(2.0)
    assert read.results["m_1/b_1/Relu"].bgColor != read.results["c"].bgColor != read.results["m_1/a_1/MatMul"].bgColor


def test_report_dir_has_the_node_data_and_the_page_shows_both_columns(tmp_path: Path) -> None:
    from harness.check.render import summary, write_report_dir

    t = TargetReport("litert", verdict="warnings")
    t.divergence = _table()
    t.localised = [t.divergence]
    t.add(Finding("blocker", "TF Select ops: Softsign", "TFLiteConverter", "runtime", step="prepare litert",
                  where="Softsign: layer hidden (tf.function m.call)"))
    report = CheckReport(model={"path": "/x/m.keras", "format": "keras"}, inputs={}, targets={"litert": t})
    written = write_report_dir(report, tmp_path)
    node_data = tmp_path / "model-explorer-litert-dynamic.json"
    assert node_data in written and json.loads(node_data.read_text())["results"]
    assert node_data.stat().st_mode & 0o777 == 0o644
    page = (tmp_path / "check.html").read_text()
    assert "local (alone)" in page and "accumulated max |diff|" in page and "2.000e+00 (fails alone)" in page
    assert "in the model: Softsign: layer hidden" in page
    data = json.loads((tmp_path / "check.json").read_text())
    row = data["targets"]["litert"]["localised"][0]["layers"][1]
    assert row["local_passes"] is False and data["targets"]["litert"]["localised"][0]["measured_first_layer"] == "b"
    text = summary(report)
    assert "alone 2.000e+00 FAILS" in text and "where: Softsign: layer hidden" in text


def test_a_layer_alone_computes_what_it_computes_in_the_model(tmp_path: Path) -> None:
    """A layer with two inputs (an Add of two branches): the one-layer model fed the reference's
    inputs to it gives the layer's own output in the whole model."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    x = keras.Input((6,), name="x")
    left = keras.layers.Dense(4, name="left")(x)
    right = keras.layers.Dense(4, activation="tanh", name="right")(x)
    out = keras.layers.Dense(2, name="out")(keras.layers.Add(name="join")([left, right]))
    path = tmp_path / "two.keras"
    keras.Model(x, out, name="two").save(path)
    model = load_model(ModelSource.from_path(path, trusted=True))
    inputs = synthesise_inputs(model)
    cache = ArtifactCache(tmp_path / "cache")
    for layer in ("join", "right"):
        arrays = layer_inputs(model, layer, inputs)
        alone = keras.models.load_model(layer_alone(model, layer, arrays, cache).path)
        assert [type(lay).__name__ for lay in alone.layers][-1] == type(model.keras_model.get_layer(layer)).__name__
        whole = keras.Model(model.keras_model.inputs, model.keras_model.get_layer(layer).output)
        np.testing.assert_allclose(alone.predict(arrays if len(arrays) > 1 else arrays[0], verbose=0),
                                   whole.predict(inputs["x"], verbose=0), rtol=1e-6, atol=1e-6)


def test_a_layer_alone_with_two_inputs_of_different_shapes_is_fed_by_name_on_litert(
        tmp_path: Path, pitfalls_targets: Any) -> None:
    """A squeeze-and-excite ``Multiply`` (a feature map times its (1, 1, C) gate, as in EfficientNet):
    LiteRT lists the one-layer model's inputs in an order of its own; run alone, each gets the array of
    the ``in_<i>`` it names (fed by position, LiteRT once said "Cannot set tensor: Dimension mismatch.
    Got 4 but expected 1 for dimension 1 of input 0" on EfficientNetB0), and LiteRT's output is Keras's."""
    import keras
    import numpy as np

    from harness.check.localise import run_alone

    require_targets("litert")
    keras.utils.set_random_seed(0)
    x = keras.Input((4, 4, 8), name="x")
    gate = keras.layers.Dense(8, activation="sigmoid", name="gate")(keras.layers.GlobalAveragePooling2D(keepdims=True)(x))
    out = keras.layers.Multiply(name="excite")([x, gate])
    path = tmp_path / "se.keras"
    keras.Model(x, out, name="se").save(path)
    model = load_model(ModelSource.from_path(path, trusted=True))
    inputs = synthesise_inputs(model)
    cache = ArtifactCache(tmp_path / "cache")
    arrays = layer_inputs(model, "excite", inputs)
    assert [a.shape[1:] for a in arrays] == [(4, 4, 8), (1, 1, 8)]
    source = layer_alone(model, "excite", arrays, cache)
    got = run_alone(pitfalls_targets.get("litert"), source, arrays, cache, options={}, load_options=None)
    want = keras.models.load_model(source.path).predict(arrays, verbose=0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_an_op_is_traced_to_the_layer_that_holds_it(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    model = load_model(ModelSource.from_path(softsign_keras(cache)))
    held = op_locations(model)
    assert {layer for layer, _ in held["Softsign"]} == {"hidden"}
    assert {layer for layer, _ in held["Softmax"]} == {"scores"}


# ------------------------------------------------------------------------------------ on the runtimes

@pytest.fixture(scope="module")
def cache(pitfalls_cache: ArtifactCache) -> ArtifactCache:
    return pitfalls_cache


def _one_layer(path: Path, layer: str) -> tuple[Any, "Any"]:
    """The layer cut out here, independently of harness.check.localise: a Keras model of that one
    layer (its config and weights) and the reference's input to it."""
    import keras

    model = keras.models.load_model(path)
    source = model.get_layer(layer)
    x = synthesise_inputs(load_model(ModelSource.from_path(path)))
    feed = keras.Model(model.inputs, source.input).predict(next(iter(x.values())), verbose=0)
    inp = keras.Input(feed.shape[1:])
    clone = type(source).from_config(source.get_config())
    alone = keras.Model(inp, clone(inp))
    clone.set_weights(source.get_weights())
    return alone, feed


def _litert_dynamic_alone(alone: Any, feed: Any, saved: Path) -> float:
    """Max |diff| of the layer exported (``model.export``), converted with dynamic-range quantisation
    (``Optimize.DEFAULT``, no representative set) and run by LiteRT itself."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    alone.export(str(saved), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    flatbuffer = converter.convert()  # kept alive: the interpreter reads the model from this buffer
    interp = Interpreter(model_content=flatbuffer)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(feed.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], feed.astype("float32"))
    interp.invoke()
    got = np.array(interp.get_tensor(interp.get_output_details()[0]["index"]))
    return float(np.max(np.abs(got.astype("float64") - alone.predict(feed, verbose=0))))


@pytest.mark.slow
def test_litert_dynamic_range_divergence_starts_in_the_layer_that_is_wrong_alone(
        cache: ArtifactCache, pitfalls_check: Any, pitfalls_targets: Any, tmp_path: Path) -> None:
    """``mixer``'s kernel has a row of 100 that Keras never uses: dynamic-range quantisation rounds
    the rest of it to 0.  check names ``mixer`` first and, run alone, wrong on its own; ``head``
    fails only by what it inherits.  LiteRT called here on each layer alone agrees; the node data
    keys are the tensor names Model Explorer's TFLite adapter gives the converted model's nodes."""
    require_targets("litert")
    path = outlier_dense_keras(cache)
    report = pitfalls_check(path, targets=["litert"], cache=cache, profiles=("host",), probes=())
    litert = report.targets["litert"]
    d = next(d for d in litert.localised if d.path == "litert dynamic")
    rows = {row.layer: row for row in d.layers}
    assert d.first_layer == d.measured_first_layer == "mixer"
    assert rows["embed"].passes and not rows["mixer"].passes and rows["mixer"].local_passes is False
    assert not rows["head"].passes and rows["head"].attribution == "accumulated" and rows["head"].local_passes is True

    tolerance = tolerance_for("int8")
    mixer, feed = _one_layer(path, "mixer")
    direct = _litert_dynamic_alone(mixer, feed, tmp_path / "mixer")
    assert direct > tolerance.atol + tolerance.rtol * float(abs(mixer.predict(feed, verbose=0)).max())
    assert rows["mixer"].local_max_abs == pytest.approx(direct, rel=1e-2, abs=1e-6)
    head, feed = _one_layer(path, "head")
    assert _litert_dynamic_alone(head, feed, tmp_path / "head") < tolerance.atol

    from harness.check.render import write_report_dir

    written = write_report_dir(report, tmp_path)
    node_data = json.loads((tmp_path / "model-explorer-litert-dynamic.json").read_text())
    assert tmp_path / "model-explorer-litert-dynamic.json" in written
    assert rows["mixer"].tensor in node_data["results"] and ";" in rows["mixer"].tensor  # LiteRT's fused tensor name

    # Model Explorer's own TFLite adapter: every key of our node data is an output tensor of one of its nodes
    from model_explorer.builtin_tflite_flatbuffer_adapter import BuiltinTfliteFlatbufferAdapter

    dynamic = pitfalls_targets.get("litert").prepare(ModelSource.from_path(path), cache, options={"quantize": "dynamic"})
    graph = BuiltinTfliteFlatbufferAdapter().convert(str(dynamic.artifact), {})["graphCollections"][0].graphs[0]
    tensors = {attr["value"] for node in graph["nodes"] for meta in node.get("outputsMetadata", [])
               for attr in meta["attrs"] if attr["key"] == "tensor_name"}
    assert set(node_data["results"]) <= tensors, (set(node_data["results"]) - tensors)


def _tfjs_alone(target: Any, alone: Any, feed: Any, backend: str, tmp_path: Path) -> Any:
    """The layer exported, converted by the tensorflowjs converter (``convert_tf_saved_model``, what
    ``tensorflowjs_converter --input_format=tf_saved_model`` runs, called here: no converter process)
    and run by tf.js itself on ``backend``."""
    import numpy as np
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    alone.export(str(tmp_path / "saved"), verbose=False)
    tf_saved_model_conversion_v2.convert_tf_saved_model(str(tmp_path / "saved"), str(tmp_path / "web"))
    with target.page({"/model/": tmp_path / "web"}, backend=backend) as page:
        got = page.evaluate("async ({data, shape}) => { const m = await tf.loadGraphModel('/model/model.json');"
                            " const y = m.predict(tf.tensor(data, shape)); return Array.from(await y.data()); }",
                            {"data": feed.ravel().tolist(), "shape": list(feed.shape)})
    return np.asarray(got, dtype="float64").reshape(alone.predict(feed, verbose=0).shape)


@pytest.mark.slow
def test_tfjs_divergence_starts_in_the_layer_that_is_wrong_alone_on_every_backend(
        cache: ArtifactCache, pitfalls_check: Any, pitfalls_targets: Any, tmp_path: Path) -> None:
    """``cancel`` sums products of +1e6 and -1e6: tf.js rounds that sum otherwise than TensorFlow.
    On each backend check runs, the intermediate node tensors name ``cancel`` first and, run alone,
    wrong on its own, ``head`` accumulated; tf.js called here on ``cancel`` alone agrees."""
    import numpy as np

    require_targets("tfjs")
    path = cancelling_dense_keras(cache)
    report = pitfalls_check(path, targets=["tfjs"], cache=cache, probes=())
    tfjs = report.targets["tfjs"]
    assert tfjs.localised, tfjs.findings
    for d in tfjs.localised:
        rows = {row.layer: row for row in d.layers}
        assert d.first_layer == d.measured_first_layer == "cancel", d.to_json()
        assert rows["embed"].passes and rows["cancel"].local_passes is False
        assert rows["head"].attribution == "accumulated" and rows["head"].local_passes is True
        assert rows["cancel"].tensor.startswith("StatefulPartitionedCall/cancelling_mlp_1/cancel_1/")
    cpu = next(d for d in tfjs.localised if d.path == "tfjs@cpu")
    alone, feed = _one_layer(path, "cancel")
    rows_fed = feed[:2]  # the rows the browser backends run
    direct = _tfjs_alone(pitfalls_targets.get("tfjs"), alone, rows_fed, "cpu", tmp_path)
    want = alone.predict(rows_fed, verbose=0)
    error = float(np.max(np.abs(direct - want)))
    tolerance = tolerance_for("float32")
    assert error > tolerance.atol + tolerance.rtol * float(np.max(np.abs(want)))
    assert next(r for r in cpu.layers if r.layer == "cancel").local_max_abs == pytest.approx(error, rel=1e-3)


# the Softsign op located in its Keras layer on LiteRT and tf.js by a real check: asserted in
# tests/test_check.py::test_softsign_model_needs_flex_on_litert_and_has_no_tfjs_kernel (one check of that model)


def test_a_path_that_diverges_only_on_a_probe_is_localised_on_that_probe() -> None:
    import numpy as np

    from harness.check.localise import diverging_inputs
    from harness.check.steps import Context, Probe

    sample, wide, edge = ({"x": np.full((2, 3), v, dtype="float32")} for v in (0.5, 10.0, 1e4))
    ctx = Context(model=None, inputs=sample, reference=None, cache=None, profiles=(), say=print,  # type: ignore[arg-type]
                  probes=(Probe("wide", wide, None), Probe("edge", edge, None)))
    report = TargetReport("litert")
    assert diverging_inputs(report, "litert int8", ctx) is None
    report.add(Finding("warning", "outputs diverge ... probe edge", "litert int8 [edge]", "runtime", step="parity"))
    assert diverging_inputs(report, "litert int8", ctx) == (" [edge]", edge)
    report.add(Finding("warning", "outputs diverge ... probe synthesised", "litert int8", "runtime", step="parity"))
    assert diverging_inputs(report, "litert int8", ctx) == ("", sample)
    assert diverging_inputs(report, "litert dynamic", ctx) is None


@pytest.mark.slow
def test_core_ml_localisation_is_skipped_with_coremltools_own_reason_off_macos(pitfalls_check: Any) -> None:
    """Off macOS Core ML does not predict, so nothing can be compared per layer: the report says
    localisation was not run and quotes coremltools' own refusal (on macOS, that text is absent)."""
    import platform

    require_targets("coreml")
    from check_models.reduce_models import plain_mlp_keras

    report = pitfalls_check(plain_mlp_keras(ArtifactCache()), targets=["coreml"], probes=(), remedies="none")
    said = [f for f in report.targets["coreml"].findings if f.step == "localise coreml"]
    if platform.system() == "Darwin":
        assert not [f for f in said if "only supported on macOS" in f.text]
        return
    assert len(said) == 1 and said[0].severity == "info", [(f.step, f.text[:200]) for f in report.targets["coreml"].findings]
    assert said[0].text.startswith("localisation not run on Core ML: the per-layer comparison needs Core ML's predictions")
    assert "Model prediction is only supported on macOS" in said[0].text
