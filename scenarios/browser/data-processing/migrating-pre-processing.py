"""Python's OpenCV channel swap ported line by line to JS, where pixels are already RGB."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.models import ModelSpec, keras_outputs, trained_model
from harness.scenario import Figure, Run, Scenario
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page, uint8_pixels

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("rgb_cnn", "tf_keras")  # trained on RGB pixels / 255; class = dominant channel
N_IMAGES = 64

# Python training code:  img = cv2.imread(path)[..., ::-1] / 255.0   (OpenCV gives BGR -> RGB)
# The JS port repeats both steps on canvas pixels, which tf.browser.fromPixels already gives as RGB.
PORTED_LINE_BY_LINE_JS = """async ({url, pixels}) => {
  const m = await tf.loadLayersModel(url);
  return tf.tidy(() => {
    let px = tf.tensor4d(pixels, undefined, 'float32');   // RGB, as fromPixels returns it
    px = tf.reverse(px, -1);                              // the ported `[..., ::-1]`
    return m.predict(px.div(255));
  }).array();
}"""
# The port of what the pipeline means: RGB pixels in [0, 1].
PORTED_MEANING_JS = """async ({url, pixels}) => {
  const m = await tf.loadLayersModel(url);
  return tf.tidy(() => {
    const px = tf.tensor4d(pixels, undefined, 'float32');  // already RGB: no swap
    return m.predict(px.div(255));
  }).array();
}"""


def _page_and_pixels(run: Run[TfjsTarget]) -> tuple[TfjsPage, np.ndarray, np.ndarray]:
    """The page with the converted model, test images as RGB uint8 pixels, and the Python pipeline's outputs."""
    trained = trained_model(run.cache, SPEC)
    pixels = uint8_pixels(trained.test_set()[0][:N_IMAGES])
    expected = keras_outputs(run.cache, trained, pixels.astype("float32") / 255.0)
    return model_page(run, convert_layers_model(run.cache, trained)), pixels, expected


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    page, pixels, expected = _page_and_pixels(run)
    got = page.evaluate(PORTED_LINE_BY_LINE_JS, {"url": MODEL_URL, "pixels": pixels.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page, pixels, expected = _page_and_pixels(run)
    got = page.evaluate(PORTED_MEANING_JS, {"url": MODEL_URL, "pixels": pixels.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="Pre-processing migrated line by line: a BGR->RGB swap applied to pixels that are RGB",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("label_agreement", "<=", 0.6),
    remedy=MATCHES_KERAS,
    cause="Pre-processing is not part of the converted model; the page re-implements it. The "
          "Python pipeline read images with OpenCV, which returns BGR, and reversed the channel "
          "axis to get RGB before `/ 255`. Ported line by line, the page reverses the channels of "
          "tf.browser.fromPixels output, which is already RGB, so the model sees BGR: red and blue "
          "swap, and on this model (class = dominant colour) most predictions change. Nothing "
          "raises an error.",
    fix="Port what the Python pipeline means, not its lines: know the channel order, value range "
        "and size each side delivers (fromPixels gives RGB uint8), and check the page against the "
        "Python outputs on the same pixels; better, move normalisation into the model so it is "
        "converted with it. Without the extra swap the page agrees with Keras on every image.",
    references=("https://docs.opencv.org/4.x/d4/da8/group__imgcodecs.html#ga288b8b3da0892bd651fce07b3bbd3a56",
                "https://js.tensorflow.org/api/latest/#browser.fromPixels",
                "https://www.tensorflow.org/js/guide/conversion"),
)
