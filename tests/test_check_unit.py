"""``pitfalls check`` without runtimes: bad input, the rule table, rendering, localisation logic."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.check.localise import _layer_in_name, localise
from harness.check.report import CheckReport, Divergence, Finding, LayerError, TargetReport
from harness.check.render import html_page, summary
from harness.check.rules import all_rules, rule_for
from harness.compare import Tolerance
from harness.errors import UsageError
from harness.registry import all_scenarios
from harness.targets.base import ModelSource

if TYPE_CHECKING:
    from harness.check.model import LoadedModel


def test_every_rule_names_a_catalog_scenario_of_its_target() -> None:
    catalog = {s.id: s for s in all_scenarios()}
    rules = all_rules()
    assert {rule.target for rule in rules} == {"litert", "coreml", "tfjs", "tfserving"}  # every declaration's
    for rule in rules:
        assert rule.scenario in catalog, f"rule {rule.pattern!r} names no scenario {rule.scenario}"
        assert rule.target in catalog[rule.scenario].targets
        assert rule.taxonomy == catalog[rule.scenario].taxonomy


def test_rules_match_the_texts_the_catalog_scenarios_expect() -> None:
    """Every rule's lesson raises a text the rule recognises (the scenario's own symptom regex,
    read as a sample of the runtime's wording, must overlap the rule's pattern)."""
    samples = {
        "litert": "Some ops are not supported by the native TFLite runtime, you can enable TF kernels fallback",
        "coreml": "Conversion for TF op 'MatrixDeterminant' not implemented.",
        "tfjs": "ValueError: Unsupported Ops in the model before optimization\nSoftsign",
        "tfserving": 'Serving signature name: "serving_default" not found in signature def',
    }
    for target, text in samples.items():
        rule = rule_for(target, text)
        assert rule is not None and rule.target == target
    assert rule_for("litert", "something nobody has seen") is None


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.keras", "no model at"),
    (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "is not a model this tool reads"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "without saved_model.pb"),
])
def test_bad_model_paths_are_usage_errors(tmp_path: Path, make, words: str) -> None:  # type: ignore[no-untyped-def]  # parametrised lambdas
    with pytest.raises(UsageError, match=words):
        ModelSource.from_path(make(tmp_path))


def test_truncated_keras_file_is_a_usage_error(tmp_path: Path) -> None:
    from harness.check.model import load_model

    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.10.0"}))
        zf.writestr("config.json", "{}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match="not a complete zip archive"):
        load_model(ModelSource.from_path(path))


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    out = tmp_path / "report"
    assert main(["check", str(tmp_path / "nope.keras"), "--report-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no model at" in err[0]
    assert not out.exists()
    assert main(["check", str(tmp_path), "--targets", "litert,vax"]) == 2
    assert "unknown target" in capsys.readouterr().err


def test_layer_names_in_converter_tensor_names() -> None:
    layers = {"conv", "dense", "dense_1"}
    # Keras 3 exports add _1 to every scope; tf_keras keeps the names
    assert _layer_in_name("sequential_1/dense_1_1/MatMul", layers, "sequential") == "dense_1"
    assert _layer_in_name("sequential_1/dense_1/MatMul", layers, "sequential") == "dense"
    assert _layer_in_name("sequential/dense_1/MatMul;sequential/dense_1/Relu", layers, "sequential") == "dense_1"
    assert _layer_in_name("StatefulPartitionedCall:0", layers, "sequential") is None


def test_localise_attributes_the_first_local_failure() -> None:
    import numpy as np

    want = {name: np.ones((2, 4)) for name in ("a", "b", "c")}
    mapped = {"a": ("t_a", np.ones((2, 4))), "b": ("t_b", np.ones((2, 4)) * 3), "c": ("t_c", np.ones((2, 4)) * 2)}
    d = localise("x", ["a", "b", "c", "d"], want, mapped, {"b": ["a"], "c": ["b"]}, Tolerance(1e-3, 1e-3))
    assert [r.attribution for r in d.layers] == ["ok", "local", "accumulated"]
    assert d.first_layer == "b" and d.unmapped == []


def test_localise_looks_through_fused_layers() -> None:
    """conv -> bn (fused away, no tensor) -> relu: relu's comparable parent is conv."""
    import numpy as np

    want = {name: np.ones((2, 4)) for name in ("conv", "bn", "relu")}
    mapped = {"conv": ("t", np.ones((2, 4)) * 2), "relu": ("t2", np.ones((2, 4)) * 2)}
    d = localise("x", ["conv", "bn", "relu"], want, mapped, {"bn": ["conv"], "relu": ["bn"]}, Tolerance(1e-3, 1e-3))
    assert [r.attribution for r in d.layers] == ["local", "accumulated"]
    assert d.first_layer == "conv" and d.unmapped == ["bn"]


