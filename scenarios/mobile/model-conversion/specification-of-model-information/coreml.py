"""Declaring a flexible batch for Core ML: an unbounded ``ct.RangeDim`` versus a bounded one.

A Keras model accepts any batch size; the Core ML model accepts what its input description
says.  Asking for "any batch" with ``ct.RangeDim()`` (no upper bound) is refused for ML programs;
left to its defaults, the converter records a batch range of 1..2 (noted in the evidence); a
fixed ``shape=(1, 8)`` allows one example only.  The fix declares the range the app needs,
checked in the spec, and on macOS runs a batch of 16.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.coreml.convert import convert_to_coreml
from harness.targets.coreml.kit import on_macos, spec_summary

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget

SPEC = ModelSpec("dense", "tf_keras")
BATCH = 16


def unbounded_batch(ct: Any) -> list[Any]:
    return [ct.TensorType(shape=(ct.RangeDim(lower_bound=1), 8))]


def batch_up_to_64(ct: Any) -> list[Any]:
    return [ct.TensorType(shape=(ct.RangeDim(lower_bound=1, upper_bound=64, default=1), 8))]


def faulty(run: Run[CoremlTarget]) -> None:
    convert_to_coreml(run.cache, saved_model(run.cache, SPEC), inputs=unbounded_batch, label="batch 1..inf")


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    source = saved_model(run.cache, SPEC)
    default = spec_summary(convert_to_coreml(run.cache, source))
    run.note("default_conversion_input_ranges", default["inputs"][0]["ranges"])
    package = convert_to_coreml(run.cache, source, inputs=batch_up_to_64, label="batch 1..64")
    summary = run.note("spec", spec_summary(package))
    ranges = summary["inputs"][0]["ranges"]
    figures = {"max_batch": float(ranges[0][1]), "min_batch": float(ranges[0][0]),
               "features": float(ranges[1][1])}
    if on_macos():
        x, expected = trained_model(run.cache, SPEC).probe()
        figures["max_abs_diff"] = max_abs_diff(run.target.predict_array(package, x[:BATCH]), expected[:BATCH])
    return figures


SCENARIO = Scenario(
    title="Flexible batch dimension for Core ML: unbounded RangeDim refused, bounded range works",
    targets=("coreml",),
    figures={"features": "exact", "max_batch": "exact", "min_batch": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"For mlprogram, inputs with infinite upper_bound is not allowed\. Please set "
                   r"upper_bound to a positive value in \"RangeDim\(\)\""),
    remedy=succeeds(Figure("max_batch", ">=", BATCH), Figure("min_batch", "<=", 1),
                    Figure("features", ">=", 8), Figure("features", "<=", 8)),
    cause="Core ML compiles an ML program for the input shapes its description allows. A Keras "
          "model's `None` batch does not carry over by itself: an unbounded `ct.RangeDim()` is "
          "refused for ML programs ('inputs with infinite upper_bound is not allowed'), a fixed "
          "shape allows a single example, and left to its defaults the converter sets unknown "
          "dimensions to the range 1..2 (its own warning says so: 'upper bound = 2').",
    fix="State the input description explicitly: `ct.TensorType(shape=(ct.RangeDim(1, 64, "
        "default=1), 8))` (or `ct.EnumeratedShapes` for a few known shapes, which Core ML can "
        "optimise better), check the ranges in the converted spec, and run the batch sizes the "
        "app uses on macOS.",
    references=("https://apple.github.io/coremltools/docs-guides/source/flexible-inputs.html",),
)
