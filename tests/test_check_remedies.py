"""Remedies ``pitfalls check`` tries on the user's model (issue 22, item 2): one small seeded model
per finding kind, each verdict the one its runtime gave after the change.

Works: selective int8 and float16 on a model whose int8 path diverges in one layer (LiteRT); another
tf.js backend where wasm has no kernel; a gRPC request in the signature's dtype (TF Serving); the
concrete-function route (Core ML).  Does not work, reported as such: Select TF ops and kept tensor
lists on a LiteRT without the Flex delegate; tensorflowjs_converter --skip_op_check.
The int8 divergence fixed by selective int8 and float16 (the spiky MLP) is the README's full
example, run and checked by tests/test_readme_example.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.artifacts import ArtifactCache, library_versions
from harness.check.remedies import Remedy
from harness.check.report import CheckReport, Finding, RemedyTried, TargetReport
from harness.errors import UsageError

from check_models import require_targets, softsign_keras
from check_models.wild import int64_ids_keras

REVISION = 1


def _model(cache: ArtifactCache, name: str, filename: str, build: Callable[[Path], None]) -> Path:
    key = {"model": name, "revision": REVISION, "versions": library_versions("tensorflow", "keras")}
    return cache.get_or_build("remedy-model", key, build) / filename


def spiky_keras(cache: ArtifactCache) -> Path:
    """The MLP of the README's full example (``examples/finding-to-fix/build_model.py``): its middle
    Dense layer has one weight 400x the others, so per-tensor int8 weights round every other weight
    of that layer to 0 and its int8 output is wrong on its own."""
    import importlib.util

    from harness.paths import REPO_ROOT

    spec = importlib.util.spec_from_file_location("finding_to_fix_model",
                                                  REPO_ROOT / "examples" / "finding-to-fix" / "build_model.py")
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    return _model(cache, "spiky", "spiky.keras", lambda out: example.build(out / "spiky.keras"))


def tensor_list_saved_model(cache: ArtifactCache) -> Path:
    """A SavedModel that writes a TensorArray of unknown element shape in a while loop (running sums):
    the TF Lite converter cannot lower its tensor lists to builtins."""
    def build(out: Path) -> None:
        import tensorflow as tf

        class RunningSums(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def serve(self, x: Any) -> Any:
                n = tf.shape(x)[0]
                sums = tf.TensorArray(tf.float32, size=n, element_shape=None, dynamic_size=True)
                _, sums = tf.while_loop(lambda i, ta: i < n,
                                        lambda i, ta: (i + 1, ta.write(i, tf.reduce_sum(x[: i + 1], axis=0))),
                                        (0, sums))
                return {"sums": sums.stack()}

        module = RunningSums()
        tf.saved_model.save(module, str(out / "sums"), signatures={"serving_default": module.serve})

    return _model(cache, "tensor_list", "sums", build)


def spectrum_saved_model(cache: ArtifactCache) -> Path:
    """|rfft(x)|: tf.js runs it on cpu and webgl; the wasm backend has no Complex kernel."""
    def build(out: Path) -> None:
        import tensorflow as tf

        class Spectrum(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="signal")])
            def serve(self, x: Any) -> Any:
                return {"magnitude": tf.abs(tf.signal.rfft(x))}

        module = Spectrum()
        tf.saved_model.save(module, str(out / "spectrum"), signatures={"serving_default": module.serve})

    return _model(cache, "spectrum", "spectrum", build)


@pytest.fixture(scope="module")
def cache() -> ArtifactCache:
    return ArtifactCache()


def _tried(report: CheckReport, target: str, remedy: str) -> list[tuple[Finding, RemedyTried]]:
    return [(f, r) for f in report.targets[target].findings for r in f.remedies if r.name == remedy]


def _one(report: CheckReport, target: str, remedy: str) -> tuple[Finding, RemedyTried]:
    found = _tried(report, target, remedy)
    assert found, [(f.step, f.text[:120], f.remedies) for f in report.targets[target].findings]
    return found[0]


@pytest.mark.slow
def test_select_tf_ops_does_not_work_on_a_litert_without_flex(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """Builtins refuse Softsign; the remedy converts with Select TF ops and this LiteRT says it cannot
    run them: a remedy that does not work, reported with the interpreter's own text, never as a fix."""
    require_targets("litert")
    report = pitfalls_check(softsign_keras(cache), targets=["litert"], profiles=("host",), probes=())
    finding, flex = _one(report, "litert", "Select TF ops")
    assert finding.step == "prepare litert" and "Softsign" in finding.text
    assert flex.verdict == "does not work", flex
    assert "Select TensorFlow op(s), included in the given model, is(are) not supported by this interpreter" \
        in flex.evidence
    assert not finding.fixes() and report.targets["litert"].verdict == "fails"
    from harness.check.render import summary

    assert "tried: does not work: Select TF ops:" in summary(report)