def test_report_json_html_and_summary_agree() -> None:
    t = TargetReport("litert", max_abs_diff=0.2)
    t.add(Finding("blocker", "Some ops are not supported <b>", "TFLiteConverter", "runtime",
                  taxonomy="mobile/model-conversion/conversion-of-unsupported-models",
                  scenario="mobile/model-conversion/conversion-of-unsupported-models/litert", fix="rewrite", step="prepare"))
    t.divergence = Divergence("litert int8", {"atol": 0.05, "rtol": 0.05}, "c1",
                              [LayerError("c1", "seq/c1", 1.2, 0.9, 0.1, False, "local")])
    t.settle()
    report = CheckReport(model={"path": "/m.keras", "format": "keras", "flavour": "keras3", "parameters": 10,
                                "inputs": [], "outputs": []}, inputs={}, targets={"litert": t})
    data = report.to_json()
    assert data["schema"] == "pitfalls-check/1" and data["targets"]["litert"]["verdict"] == "fails"
    assert data["targets"]["litert"]["divergence"]["first_layer"] == "c1"
    assert not report.ok and report.exit_code() == 1
    page = html_page(report)
    assert "&lt;b&gt;" in page and "<b>" not in page.split("<script")[0].split("<body")[1]
    assert "pitfalls explain mobile/model-conversion/conversion-of-unsupported-models/litert" in page
    text = summary(report)
    assert "litert" in text and "fails" in text and "first layer that fails while its inputs pass: c1" in text


def _model_taking(name: str, dtype: str, shape: tuple[int | None, ...]) -> "LoadedModel":
    from harness.check.model import InputSpec, LoadedModel

    return LoadedModel(ModelSource(Path("/m.keras"), "keras"), "keras3", None, None,
                       [InputSpec(name, dtype, shape, "normal(0, 1)")], ["out"])


@pytest.mark.parametrize("arrays, words", [
    ({"other": ("float32", (2, 8))}, "do not match the model's inputs"),
    ({"features": ("float32", (2, 7))}, "has shape [2, 7], the model takes"),
    ({"features": ("float32", (2, 8, 1))}, "has shape [2, 8, 1], the model takes"),
    ({"features": ("int64", (2, 8))}, "is int64, the model takes float32"),
])
def test_inputs_file_with_wrong_names_shapes_or_dtypes_is_a_usage_error(
        tmp_path: Path, arrays: dict[str, tuple[str, tuple[int, ...]]], words: str) -> None:
    import numpy as np

    from harness.check.model import read_inputs

    path = tmp_path / "inputs.npz"
    np.savez(path, **{k: np.zeros(shape, dtype=dtype) for k, (dtype, shape) in arrays.items()})
    with pytest.raises(UsageError) as caught:
        read_inputs(path, _model_taking("features", "float32", (None, 8)))
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_inputs_file_that_fits_is_read_in_the_model_dtype(tmp_path: Path) -> None:
    import numpy as np

    from harness.check.model import read_inputs

    path = tmp_path / "inputs.npz"
    np.savez(path, features=np.ones((3, 8), dtype="float64"))
    got = read_inputs(path, _model_taking("features", "float32", (None, 8)))
    assert got["features"].dtype == np.float32 and got["features"].shape == (3, 8)
    with pytest.raises(UsageError, match="no such file"):
        read_inputs(tmp_path / "missing.npz", _model_taking("features", "float32", (None, 8)))


