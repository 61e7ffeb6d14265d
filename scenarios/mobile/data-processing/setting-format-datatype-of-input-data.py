"""Camera bytes (uint8, channels-first planes) fed to a float32 NHWC model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import accuracy
from harness.errors import RuntimeFailure
from harness.models import ModelSpec, TrainedModel, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("rgb_cnn", "keras3")


def camera_frames(trained: TrainedModel) -> tuple["np.ndarray", "np.ndarray"]:
    """Held-out RGB images as a camera delivers them: uint8 0..255, planar (N, C, H, W)."""
    import numpy as np

    x, y = trained.test_set()
    return np.round(x * 255).astype("uint8").transpose(0, 3, 1, 2), y


def to_model_input(frames: "np.ndarray") -> "np.ndarray":
    """The fix: NCHW planes to NHWC pixels, uint8 to float32 in [0, 1] as in training."""
    import numpy as np

    return (frames.transpose(0, 2, 3, 1).astype(np.float32) / 255.0).astype(np.float32)


def faulty(run: Run[LitertTarget]) -> None:
    trained = trained_model(run.cache, SPEC)
    frames, _ = camera_frames(trained)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    run.target.predict(tflite, [frames[:1]], profile=PROFILES["low-end"])


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    frames, labels = camera_frames(trained)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    # Evidence: float32 alone is not enough, the layout is checked next.
    try:
        run.target.predict(tflite, [frames[:1].astype(np.float32) / 255.0], profile=PROFILES["low-end"])
    except RuntimeFailure as exc:
        run.observe(exc.message)
    # A reshape instead of a transpose has the right shape but scrambles the pixels.
    scrambled = (frames.reshape(len(frames), 16, 16, 3).astype(np.float32) / 255.0)
    probs = run.target.predict(tflite, [scrambled], profile=PROFILES["low-end"], resize=True)[0]
    run.note("accuracy_with_reshape_instead_of_transpose", accuracy(probs, labels))

    probs = run.target.predict(tflite, [to_model_input(frames)], profile=PROFILES["low-end"], resize=True)[0]
    device_accuracy = accuracy(probs, labels)
    keras_accuracy = trained.info()["accuracy"]
    run.figure("keras_accuracy", keras_accuracy)
    return {"device_accuracy": device_accuracy, "accuracy_drop": keras_accuracy - device_accuracy}


SCENARIO = Scenario(
    title="uint8 camera frames set on a float32 model",
    targets=("litert",),
    figures={"accuracy_drop": "exact", "device_accuracy": "exact", "keras_accuracy": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Got value of type UINT8 but expected type FLOAT32 for input 0, "
                   r"name: serving_default_\w+:0", runtime="litert"),
    remedy=succeeds(Figure("accuracy_drop", "<=", 0.02)),
    cause="Cameras and image decoders give bytes (uint8, 0..255), often as separate colour planes "
          "(channels first). The converted Keras model takes float32 pixels in [0, 1] laid out "
          "NHWC (channels last). LiteRT does not convert: set_tensor refuses the bytes with "
          "'Cannot set tensor: Got value of type UINT8 but expected type FLOAT32 for input 0'. "
          "Casting alone then fails on the layout ('Dimension mismatch. Got 3 but expected 16 "
          "for dimension 1'), and a reshape instead of a transpose runs but scrambles the pixels.",
    fix="Convert on the device to what `get_input_details()` says: transpose NCHW to NHWC, cast "
        "to float32 and scale to [0, 1] as in training. The accuracy on held-out frames then "
        "matches the Keras model's; the runtime texts of the partial fixes and the accuracy "
        "after a reshape are recorded as evidence.",
    references=("https://ai.google.dev/edge/litert/inference",
                "https://ai.google.dev/edge/litert/models/model_analyzer",
                "https://github.com/tensorflow/tensorflow/issues/49979"),
)