@pytest.mark.slow
def test_tensor_list_model_converts_with_the_flag_the_converter_names(cache: ArtifactCache,
                                                                       pitfalls_check: Any) -> None:
    """The converter asks for `_experimental_lower_tensor_list_ops = False` with Select TF ops; with
    them it converts (the refusal is gone), and this LiteRT's verdict on running it is recorded."""
    require_targets("litert")
    report = pitfalls_check(tensor_list_saved_model(cache), targets=["litert"], profiles=("host",), probes=())
    finding, kept = _one(report, "litert", "keep tensor lists")
    assert "Lowering tensor list ops is failed" in finding.text
    assert "prepare" not in kept.evidence.split(":")[0], kept  # it converted: the verdict comes from running it
    if kept.verdict == "works":
        assert "max |diff|" in kept.evidence
    else:  # a LiteRT without the Flex delegate says so itself
        assert kept.verdict == "does not work"
        assert "Select TensorFlow op(s)" in kept.evidence or "Flex" in kept.evidence, kept


@pytest.mark.slow
def test_another_tfjs_backend_works_where_wasm_has_no_kernel(cache: ArtifactCache, pitfalls_check: Any) -> None:
    require_targets("tfjs")
    report = pitfalls_check(spectrum_saved_model(cache), targets=["tfjs"], probes=())
    finding, other = _one(report, "tfjs", "another backend")
    assert finding.step == "predict tfjs@wasm" and "Kernel 'Complex' not registered for backend 'wasm'" in finding.text
    assert other.verdict == "works", other
    assert other.evidence.startswith("tfjs@cpu: max |diff|") and "tf.setBackend('cpu')" in other.change
    assert report.targets["tfjs"].parity["tfjs@cpu"]["max_abs_diff"] < 1e-4


@pytest.mark.slow
def test_serving_dtype_and_core_ml_route(cache: ArtifactCache, pitfalls_check: Any) -> None:
    """TF Serving refuses float32 ids and answers int64 ones (the reference's values); Core ML
    converts the Keras 3 model through the concrete-function route; float32 precision cannot be
    judged off macOS, and says so with coremltools' text."""
    require_targets("tfserving", "coreml")
    report = pitfalls_check(int64_ids_keras(cache), targets=["tfserving", "coreml"], probes=())
    finding, dtype = _one(report, "tfserving", "send the signature's dtype")
    assert finding.step == "signature" and "int64" in finding.text
    assert dtype.verdict == "works", dtype
    assert "Expects arg[0] to be int64 but float is provided" in dtype.evidence
    assert "max |diff| 0 against the reference" in dtype.evidence and "ids as int64" in dtype.change
    # the export clients need: float JSON refused by the model as given, taken by the float32 export
    _, export = _one(report, "tfserving", "export a float32 signature")
    assert export.verdict == "works", export
    assert "is not of expected type: int64" in export.evidence  # the server's refusal of float JSON, as given
    assert "float-signature export: max |diff| 0 against the reference" in export.evidence
    assert "ids float32 served" in export.change and "ids int64" in export.change
    finding, route = _one(report, "coreml", "concrete-function route")
    assert "Input model path should be .h5/.hdf5 file or a directory" in finding.text
    assert route.verdict == "works" and "coremltools converted it: model.mlpackage" in route.evidence
    import platform

    if platform.system() != "Darwin":
        _, precision = _one(report, "coreml", "compute precision float32")
        assert precision.verdict == "not applicable"
        assert "Model prediction is only supported on macOS" in precision.evidence


@pytest.mark.slow
def test_remedies_none_tries_nothing(cache: ArtifactCache, pitfalls_check: Any) -> None:
    require_targets("litert")
    report = pitfalls_check(spiky_keras(cache), targets=["litert"], profiles=("host",), probes=(), remedies="none")
    assert any(f.step == "parity" for f in report.targets["litert"].findings)
    assert all(not f.remedies for f in report.targets["litert"].findings)
    assert all(f.to_json()["remedies"] == [] for f in report.targets["litert"].findings)


