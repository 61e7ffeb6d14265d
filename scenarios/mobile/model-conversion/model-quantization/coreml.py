"""Core ML weight compression that compresses nothing: the default size threshold skips small weights.

``ct.optimize.coreml.linear_quantize_weights`` (int8) and ``palettize_weights`` only touch
weight tensors with at least ``weight_threshold`` elements (2048 by default).  On this small
CNN every tensor is below it (the largest, the dense kernel, has 2028), so the "compressed"
package is as large as the original, and nothing reports it.  Sizes are measured on the
package's weight file; the compressed program's ``constexpr_*`` ops show what was quantized.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.compare import accuracy
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.coreml.convert import compress_weights, convert_to_coreml
from harness.targets.coreml.kit import mil_operations, on_macos, weight_bytes

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget

SPEC = ModelSpec("cnn", "tf_keras")


def fp16_package(run: Run[CoremlTarget]) -> Path:
    """The CNN converted as coremltools does by default (an ML program with fp16 weights)."""
    return convert_to_coreml(run.cache, saved_model(run.cache, SPEC))


def measure(run: Run[CoremlTarget], package: Path, compressed: Path) -> dict[str, float]:
    """What compression did: weight file sizes, ``constexpr_*`` ops, and accuracy on macOS."""
    import numpy as np

    ops = mil_operations(compressed)
    run.note("bytes", {"weights_fp16": weight_bytes(package), "weights_compressed": weight_bytes(compressed)})
    figures = {"weight_bytes_ratio": weight_bytes(compressed) / weight_bytes(package),
               "quantized_tensors": float(sum(op.startswith("constexpr_") for op in ops))}
    if on_macos():
        x, y = trained_model(run.cache, SPEC).test_set()
        probs = np.concatenate([run.target.predict_array(compressed, xi[None]) for xi in x[:64]])
        figures["accuracy"] = accuracy(probs, y[:64])
    return figures


def faulty(run: Run[CoremlTarget]) -> dict[str, float]:
    package = fp16_package(run)
    # int8 weights asked for with the config's defaults: weight_threshold=2048 elements.
    compressed = compress_weights(run.cache, package, method="linear", config={"mode": "linear_symmetric"})
    return measure(run, package, compressed)


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    package = fp16_package(run)
    # The threshold lowered below the model's tensor sizes (the dense kernel has 2028 elements).
    compressed = compress_weights(run.cache, package, method="linear",
                                  config={"mode": "linear_symmetric", "weight_threshold": 256})
    return measure(run, package, compressed)


SCENARIO = Scenario(
    title="Core ML int8 weight quantization skips every tensor below the default size threshold",
    targets=("coreml",),
    figures={"quantized_tensors": "exact", "weight_bytes_ratio": "size"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("weight_bytes_ratio", ">", 0.95), Figure("quantized_tensors", "<=", 0)),
    remedy=succeeds(Figure("weight_bytes_ratio", "<", 0.7), Figure("quantized_tensors", ">=", 1)),
    cause="coremltools' weight compression leaves tensors smaller than `weight_threshold` (2048 "
          "elements by default) untouched, because compressing them saves little on real models. "
          "On a model whose tensors are all small, quantization silently does nothing: same "
          "size, no `constexpr_affine_dequantize` in the program.",
    fix="Measure what compression did: compare the weight file sizes and look for the "
        "`constexpr_*` dequantization ops in the compressed program; lower `weight_threshold` "
        "(here 256) when small tensors matter, and check accuracy on macOS after compressing "
        "(int8 linear quantization of fp16 weights roughly halves them; palettization to 4 bits "
        "or fewer goes further).",
    references=("https://apple.github.io/coremltools/docs-guides/source/opt-quantization-api.html",
                "https://apple.github.io/coremltools/source/coremltools.optimize.coreml.config.html"),
)
