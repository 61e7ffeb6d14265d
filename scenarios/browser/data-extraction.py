"""Pixels from a canvas with tf.browser.fromPixels: four RGBA channels fed to an RGB model."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.models import ModelSpec, keras_outputs, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page, rgba_bytes, uint8_pixels

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("rgb_cnn", "tf_keras")  # 16x16x3, class = dominant colour channel
SIZE = 16

# Draw each image on a canvas (as a decoded <img> or video frame would be), read it back with
# `%(read)s` and classify it.
CLASSIFY_CANVAS = """async ({url, images}) => {
  const m = await tf.loadLayersModel(url);
  const canvas = document.createElement('canvas');
  canvas.width = %(size)d; canvas.height = %(size)d;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const out = [];
  for (const rgba of images) {
    ctx.putImageData(new ImageData(new Uint8ClampedArray(rgba), %(size)d, %(size)d), 0, 0);
    const y = tf.tidy(() => {
      const pixels = %(read)s;
      return m.predict(pixels.toFloat().div(255).expandDims(0));
    });
    out.push((await y.array())[0]);
    y.dispose();
  }
  return out;
}"""
# numChannels=4 keeps the canvas's alpha channel: [16,16,4] for a model trained on RGB.
READ_RGBA_JS = CLASSIFY_CANVAS % {"size": SIZE, "read": "tf.browser.fromPixels(canvas, 4)"}
# The default numChannels=3 drops alpha: [16,16,3], what the model was trained on.
READ_RGB_JS = CLASSIFY_CANVAS % {"size": SIZE, "read": "tf.browser.fromPixels(canvas)"}


def _canvas_page(run: Run[TfjsTarget]) -> tuple[TfjsPage, np.ndarray, np.ndarray]:
    """The page with the converted model, the uint8 pixels the canvas holds, and Keras's outputs on them."""
    trained = trained_model(run.cache, SPEC)
    pixels = uint8_pixels(trained.probe()[0])
    expected = keras_outputs(run.cache, trained, pixels.astype("float32") / 255.0)
    return model_page(run, convert_layers_model(run.cache, trained)), pixels, expected


def faulty(run: Run[TfjsTarget]) -> None:
    page, pixels, _ = _canvas_page(run)
    page.evaluate(READ_RGBA_JS, {"url": MODEL_URL, "images": rgba_bytes(pixels)})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page, pixels, expected = _canvas_page(run)
    got = page.evaluate(READ_RGB_JS, {"url": MODEL_URL, "images": rgba_bytes(pixels)})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="tf.browser.fromPixels(canvas, 4): RGBA pixels for a 3-channel model",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Error when checking : expected \w+ to have shape \[null,16,16,3\] "
                   r"but got array with shape \[1,16,16,4\]", runtime="tfjs"),
    remedy=MATCHES_KERAS,
    cause="A canvas, ImageData or <img> stores four channels per pixel (RGBA). "
          "tf.browser.fromPixels(source, 4) keeps all four, giving a [16,16,4] tensor, while the "
          "model was trained on RGB images [16,16,3]; the layers model rejects the input shape.",
    fix="Read three channels, `tf.browser.fromPixels(canvas)` (numChannels defaults to 3), and apply "
        "the training preprocessing (toFloat, /255, a batch axis; tf.image.resizeBilinear when the "
        "source size differs). The page then gives the labels and probabilities Keras gives on the "
        "same uint8 pixels.",
    references=("https://js.tensorflow.org/api/latest/#browser.fromPixels",
                "https://github.com/tensorflow/tfjs/issues/4982",
                "https://github.com/imfing/keras-flask-deploy-webapp/issues/23"),
)
