"""Pixels from a canvas with tf.browser.fromPixels: four RGBA channels fed to an RGB model."""

from __future__ import annotations

from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, keras_outputs, model_page, parity, rgba_bytes, uint8_pixels
from harness.models import ModelSpec, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.target import convert_layers_model

SPEC = ModelSpec("rgb_cnn", "tf_keras")  # 16x16x3, class = dominant colour channel
SIZE = 16

# Draw each image on a canvas (as a decoded <img> or video frame would be), then read it back.
CLASSIFY_CANVAS = """async ({url, images, channels}) => {
  const m = await tf.loadLayersModel(url);
  const canvas = document.createElement('canvas');
  canvas.width = %(size)d; canvas.height = %(size)d;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const out = [];
  for (const rgba of images) {
    ctx.putImageData(new ImageData(new Uint8ClampedArray(rgba), %(size)d, %(size)d), 0, 0);
    const y = tf.tidy(() => {
      const pixels = channels ? tf.browser.fromPixels(canvas, channels) : tf.browser.fromPixels(canvas);
      return m.predict(pixels.toFloat().div(255).expandDims(0));
    });
    out.push((await y.array())[0]);
    y.dispose();
  }
  return out;
}""" % {"size": SIZE}


def _classify(run: Run, channels: int | None) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    pixels = uint8_pixels(trained.probe()[0])  # what the canvas holds
    expected = keras_outputs(run.cache, trained, pixels.astype("float32") / 255.0)
    page = model_page(run, convert_layers_model(run.cache, trained))
    got = page.evaluate(CLASSIFY_CANVAS, {"url": MODEL_URL, "images": rgba_bytes(pixels),
                                          "channels": channels})
    return parity(got, expected)


def faulty(run: Run) -> None:
    # numChannels=4 keeps the canvas's alpha channel: [16,16,4] for a model trained on RGB.
    _classify(run, channels=4)


def fixed(run: Run) -> dict[str, float]:
    return _classify(run, channels=None)  # the default numChannels=3 drops alpha


SCENARIO = Scenario(
    title="tf.browser.fromPixels(canvas, 4): RGBA pixels for a 3-channel model",
    targets=("tfjs",),
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
