"""Post-training quantisation: dynamic range, float16 and full integer, size and accuracy measured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import accuracy
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")
REPRESENTATIVE = 100  # training images fed to the converter to calibrate activation ranges


def accuracy_on_device(model_path: str, x: "np.ndarray", y: "np.ndarray") -> float:
    """Runs in the LiteRT worker: quantise inputs / dequantise outputs as the model's details say."""
    import numpy as np

    from harness.targets.litert.kit import dequantize, quantize
    from harness.targets.litert.worker import interpreter

    interp = interpreter(model_path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(inp["index"], x if inp["dtype"] == np.float32 else quantize(x, inp))
    interp.invoke()
    probs = interp.get_tensor(out["index"])
    if out["dtype"] != np.float32:
        probs = dequantize(probs, out)
    return accuracy(probs, y)


def full_integer_without_calibration(converter: Any, tf: Any) -> None:
    """Full-integer quantisation as a conversion script spells it: int8 kernels only, int8 input
    and output, but no representative dataset."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def full_integer_with_calibration(converter: Any, tf: Any) -> None:
    """The same settings plus the representative dataset: 100 training images, one at a time."""
    from harness.models import image_data

    full_integer_without_calibration(converter, tf)
    images, _ = image_data(REPRESENTATIVE, seed=SPEC.seed)
    converter.representative_dataset = lambda: ([images[i: i + 1]] for i in range(len(images)))


def faulty(run: Run[LitertTarget]) -> None:
    convert_to_tflite(run.cache, saved_model(run.cache, SPEC), configure=full_integer_without_calibration,
                      label="int8 in and out, TFLITE_BUILTINS_INT8, no representative_dataset")


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    source = saved_model(run.cache, SPEC)
    x, y = trained.test_set()
    run.figure("keras_accuracy", trained.info()["accuracy"])
    models = {"none": convert_to_tflite(run.cache, source),
              "dynamic": convert_to_tflite(run.cache, source, quantize="dynamic"),
              "float16": convert_to_tflite(run.cache, source, quantize="float16"),
              "int8": convert_to_tflite(run.cache, source, configure=full_integer_with_calibration,
                                        label=f"int8 in and out, TFLITE_BUILTINS_INT8, representative_dataset "
                                              f"of {REPRESENTATIVE} training images (seed {SPEC.seed})")}
    figures: dict[str, float] = {}
    for mode, path in models.items():
        figures[f"bytes_{mode}"] = path.stat().st_size
        figures[f"accuracy_{mode}"] = run.target.call(accuracy_on_device, str(path), x, y,
                                                      profile=PROFILES["low-end"])
    for mode in ("dynamic", "float16", "int8"):
        figures[f"size_ratio_{mode}"] = figures[f"bytes_{mode}"] / figures["bytes_none"]
        figures[f"accuracy_drop_{mode}"] = figures["accuracy_none"] - figures[f"accuracy_{mode}"]
    return figures


SCENARIO = Scenario(
    title="Full-integer quantisation without a representative dataset; the three quantisations measured",
    targets=("litert",),
    figures={"accuracy_drop_dynamic": "exact", "accuracy_drop_float16": "exact", "accuracy_drop_int8": "exact",
             "accuracy_dynamic": "exact", "accuracy_float16": "exact", "accuracy_int8": "exact",
             "accuracy_none": "exact", "bytes_dynamic": "size", "bytes_float16": "size", "bytes_int8": "size",
             "bytes_none": "size", "keras_accuracy": "exact", "size_ratio_dynamic": "size",
             "size_ratio_float16": "size", "size_ratio_int8": "size"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"For full integer quantization, a `representative_dataset` must be specified\."),
    remedy=succeeds(Figure("size_ratio_int8", "<=", 0.6), Figure("accuracy_drop_int8", "<=", 0.03),
                    Figure("size_ratio_dynamic", "<=", 0.6), Figure("accuracy_drop_dynamic", "<=", 0.03),
                    Figure("size_ratio_float16", "<=", 0.8), Figure("accuracy_drop_float16", "<=", 0.01)),
    cause="Dynamic-range quantisation stores weights as int8 and float16 quantisation stores them "
          "as float16; both need only the model. Full-integer quantisation also makes activations "
          "(and here the model's input and output) int8, so the converter must know each "
          "activation's range: it measures them by running a representative dataset through the "
          "model. Asking for TFLITE_BUILTINS_INT8 without `converter.representative_dataset` "
          "fails with 'For full integer quantization, a `representative_dataset` must be specified.'",
    fix="Give the converter a generator that yields about 100 real, preprocessed training inputs "
        "(`converter.representative_dataset`). The three quantised models are measured here on "
        "LiteRT under the low-end profile: file size against the float model and accuracy on a "
        "held-out set; the int8 model's inputs and outputs are quantised and dequantised with the "
        "scale and zero point in its tensor details.",
    references=("https://ai.google.dev/edge/litert/models/post_training_quantization",
                "https://ai.google.dev/edge/litert/models/post_training_integer_quant",
                "https://github.com/tensorflow/tensorflow/issues/41228"),
)
