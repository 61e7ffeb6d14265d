"""Python's OpenCV channel swap ported line by line to JS, where pixels are already RGB."""

from __future__ import annotations

from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, keras_outputs, model_page, parity, uint8_pixels
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Run, Scenario
from harness.targets.tfjs.target import convert_layers_model

SPEC = ModelSpec("rgb_cnn", "tf_keras")  # trained on RGB pixels / 255; class = dominant channel
N_IMAGES = 64

# Python training code:  img = cv2.imread(path)[..., ::-1] / 255.0   (OpenCV gives BGR -> RGB)
# JS port: the same two steps on canvas pixels, which tf.browser.fromPixels already gives as RGB.
PREPROCESS_AND_PREDICT = """async ({url, pixels, swapChannels}) => {
  const m = await tf.loadLayersModel(url);
  return tf.tidy(() => {
    let px = tf.tensor4d(pixels, undefined, 'float32');   // RGB, as fromPixels returns it
    if (swapChannels) px = tf.reverse(px, -1);            // the ported `[..., ::-1]`
    return m.predict(px.div(255));
  }).array();
}"""


def _run(run: Run, swap_channels: bool) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    pixels = uint8_pixels(trained.test_set()[0][:N_IMAGES])  # RGB uint8
    expected = keras_outputs(run.cache, trained, pixels.astype("float32") / 255.0)  # the Python pipeline
    page = model_page(run, convert_layers_model(run.cache, trained))
    got = page.evaluate(PREPROCESS_AND_PREDICT, {"url": MODEL_URL, "pixels": pixels.tolist(),
                                                 "swapChannels": swap_channels})
    return parity(got, expected)


def faulty(run: Run) -> dict[str, float]:
    return _run(run, swap_channels=True)


def fixed(run: Run) -> dict[str, float]:
    return _run(run, swap_channels=False)


SCENARIO = Scenario(
    title="Pre-processing migrated line by line: a BGR->RGB swap applied to pixels that are RGB",
    targets=("tfjs",),
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
