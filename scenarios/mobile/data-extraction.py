"""Camera frames arrive as 4-channel BGRA bytes; the model wants RGB floats.

iOS delivers camera frames as ``kCVPixelFormatType_32BGRA`` by default and Android bitmaps are
``ARGB_8888`` (RGBA bytes in memory).  The ``rgb_cnn`` model's class is the dominant colour
channel, so channel order matters exactly as it does for a real classifier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import accuracy
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("rgb_cnn", "keras3")


def camera_frames(rgb: Any) -> Any:
    """What the camera hands over: uint8 BGRA frames (alpha 255) of the RGB test images."""
    import numpy as np

    pixels = np.round(rgb * 255.0).astype(np.uint8)
    alpha = np.full(pixels.shape[:-1] + (1,), 255, dtype=np.uint8)
    return np.concatenate([pixels[..., ::-1], alpha], axis=-1)


def scaled(x: Any) -> Any:
    """Bytes to the float input in [0, 1] the model was trained on."""
    import numpy as np

    return np.ascontiguousarray(x, dtype=np.float32) / 255.0


def _accuracy(run: Run[LitertTarget], tflite: Any, x: Any, y: Any) -> float:
    probs = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    return accuracy(probs, y)


def faulty(run: Run[LitertTarget]) -> None:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    rgb, _ = trained.test_set()
    frames = camera_frames(rgb[:1])
    run.note("frame", {"shape": list(frames.shape), "dtype": str(frames.dtype), "layout": "BGRA"})
    run.target.predict(tflite, [scaled(frames)], profile=PROFILES["host"])  # all four channels, as delivered


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    rgb, y = trained.test_set()
    frames = camera_frames(rgb)
    bgr = frames[..., :3]        # alpha dropped: the error goes away, the channel order stays BGR
    model_rgb = bgr[..., ::-1]   # BGR reordered to RGB
    return {
        "accuracy_rgb_reference": _accuracy(run, tflite, rgb, y),
        "accuracy_alpha_dropped_only": _accuracy(run, tflite, scaled(bgr), y),
        "accuracy_fixed": _accuracy(run, tflite, scaled(model_rgb), y),
    }


SCENARIO = Scenario(
    title="BGRA camera frames fed to an RGB model",
    targets=("litert",),
    figures={"accuracy_alpha_dropped_only": "exact", "accuracy_fixed": "exact", "accuracy_rgb_reference": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Dimension mismatch\. Got 4 but expected 3 for dimension 3 of input 0\.",
                   runtime="litert"),
    remedy=succeeds(Figure("accuracy_fixed", ">=", 0.9), Figure("accuracy_alpha_dropped_only", "<", 0.6)),
    cause="Camera APIs deliver 4-channel frames (BGRA on iOS, RGBA/ARGB_8888 on Android) as bytes. "
          "Fed as they are, the fourth channel does not fit the model's 3-channel input and "
          "LiteRT refuses it ('Dimension mismatch. Got 4 but expected 3 for dimension 3'). "
          "Dropping alpha alone makes the error go away but leaves the channels in BGR order: "
          "the model then sees red as blue, and accuracy collapses without any error (measured "
          "in the fixed variant).",
    fix="Convert explicitly and completely: drop the alpha channel, reorder BGR to RGB, and scale "
        "to the range the model was trained on; check on labelled frames that accuracy matches "
        "the reference pipeline (or move the conversion into the model / use the LiteRT support "
        "library's ImageProcessor).",
    references=("https://developer.apple.com/documentation/corevideo/kcvpixelformattype_32bgra",
                "https://github.com/tensorflow/tflite-support/issues/617",
                "https://github.com/tensorflow/tflite-support/issues/629"),
)
