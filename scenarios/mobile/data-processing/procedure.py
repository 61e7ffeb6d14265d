"""Device-side preprocessing end to end: RGBA camera frame -> grey -> resize -> scale -> label."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import accuracy, max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")
LABELS = ("bar at the top", "bar in the middle", "bar at the bottom")
FRAME_SIZE = 56  # the camera preview, twice the model's 28x28


def camera_frames(x: "np.ndarray") -> "np.ndarray":
    """What the app gets from the camera: RGBA bytes, (N, 56, 56, 4), grey scene, opaque alpha."""
    import numpy as np

    grey = np.round(x[..., 0] * 255).astype(np.uint8).repeat(2, axis=1).repeat(2, axis=2)
    alpha = np.full_like(grey, 255)
    return np.stack([grey, grey, grey, alpha], axis=-1)


def classify(model_path: str, pixels: "np.ndarray") -> dict[str, Any]:
    """In the LiteRT worker: the model on prepared pixels, its output decoded to label strings."""
    import numpy as np

    from harness.targets.litert.worker import predict

    probs = predict(model_path, [pixels.astype(np.float32)], batch=True)[0]
    return {"probs": probs, "labels": [LABELS[i] for i in np.argmax(probs, axis=1)]}


def app_without_colour_conversion(model_path: str, frames: "np.ndarray") -> dict[str, Any]:
    """In the LiteRT worker: every step but the colour conversion (the frame keeps its RGB)."""
    import numpy as np

    from harness.targets.litert.kit import resize_bilinear

    rgb = frames[..., :3].astype(np.float32)                       # drop alpha
    pixels = resize_bilinear(rgb, 28, 28) / 255.0                   # model size, training scale
    return classify(model_path, pixels)


def app_pipeline(model_path: str, frames: "np.ndarray") -> dict[str, Any]:
    """In the LiteRT worker: the app's whole pipeline, numpy and LiteRT only."""
    import numpy as np

    from harness.targets.litert.kit import resize_bilinear

    rgb = frames[..., :3].astype(np.float32)                       # drop alpha
    grey = rgb @ np.array([[0.299], [0.587], [0.114]], np.float32)  # luma
    pixels = resize_bilinear(grey, 28, 28) / 255.0                  # model size, training scale
    return classify(model_path, pixels)


def faulty(run: Run[LitertTarget]) -> None:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, _ = trained.probe()
    run.target.call(app_without_colour_conversion, str(tflite), camera_frames(x), profile=PROFILES["low-end"])


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, expected = trained.probe()
    probe = run.target.call(app_pipeline, str(tflite), camera_frames(x), profile=PROFILES["low-end"])
    run.note("labels", probe["labels"][:4])
    tx, ty = trained.test_set()
    test = run.target.call(app_pipeline, str(tflite), camera_frames(tx), profile=PROFILES["low-end"])
    device_accuracy = accuracy(test["probs"], ty)
    return {"max_abs_diff_vs_keras": max_abs_diff(probe["probs"], expected),
            "device_accuracy": device_accuracy,
            "accuracy_drop": trained.info()["accuracy"] - device_accuracy}


SCENARIO = Scenario(
    title="Preprocessing camera frames on the device for a grey 28x28 model",
    targets=("litert",),
    figures={"accuracy_drop": "exact", "device_accuracy": "exact", "max_abs_diff_vs_keras": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Dimension mismatch\. Got 3 but expected 1 for dimension 3 of input 0\.",
                   runtime="litert"),
    remedy=succeeds(Figure("max_abs_diff_vs_keras", "<=", 0.02), Figure("accuracy_drop", "<=", 0.02)),
    cause="On the device no training pipeline prepares the input: the app receives RGBA camera "
          "bytes at the preview size and must turn them, step by step, into exactly the tensor "
          "the model was trained on (here grey, 28x28, float32 in [0, 1], NHWC). Each step that "
          "is left out breaks the contract; without the colour conversion the three RGB channels "
          "reach set_tensor and LiteRT refuses them: 'Dimension mismatch. Got 3 but expected 1 for "
          "dimension 3 of input 0.'",
    fix="Write the pipeline from the model's input details and the training code: drop alpha, "
        "convert to grey (luma weights), resize to 28x28, scale to [0, 1], cast to float32, then "
        "decode the output (argmax to a label string). Run end to end on the device from raw "
        "frames, the probabilities match Keras and the accuracy matches the Keras model's.",
    references=("https://ai.google.dev/edge/litert/android/metadata/lite_support",
                "https://ai.google.dev/edge/litert/inference",
                "https://developer.android.com/reference/android/graphics/Bitmap.Config#ARGB_8888"),
)
