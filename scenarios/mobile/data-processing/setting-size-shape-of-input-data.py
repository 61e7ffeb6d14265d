"""A 28x28 model fed the 32x32 images the device produces."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import accuracy
from harness.models import ModelSpec, image_data, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")
DEVICE_SIZE = 32  # what the (emulated) camera pipeline delivers
MODEL_SIZE = 28


def device_images() -> tuple["np.ndarray", "np.ndarray"]:
    """Held-out images drawn at the device's size (same scene, more pixels)."""
    return image_data(256, seed=SPEC.seed + 1000, size=DEVICE_SIZE)


def accuracy_after_resize(model_path: str, images: "np.ndarray", labels: "np.ndarray") -> float:
    """Runs in the LiteRT worker: resize on the device to the model's input size, then classify."""
    from harness.targets.litert.kit import resize_bilinear
    from harness.targets.litert.worker import predict

    probs = predict(model_path, [resize_bilinear(images, MODEL_SIZE, MODEL_SIZE)], resize=True)[0]
    return accuracy(probs, labels)


def faulty(run: Run[LitertTarget]) -> None:
    images, _ = device_images()
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    run.target.predict(tflite, [images[:1]], profile=PROFILES["low-end"])


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    images, labels = device_images()
    accuracy = run.target.call(accuracy_after_resize, str(tflite), images, labels, profile=PROFILES["low-end"])
    keras_accuracy = trained.info()["accuracy"]
    run.figure("keras_accuracy_28x28", keras_accuracy)
    return {"device_accuracy": accuracy, "accuracy_drop": keras_accuracy - accuracy}


SCENARIO = Scenario(
    title="32x32 images set on a model whose input is [1, 28, 28, 1]",
    targets=("litert",),
    figures={"accuracy_drop": "exact", "device_accuracy": "exact", "keras_accuracy_28x28": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Dimension mismatch\. Got 32 but expected 28 for dimension 1 of input 0\.",
                   runtime="litert"),
    remedy=succeeds(Figure("accuracy_drop", "<=", 0.05)),
    cause="A converted model has a fixed input size: the CNN was trained on 28x28 images and its "
          "Flatten/Dense layers depend on it. The device delivers 32x32 images, and LiteRT's "
          "set_tensor refuses the array: 'Cannot set tensor: Dimension mismatch. Got 32 but "
          "expected 28 for dimension 1 of input 0.' resize_tensor_input does not help here, since "
          "the weights after Flatten are sized for 28x28.",
    fix="Resize the image on the device to the size in `get_input_details()[0]['shape']` before "
        "set_tensor (bilinear, as Android's Bitmap.createScaledBitmap or the TFLite Support "
        "ResizeOp do). Accuracy on held-out 32x32 images, resized on the device, is measured "
        "against the Keras model's accuracy at 28x28.",
    references=("https://ai.google.dev/edge/litert/inference",
                "https://github.com/breizhn/DTLN/issues/6",
                "https://ai.google.dev/edge/litert/android/metadata/lite_support"),
)
