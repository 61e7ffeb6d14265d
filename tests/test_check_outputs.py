"""How ``pitfalls check`` compares outputs, without runtimes: several outputs paired by name or
shape, tolerances scaled by each output's own magnitude, overflow to inf/NaN, a classifier's top-1
decision, harness errors that never block a model, string inputs from a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness.check.model import InputSpec, LoadedModel
from harness.check.report import TargetReport
from harness.check.steps import HARNESS_LIMITATION, Context, compare_outputs, finding_from
from harness.compare import is_classifier_output, non_finite, pair_outputs
from harness.errors import UsageError
from harness.targets.base import ModelSource


def _model(outputs: list[str], inputs: tuple[InputSpec, ...] = (InputSpec("x", "float32", (None, 4), "normal(0, 1)"),)) -> LoadedModel:
    return LoadedModel(ModelSource(Path("/m.keras"), "keras"), "keras3", None, None, list(inputs), outputs)


def _context(outputs: list[str], reference: list[Any]) -> Context:
    import numpy as np

    return Context(_model(outputs), {"x": np.zeros((len(reference[0]), 4), "float32")}, reference,
                   None, ("host",), lambda message: None, "synthesised")  # type: ignore[arg-type]  # no cache needed to compare


def test_outputs_are_paired_by_name_then_by_shape_then_in_order() -> None:
    import numpy as np

    a, b = np.zeros((2, 3)), np.zeros((2, 1))
    assert pair_outputs({"amount": b, "label": a}, ["label", "amount"], [(2, 3), (2, 1)]) == ["label", "amount"]
    # LiteRT's names say nothing: the shapes tell the two heads apart, whatever the order
    assert pair_outputs({"Identity:0": b, "Identity_1:0": a}, ["label", "amount"], [(2, 3), (2, 1)]) == [
        "Identity_1:0", "Identity:0"]
    # two outputs of one shape and no common names: the order is all there is
    assert pair_outputs({"p": b, "q": b}, ["u", "v"], [(2, 1), (2, 1)]) == ["p", "q"]
    assert pair_outputs({"p": b}, ["u", "v"], [(2, 1), (2, 1)]) is None


def test_each_output_is_judged_against_its_own_scale_and_named() -> None:
    """A regression head of order 100 off by 0.05 is within float32's 1e-4 + 1e-3*100; a softmax
    head off by 0.05 is not, and the finding names that head and the probe."""
    import numpy as np

    rng = np.random.default_rng(0)
    label = rng.dirichlet(np.ones(3), size=4)
    amount = 100.0 * rng.standard_normal((4, 1))
    ctx = _context(["label", "amount"], [label, amount])
    report = TargetReport("litert")
    worst = compare_outputs(report, "litert", [label, amount + 0.05], ctx)
    assert worst is not None and worst.max_abs_diff == pytest.approx(0.05)
    assert report.findings == []
    shifted = label.copy()
    shifted[:, 0] += 0.05
    compare_outputs(report, "litert", [shifted, amount], ctx)
    assert len(report.findings) == 1
    finding = report.findings[0]
    assert finding.severity == "blocker" and "output 'label' diverge" in finding.text and "probe synthesised" in finding.text
    assert set(report.parity["litert"]["outputs"]) == {"label", "amount"}
    assert report.parity["litert"]["outputs"]["label"]["max_abs_diff"] == pytest.approx(0.05)


def test_inf_and_nan_are_named_as_overflow() -> None:
    import numpy as np

    want = np.linspace(-3e4, 3e4, 8).reshape(4, 2)
    got = want.copy()
    got[0, 0], got[1, 1] = np.inf, np.nan
    assert non_finite(got, want) == 2
    report = TargetReport("litert")
    compare_outputs(report, "litert float16", [got], _context(["y"], [want]), path="float16")
    assert [f.severity for f in report.findings] == ["warning"]
    assert "overflow: 2 of 8 values are inf or NaN" in report.findings[0].text


def test_a_classifier_whose_top1_moves_within_tolerance_is_a_warning() -> None:
    import numpy as np

    want = np.array([[0.5000, 0.4999, 0.0001], [0.1, 0.2, 0.7]])
    got = np.array([[0.4999, 0.5000, 0.0001], [0.1, 0.2, 0.7]])
    assert is_classifier_output(want) and not is_classifier_output(want * 3)
    report = TargetReport("tfjs")
    compare_outputs(report, "tfjs@webgl", [got], _context(["p"], [want]), path="float16")
    assert len(report.findings) == 1 and "top-1 class differs on 50% of the rows" in report.findings[0].text


def test_a_harness_error_is_a_limitation_never_a_blocker() -> None:
    """Our own KeyError on a path (as the int64 LiteRT path once raised) says the path was not
    checked; the verdict on the model cannot become 'fails' from it."""
    try:
        {}["serving_default_ids:0"]
    except KeyError as exc:
        finding = finding_from("litert", exc, "predict litert")
    assert finding.severity == "warning" and finding.fix == HARNESS_LIMITATION
    assert finding.source.startswith("pitfalls") and finding.text == "KeyError: 'serving_default_ids:0'"
    report = TargetReport("litert")
    report.add(finding)
    report.settle()
    assert report.verdict == "warnings"


def test_string_inputs_from_a_file(tmp_path: Path) -> None:
    import numpy as np

    from harness.check.model import read_inputs

    model = _model(["y"], (InputSpec("word", "string", (None, 1), "string: words of lookup", ("cat", "dog")),))
    path = tmp_path / "inputs.npz"
    np.savez(path, word=np.array([[b"cat"], [b"emu"]]))
    got = read_inputs(path, model)
    assert got["word"].dtype.kind == "U" and got["word"].tolist() == [["cat"], ["emu"]]
    np.savez(path, word=np.zeros((2, 1), "float32"))
    with pytest.raises(UsageError, match="the model takes strings"):
        read_inputs(path, model)


def test_unknown_probe_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    out = tmp_path / "report"
    assert main(["check", str(tmp_path), "--probes", "wide,huge", "--report-dir", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown probe(s) huge" in err[0] and "wide, edge" in err[0]
    assert not out.exists()


def test_probes_are_the_documented_ranges_and_leave_out_what_repeats_the_sample() -> None:
    import numpy as np

    from harness.check.model import synthesise_inputs, synthesise_probes

    floats = _model(["y"])
    probes = synthesise_probes(floats)
    sample = synthesise_inputs(floats)["x"]
    assert set(probes) == {"wide", "edge"}
    assert np.allclose(probes["wide"]["x"], sample * 10.0)
    assert set(np.unique(np.abs(probes["edge"]["x"]))) <= {0.0, 1e4}
    ids = _model(["y"], (InputSpec("ids", "int64", (None, 5), "integer [0, 20)"),))
    probes = synthesise_probes(ids)
    assert set(probes) == {"edge"}  # integers have no wider range than their embedding's
    assert set(np.unique(probes["edge"]["ids"])) == {0, 19}
    words = _model(["y"], (InputSpec("w", "string", (None, 1), "string: words of lookup", ("cat", "dog")),))
    probes = synthesise_probes(words)
    assert any(str(v).startswith("unseen-") for v in probes["wide"]["w"].ravel())
    assert set(probes["edge"]["w"].ravel()) == {""}


def test_a_model_tensorflow_cannot_run_is_a_finding_and_paths_are_not_compared() -> None:
    """The reference failing (a SavedModel whose function cannot run in a fresh process) is a
    finding with the error's text; every path then says its outputs were not compared."""
    import numpy as np

    from harness.check.steps import reference_or_none

    class Unrunnable:
        def predict(self, feed: Any, verbose: int = 0) -> Any:
            return np.zeros((2, 2)) @ np.zeros((3, 3))  # numpy's own ValueError

    model = _model(["y"])
    model.keras_model = Unrunnable()
    reference, finding = reference_or_none(model, {"x": np.zeros((2, 4), "float32")})
    assert reference is None and finding is not None
    assert finding.step == "reference" and finding.severity == "warning"
    assert "the reference could not be computed: ValueError: matmul" in finding.text
    report = TargetReport("tfserving")
    ctx = _context(["y"], [np.zeros((2, 1))])
    ctx.reference = None
    assert compare_outputs(report, "tfserving", [np.zeros((2, 1))], ctx) is None
    assert [f.severity for f in report.findings] == ["info"] and "outputs not compared" in report.findings[0].text


def test_a_runtime_error_on_the_models_own_step_is_a_finding_without_a_target() -> None:
    """Input synthesis and probes belong to no target: a runtime's error there is still a finding
    (no rule table to look up, no KeyError)."""
    import numpy as np

    try:
        np.zeros((2, 2)) @ np.zeros((3, 3))
    except ValueError as exc:
        finding = finding_from("check", exc, "inputs", severity="warning")
    assert finding.severity == "warning" and finding.step == "inputs" and "matmul" in finding.text
