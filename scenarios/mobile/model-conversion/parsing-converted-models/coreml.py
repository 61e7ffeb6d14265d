"""An image input converted without its scale: the Core ML model receives 0-255 pixels.

``ct.ImageType`` lets Core ML take a camera image directly and apply ``scale``/``bias`` before
the network.  The ``rgb_cnn`` model was trained on pixels in [0, 1]; converted with
``ct.ImageType(shape=...)`` alone, the network gets raw 0-255 values.  Nothing fails at
conversion, and off macOS nothing can be predicted, but the converted program says what it does
to the pixels: reading it (``image_preprocessing``) shows the missing scale.  On macOS the
accuracy on labelled images is measured as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import accuracy
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.coreml.convert import convert_to_coreml
from harness.targets.coreml.kit import image_preprocessing, on_macos, spec_summary

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget

SPEC = ModelSpec("rgb_cnn", "tf_keras")
TRAINED_SCALE = 1.0 / 255.0  # the model was trained on pixels / 255


def image_input(ct: Any) -> list[Any]:
    return [ct.ImageType(shape=(1, 16, 16, 3), color_layout=ct.colorlayout.RGB)]


def scaled_image_input(ct: Any) -> list[Any]:
    return [ct.ImageType(shape=(1, 16, 16, 3), color_layout=ct.colorlayout.RGB, scale=TRAINED_SCALE)]


def _check(run: Run[CoremlTarget], package: Any) -> dict[str, float]:
    import numpy as np

    summary = run.note("spec", spec_summary(package))
    name = summary["inputs"][0]["name"]
    pre = run.note("image_preprocessing", image_preprocessing(package))[name]
    figures = {"pixel_scale": pre["scale"][0], "pixel_bias": max(abs(b) for b in pre["bias"]),
               "image_input": float(summary["inputs"][0]["type"] == "imageType")}
    if on_macos():
        from PIL import Image

        rgb, y = trained_model(run.cache, SPEC).test_set()
        pixels = np.round(rgb[:64] * 255).astype(np.uint8)
        probs = np.concatenate([run.target.predict_array(package, Image.fromarray(p)) for p in pixels])
        figures["accuracy"] = accuracy(probs, y[:64])
    return figures


def faulty(run: Run[CoremlTarget]) -> dict[str, float]:
    return _check(run, convert_to_coreml(run.cache, saved_model(run.cache, SPEC), inputs=image_input,
                                         label="ImageType RGB, no scale"))


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    figures = _check(run, convert_to_coreml(run.cache, saved_model(run.cache, SPEC), inputs=scaled_image_input,
                                            label="ImageType RGB, scale 1/255"))
    figures["scale_error"] = abs(figures["pixel_scale"] - TRAINED_SCALE)
    return figures


SCENARIO = Scenario(
    title="Core ML image input without the training-time scale, found by reading the converted program",
    targets=("coreml",),
    figures={"image_input": "exact", "pixel_bias": "exact", "pixel_scale": "exact", "scale_error": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("image_input", ">=", 1), Figure("pixel_scale", ">", 0.5)),
    remedy=succeeds(Figure("image_input", ">=", 1), Figure("scale_error", "<=", 1e-6),
                    Figure("pixel_bias", "<=", 0)),
    cause="With `ct.ImageType`, Core ML feeds the network pixel values of 0-255 unless the "
          "conversion states `scale` and `bias`; the network here was trained on values in [0, 1]. "
          "The conversion succeeds and the model runs, but every input is 255 times too large, so "
          "its predictions are meaningless (on macOS the accuracy is measured).",
    fix="Pass the training-time preprocessing to the converter, `ct.ImageType(..., scale=1/255)` "
        "(and per-channel `bias` for mean subtraction), then parse the converted model: the "
        "ML program starts with `mul(x=input, y=0.00392...)`; check it before shipping, and "
        "compare accuracy on macOS.",
    references=("https://apple.github.io/coremltools/docs-guides/source/image-inputs.html",
                "https://github.com/tf-coreml/tf-coreml/issues/253",
                "https://github.com/tf-coreml/tf-coreml/issues/91"),
)
