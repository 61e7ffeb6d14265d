"""Reading what a converted int8 model expects: input/output dtypes and quantisation parameters."""

from __future__ import annotations

from pathlib import Path

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.artifacts import ArtifactCache
from harness.models import ModelSpec, saved_model, tabular_data, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES, dequantize, quantize

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def int8_model(cache: ArtifactCache) -> Path:
    calibration, _ = tabular_data(100, seed=SPEC.seed)
    return convert_to_tflite(cache, saved_model(cache, SPEC), quantize="int8", representative=calibration)


def faulty(run: Run[LitertTarget]) -> None:
    # The app was written for the float model: it sets float32 features on the int8 model.
    x, _ = trained_model(run.cache, SPEC).probe()
    run.target.predict(int8_model(run.cache), [x], profile=PROFILES["host"], resize=True)


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    tflite = int8_model(run.cache)
    details = run.target.inspect(tflite)
    inp, out = details["inputs"][0], details["outputs"][0]
    run.note("input", {k: inp[k] for k in ("name", "dtype", "shape_signature", "quantization")})
    run.note("output", {k: out[k] for k in ("name", "dtype", "shape_signature", "quantization")})
    x, expected = trained.probe()
    raw = run.target.predict(tflite, [quantize(x, inp)], profile=PROFILES["host"], resize=True)[0]
    probs = dequantize(raw, out)
    return {"input_scale": float(inp["quantization"][0]),
            "max_abs_diff": max_abs_diff(probs, expected),
            "label_agreement": label_agreement(probs, expected)}


SCENARIO = Scenario(
    title="float32 features set on a full-integer model whose input is int8",
    targets=("litert",),
    figures={"input_scale": "exact", "label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Got value of type FLOAT32 but expected type INT8 for input 0, "
                   r"name: serving_default_\w+:0", runtime="litert"),
    remedy=succeeds(Figure("input_scale", ">", 0), Figure("max_abs_diff", "<=", 0.03),
                    Figure("label_agreement", ">=", 1.0)),
    cause="A full-integer model (inference_input_type = inference_output_type = tf.int8) no longer "
          "takes the float features the Keras model took: its input tensor is int8 with a scale "
          "and zero point chosen by the converter, and its output is int8 too. Code that assumes "
          "float32 fails in set_tensor with 'Cannot set tensor: Got value of type FLOAT32 but "
          "expected type INT8 for input 0'.",
    fix="Read the converted model instead of assuming: `get_input_details()` and "
        "`get_output_details()` give each tensor's dtype, shape, shape_signature and "
        "`quantization` (scale, zero_point). Quantise inputs as round(x / scale) + zero_point, "
        "dequantise outputs as (q - zero_point) * scale; the probabilities then match Keras "
        "within the int8 step and every label agrees.",
    references=("https://ai.google.dev/edge/litert/models/post_training_integer_quant",
                "https://ai.google.dev/edge/litert/models/quantization_spec",
                "https://github.com/tensorflow/tensorflow/issues/43062"),
)
