"""The app configures the input tensor by hand (float64 values) instead of from the model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    import numpy as np

    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, _ = trained_model(run.cache, SPEC).probe()
    features = [float(v) for v in x[0]]  # the values as the app's code holds them
    run.target.predict(tflite, [np.array([features])], profile=PROFILES["host"])  # float64


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    details = run.note("model_io", run.target.inspect(tflite))
    wanted = details["inputs"][0]
    features = [[float(v) for v in row] for row in x]
    batch = np.array(features, dtype=np.dtype(wanted["dtype"]))  # dtype read from the model
    if list(batch.shape[1:]) != wanted["shape_signature"][1:]:
        run.skip(f"the model expects {wanted['shape_signature']}, not {list(batch.shape)}")
    got = run.target.predict(tflite, [batch], profile=PROFILES["host"], resize=True)[0]
    out = details["outputs"][0]
    return {"max_abs_diff": max_abs_diff(got, expected),
            "output_classes": float(out["shape_signature"][-1]),
            "input_is_float32": float(wanted["dtype"] == "float32")}


SCENARIO = Scenario(
    title="Input tensor type configured by hand (float64) instead of read from the model",
    targets=("litert",),
    figures={"input_is_float32": "exact", "max_abs_diff": "parity", "output_classes": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Got value of type FLOAT64 but expected type FLOAT32 for input 0, "
                   r"name: serving_default_input_layer:0", runtime="litert"),
    remedy=succeeds(Figure("input_is_float32", ">=", 1), Figure("output_classes", ">=", 3),
                    Figure("max_abs_diff", "<=", 1e-5)),
    cause="The interpreter copies input bytes without converting them, so the buffer must have "
          "exactly the tensor's type and size. Values collected in app code are often doubles "
          "(Python floats, numpy's default float64, Java `double[]`); LiteRT refuses them with "
          "'Got value of type FLOAT64 but expected type FLOAT32'. In the Java API the same mistake "
          "shows as a byte-count mismatch ('Cannot convert between a TensorFlowLite buffer with N "
          "bytes and a Java Buffer with M bytes').",
    fix="Configure the input and output buffers from the model, not from assumptions: read "
        "`get_input_details()`/`get_output_details()` (dtype, shape_signature, quantization), cast "
        "to that dtype, resize for the batch, and size the output from the output details.",
    references=("https://ai.google.dev/edge/litert/inference",
                "https://github.com/tensorflow/tensorflow/issues/36059",
                "https://github.com/amitshekhariitbhu/Android-TensorFlow-Lite-Example/issues/6"),
)