def test_unknown_remedies_mode_is_a_usage_error(tmp_path: Path) -> None:
    from harness.check import check

    with pytest.raises(UsageError, match="unknown --remedies 'sometimes': choose from auto, none"):
        check(tmp_path / "model.keras", remedies="sometimes", progress=None)


def test_a_remedy_names_the_findings_it_applies_to() -> None:
    def attempt(*_: Any) -> RemedyTried:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="names no finding"):
        Remedy("anything", "a change", "a runtime", attempt)
    remedy = Remedy("float16 instead", "f16", "LiteRT", attempt, step="parity", source="litert int8")
    diverged = Finding("warning", "outputs diverge", "litert int8 [wide]", "runtime", step="parity")
    assert remedy.applies(diverged)
    assert not remedy.applies(Finding("info", "outputs diverge", "litert int8", "runtime", step="parity"))
    assert not remedy.applies(Finding("warning", "outputs diverge", "litert dynamic", "runtime", step="parity"))


def test_remedy_evidence_is_escaped_on_the_check_page() -> None:
    """The attack: a runtime's text (and so a remedy's evidence) carrying markup stays text."""
    from harness.check.render import html_page

    payload = "<script>alert(1)</script>"
    target = TargetReport("litert")
    target.add(Finding("blocker", "refused", "TFLiteConverter", "runtime", step="prepare litert",
                       remedies=(RemedyTried(f"Select TF ops{payload}", "does not work", f"interpreter: {payload}",
                                             f"flags {payload}"),
                                 RemedyTried("float16 instead", "works", "litert float16: max |diff| 1e-05"))))
    report = CheckReport(model={"path": "m.keras", "format": "keras"}, inputs={}, targets={"litert": target})
    page = html_page(report)
    assert payload not in page.split('<script type="application/json" id="report">')[0]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<strong>fix: works</strong>" in page and "tried: does not work" in page


def test_what_a_remedy_raises_is_its_verdict_and_one_attempt_serves_a_path() -> None:
    """A runtime's refusal raised inside a remedy is `does not work` with its text; pitfalls' own
    error (a usage error too) is `not applicable`, never the end of the check; the sample's finding
    and a probe's finding on the same path share one attempt."""
    import types

    from harness.check.remedies import try_remedies
    from harness.errors import HarnessError, RuntimeFailure

    calls: list[str] = []

    def refused(*_: Any) -> RemedyTried:
        calls.append("refused")
        raise RuntimeFailure("LiteRT", "Select TensorFlow op(s) are not supported by this interpreter")

    def broken(*_: Any) -> RemedyTried:
        calls.append("broken")
        raise UsageError("unknown LiteRT prepare option(s) nonsense")

    def ours(*_: Any) -> RemedyTried:
        calls.append("ours")
        raise HarnessError("a bug of pitfalls")

    remedies = (Remedy("refused", "c", "v", refused, step="parity"), Remedy("broken", "c", "v", broken, step="parity"),
                Remedy("ours", "c", "v", ours, step="prepare x"))
    report = TargetReport("x")
    report.add(Finding("warning", "diverge", "x int8", "runtime", step="parity"))
    report.add(Finding("warning", "diverge", "x int8 [wide]", "runtime", step="parity"))
    report.add(Finding("info", "converted", "x", "runtime", step="prepare x"))
    said: list[str] = []
    ctx: Any = types.SimpleNamespace(remedies=True, say=said.append)
    try_remedies(Any, report, ctx, remedies)  # type: ignore[arg-type]
    assert calls == ["refused", "broken"]  # once per path; the info finding gets none
    sample, probe, info = report.findings
    assert sample.remedies == probe.remedies and not info.remedies
    assert [(r.name, r.verdict) for r in sample.remedies] == [("refused", "does not work"), ("broken", "not applicable")]
    assert "Select TensorFlow op(s) are not supported" in sample.remedies[0].evidence
    assert "its own error, not a verdict" in sample.remedies[1].evidence
    assert said == ["x: trying refused for parity of x int8", "x: refused: does not work",
                    "x: trying broken for parity of x int8", "x: broken: not applicable"]
    ctx.remedies = False  # --remedies none
    fresh = TargetReport("x")
    fresh.add(Finding("warning", "diverge", "x int8", "runtime", step="parity"))
    try_remedies(Any, fresh, ctx, remedies)  # type: ignore[arg-type]
    assert not fresh.findings[0].remedies and calls == ["refused", "broken"]