def test_integer_inputs_are_synthesised_within_the_embedding_that_reads_them(tmp_path: Path) -> None:
    """Two inputs, one Embedding: only the input it reads gets its range; the other stays float."""
    import keras
    import numpy as np

    from harness.check.model import load_model, synthesise_inputs

    tokens, extra = keras.Input((5,), dtype="int32", name="tokens"), keras.Input((3,), name="extra")
    flat = keras.layers.Flatten()(keras.layers.Embedding(40, 4, name="emb")(tokens))
    model = keras.Model([tokens, extra], keras.layers.Dense(2)(keras.layers.Concatenate()([flat, extra])))
    model.save(tmp_path / "m.keras")
    loaded = load_model(ModelSource.from_path(tmp_path / "m.keras"))
    assert {i.name: i.kind for i in loaded.inputs} == {"tokens": "integer [0, 40)", "extra": "normal(0, 1)"}
    x = synthesise_inputs(loaded)
    assert x["tokens"].dtype == np.int32 and 0 <= x["tokens"].min() and x["tokens"].max() < 40


def test_a_runtime_text_no_rule_knows_is_listed_as_unknown_in_json_html_and_terminal() -> None:
    """A target runtime's own text with no rule is an unknown text (once, keyed without paths and
    numbers); a text a rule maps is not, nor pitfalls' own errors, nor the model's own steps."""
    from harness.check.report import text_key
    from harness.check.steps import finding_from
    from harness.errors import HarnessError, RuntimeFailure

    t = TargetReport("litert")
    strange = RuntimeFailure("LiteRT", "tensorflow/lite/kernels/strange.cc:41 <script>odd</script> 8 != 16 at /tmp/x1/m.tflite",
                             source="interpreter")
    t.add(finding_from("litert", strange, "load litert"))
    t.add(finding_from("litert", RuntimeFailure("LiteRT", strange.message.replace("8 != 16", "3 != 4"),
                                                source="interpreter"), "load litert@low-end"))
    known = RuntimeFailure("TFLiteConverter", "Some ops are not supported by the native TFLite runtime", source="convert")
    t.add(finding_from("litert", known, "prepare litert"))
    t.add(finding_from("litert", HarnessError("pitfalls' own trouble"), "predict litert"))
    assert [f.quoted for f in t.findings] == [True, True, True, False]
    assert t.findings[2].scenario is not None and not t.findings[2].unknown
    t.settle()
    report = CheckReport(model={"path": "/m.keras", "format": "keras", "flavour": "keras3", "parameters": 1,
                                "inputs": [], "outputs": []}, inputs={}, targets={"litert": t})
    report.findings.append(finding_from("check", RuntimeFailure("TensorFlow", "model's own text"), "reference"))
    unknown = report.to_json()["unknown_texts"]
    assert [(u["target"], u["step"]) for u in unknown] == [("litert", "load litert")]  # the same key once
    assert unknown[0]["key"] == text_key(strange.message) == "tensorflow<path>:<n> <script>odd</script> <n> != <n> at <path>"
    assert unknown[0]["text"] == strange.message
    page = html_page(report)
    section = page.split('id="unknown-texts"')[1].split("</section>")[0]
    assert "&lt;script&gt;odd&lt;/script&gt;" in section and "<script>odd" not in page
    assert "unknown texts (1" in summary(report)
    quiet = CheckReport(model=report.model, inputs={}, targets={"litert": TargetReport("litert")})
    assert quiet.to_json()["unknown_texts"] == [] and 'id="unknown-texts"' not in html_page(quiet)
