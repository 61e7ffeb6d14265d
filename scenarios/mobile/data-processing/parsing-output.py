"""Reading an int8 model's output: the uint8 convention (byte / 255) versus scale and zero point."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.compare import accuracy, max_abs_diff
from harness.artifacts import ArtifactCache
from harness.models import ModelSpec, image_data, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES, dequantize, quantize

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")


def int8_model(cache: ArtifactCache) -> Path:
    calibration, _ = image_data(100, seed=SPEC.seed)
    return convert_to_tflite(cache, saved_model(cache, SPEC), quantize="int8", representative=calibration)


def raw_outputs(run: Run[LitertTarget]) -> tuple["np.ndarray", dict, "np.ndarray", "np.ndarray"]:
    """Held-out images through the int8 model, inputs quantised correctly: (raw, output details, labels, Keras)."""
    trained = trained_model(run.cache, SPEC)
    tflite = int8_model(run.cache)
    details = run.target.inspect(tflite)
    inp, out = details["inputs"][0], details["outputs"][0]
    run.note("output_quantization", out["quantization"])
    x, labels = trained.test_set()
    raw = run.target.predict(tflite, [quantize(x, inp)], profile=PROFILES["low-end"], resize=True)[0]
    run.note("raw_dtype", str(raw.dtype))
    keras_probs = trained.load().predict(x, verbose=0)
    return raw, out, labels, keras_probs


def scores(run: Run[LitertTarget], probs: "np.ndarray", labels: "np.ndarray", keras_probs: "np.ndarray") -> dict[str, float]:
    import numpy as np

    return {"max_abs_diff": max_abs_diff(probs, keras_probs),
            "label_accuracy": accuracy(probs, labels),
            "keras_accuracy": accuracy(keras_probs, labels),
            "mean_probability_sum": float(np.mean(probs.sum(1)))}


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    # Code written for the older uint8 quantised models (zero point 0, scale 1/255):
    # read the output bytes unsigned and divide by 255, as `(b & 0xFF) / 255f` in Java.
    raw, _, labels, keras_probs = raw_outputs(run)
    probs = raw.view(np.uint8).astype(np.float32) / 255.0
    return scores(run, probs, labels, keras_probs)


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    raw, out, labels, keras_probs = raw_outputs(run)
    return scores(run, dequantize(raw, out), labels, keras_probs)


SCENARIO = Scenario(
    title="An int8 model's output read as uint8 bytes / 255 instead of with its scale and zero point",
    targets=("litert",),
    figures={"keras_accuracy": "exact", "label_accuracy": "exact", "max_abs_diff": "parity",
             "mean_probability_sum": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("max_abs_diff", ">", 0.4), Figure("label_accuracy", "<", 0.5)),
    remedy=succeeds(Figure("max_abs_diff", "<=", 0.03), Figure("label_accuracy", ">=", 0.95)),
    cause="A full-integer model's output is int8 with its own scale and zero point (for a softmax "
          "the converter picks scale 1/256 and zero point -128). Older quantised models used "
          "uint8 with zero point 0, and app code often still reads the bytes unsigned and divides "
          "by 255. With int8 that is wrong twice: a confident class (q = 127) reads as 0.50 while "
          "an impossible class (q = -128) reads as 0.50 too and every negative value wraps above "
          "it, so probabilities are garbage and the argmax picks the wrong label.",
    fix="Read the output tensor's `quantization` (scale, zero_point) from `get_output_details()` "
        "and dequantise: p = (q - zero_point) * scale, on the signed values. The probabilities "
        "then match Keras within one quantisation step and the labels are right.",
    references=("https://ai.google.dev/edge/litert/models/quantization_spec",
                "https://ai.google.dev/edge/litert/models/post_training_integer_quant",
                "https://github.com/tensorflow/tensorflow/issues/43062"),
)
