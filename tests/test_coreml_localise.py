"""Core ML in ``pitfalls check`` (issue 22): per-layer localisation through the mechanism LiteRT and
tf.js use (a multi-output model of the layers converted with coremltools; Core ML predicts it on
macOS only, elsewhere the row quotes coremltools' refusal), and coremltools' own warning that it
bounded an unknown dimension at 2, with the bounded-range remedy tried on the user's model."""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

from harness.artifacts import ArtifactCache
from harness.targets.base import ModelSource

from check_models import cancelling_dense_keras, require_targets
from check_models.wild import large_activations_keras

#: coremltools 9.0's warning, verbatim up to the point it names its own API
FLEXIBLE_WARNING = ("Some dimensions in the input shape are unknown, hence they are set to flexible ranges with lower "
                    "bound and default value = 1, and upper bound = 2. To set different values for the default shape "
                    "and upper bound, please use the ct.")


def test_the_spec_outputs_follow_the_keras_outputs() -> None:
    from harness.targets.coreml.localise import in_output_order

    assert in_output_order(["Identity_2", "Identity", "Identity_10", "Identity_1", *(f"Identity_{i}" for i in range(3, 10))]) \
        == ["Identity", *(f"Identity_{i}" for i in range(1, 11))]
    assert in_output_order(["logits", "Identity"]) == ["logits", "Identity"]  # not the frontend's names: as given


def test_a_layer_that_overflows_fails_with_no_signal_left() -> None:
    """float16 overflow gives inf where the reference is finite: the row fails, its SQNR is -inf."""
    import math

    import numpy as np

    from harness.check.localise import _layer_error
    from harness.compare import tolerance_for

    want = np.array([[1e5, -1e5, 3.0]], dtype="float32")
    for got in (want * np.float32(np.inf), np.full_like(want, np.nan)):
        row = _layer_error("amplify", "large_activations/amplify", got, want, tolerance_for("float32"))
        assert not row.passes and row.sqnr_db == -math.inf


@pytest.mark.slow
def test_one_conversion_makes_every_layer_a_core_ml_output(tmp_path: Any) -> None:
    """The intermediate model is one coremltools conversion whose spec outputs are the layers'
    outputs, in layer order (their shapes are the Keras layers' own)."""
    require_targets("coreml")
    from harness.check.model import layer_outputs, load_model, synthesise_inputs
    from harness.counts import counting
    from harness.targets.coreml.kit import program_tensor_shapes
    from harness.targets.coreml.localise import in_output_order, intermediates_model
    from harness.targets.coreml.target import CoremlTarget

    models = ArtifactCache()
    cache = ArtifactCache(root=tmp_path / "cache")  # empty: the conversion is really made here
    model = load_model(ModelSource.from_path(cancelling_dense_keras(models)))
    reference = layer_outputs(model, synthesise_inputs(model, batch=3))
    with CoremlTarget() as target, counting() as tally:
        prepared, layers = intermediates_model(target, model, cache, {})
        with target.load(prepared) as deployed:
            names = in_output_order([t.name for t in deployed.signature().outputs])
    assert layers == ["embed", "cancel", "head"] == list(reference)
    assert tally["artifacts built: coreml"] == 1, dict(tally)
    shapes = program_tensor_shapes(prepared.artifact)
    assert [shapes[name][1:] for name in names] == [reference[layer].shape[1:] for layer in layers] \
        == [(32,), (16,), (4,)]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "darwin", reason="off macOS only: coremltools refuses to predict there")
def test_check_off_macos_finds_the_default_bound_tries_the_bound_and_does_not_localise(pitfalls_check: Any) -> None:
    require_targets("coreml")
    report = pitfalls_check(large_activations_keras(ArtifactCache()), targets=["coreml"], probes=())
    coreml = report.targets["coreml"]
    flexible = [f for f in coreml.findings if f.text.startswith(FLEXIBLE_WARNING)]
    assert len(flexible) == 1, [(f.step, f.text[:120]) for f in coreml.findings]
    finding = flexible[0]
    assert (finding.severity, finding.source, finding.verified, finding.step) == ("warning", "coremltools", "runtime", "prepare")
    assert finding.where == "input x [1, 4] ranges [[1, 2], [4, 4]]"
    assert finding.scenario == "mobile/model-conversion/specification-of-model-information/coreml"
    bounded = [r for r in finding.remedies if r.name == "bounded flexible shapes"]
    assert len(bounded) == 1 and bounded[0].verdict == "works", finding.remedies
    assert "coremltools converted it without the warning; the spec records x upper bounds [" in bounded[0].evidence
    assert "Model prediction is only supported on macOS" in bounded[0].evidence  # its refusal, quoted
    said = [f for f in coreml.findings if f.step == "localise coreml"]
    assert len(said) == 1 and said[0].severity == "info" and said[0].source == "coremltools", said
    assert said[0].text.startswith("localisation not run on Core ML: the per-layer comparison needs Core ML's "
                                   "predictions, and coremltools refused them here: Model prediction is only "
                                   "supported on macOS")
    assert "coreml intermediates.outputs" not in coreml.figures  # nothing diverged: the layers are not converted
    assert coreml.divergence is None


@pytest.mark.slow
def test_the_bounded_conversion_records_the_bound_in_the_spec(tmp_path: Any) -> None:
    """The remedy's conversion, read back: no warning from coremltools, the spec's range 1..N."""
    require_targets("coreml")
    from harness.targets.coreml.convert import FLEXIBLE_DEFAULTS, conversion_warnings, coreml_from_source
    from harness.targets.coreml.kit import spec_summary
    from harness.targets.coreml.remedies import convert_bounded

    cache = ArtifactCache(root=tmp_path / "cache")
    source = ModelSource.from_path(large_activations_keras(ArtifactCache()))
    as_given, _ = coreml_from_source(cache, source, {"route": "concrete-function"})
    assert any(text.startswith(FLEXIBLE_WARNING) for text in conversion_warnings(as_given))
    assert spec_summary(as_given)["inputs"][0]["ranges"] == [[1, 2], [4, 4]]
    package, _ = convert_bounded(cache, source, {"route": "concrete-function"}, {"x": [16, None]}, {"x": [1, 4]})
    assert not [t for t in conversion_warnings(package) if re.search(FLEXIBLE_DEFAULTS, t)]
    assert spec_summary(package)["inputs"][0]["ranges"] == [[1, 16], [4, 4]]


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts on macOS only (coremltools: Model prediction "
                    "is only supported on macOS)")
def test_core_ml_float16_localised_to_the_layer_that_overflows(pitfalls_check: Any, tmp_path: Any) -> None:
    """macOS: the ML program's default float16 overflows in ``amplify`` (activations ~1e5 > 65504);
    the Core ML table names it first, and run alone on Core ML it fails too.  Two rows: the batch
    range 1..2 coremltools gives the free batch by itself."""
    import numpy as np

    require_targets("coreml")
    rows = tmp_path / "rows.npz"
    np.savez(rows, x=np.random.default_rng(0).standard_normal((2, 4)).astype("float32"))
    report = pitfalls_check(large_activations_keras(ArtifactCache()), targets=["coreml"], inputs=rows, probes=(),
                            remedies="none")
    divergence = report.targets["coreml"].divergence
    assert divergence is not None, [(f.step, f.text[:200]) for f in report.targets["coreml"].findings]
    assert divergence.path == "coreml"
    assert divergence.first_layer == "amplify"
    assert divergence.measured_first_layer == "amplify"
