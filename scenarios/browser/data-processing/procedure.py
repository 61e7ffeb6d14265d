"""End to end with JavaScript pre-processing: the page must standardise raw features as Python did."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.models import ModelSpec, keras_outputs, trained_model
from harness.scenario import Figure, Run, Scenario
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")  # trained on standardised features
# The training statistics of the 8 raw measurements (a scaler's mean_ and scale_), shipped with
# the model as preprocessing.json.
MEAN = (20.0, -5.0, 100.0, 3.0, 50.0, 0.5, 1000.0, 10.0)
STD = (5.0, 2.0, 30.0, 1.0, 10.0, 0.1, 200.0, 4.0)

# The page hands the raw readings straight to the model.
RAW_TO_MODEL_JS = """async ({url, raw}) => {
  const m = await tf.loadLayersModel(url);
  return m.predict(tf.tensor2d(raw)).array();
}"""
# The page applies the scaler shipped with the model, (x - mean) / std, before predict.
STANDARDISED_JS = """async ({url, raw}) => {
  const m = await tf.loadLayersModel(url);
  const stats = await (await fetch('/prep/preprocessing.json')).json();
  const x = tf.tensor2d(raw).sub(tf.tensor1d(stats.mean)).div(tf.tensor1d(stats.std));
  return m.predict(x).array();
}"""


def _page_and_readings(run: Run[TfjsTarget]) -> tuple[TfjsPage, np.ndarray, np.ndarray]:
    """The page (model at /model/, preprocessing.json at /prep/), raw readings, and the Python pipeline's outputs."""
    import json

    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, _ = trained.test_set()
    mean, std = np.asarray(MEAN, dtype="float32"), np.asarray(STD, dtype="float32")
    raw = (x[:64] * std + mean).astype("float32")  # what the page receives from its form/sensor
    expected = keras_outputs(run.cache, trained, (raw - mean) / std)  # the Python pipeline
    (run.workdir / "preprocessing.json").write_text(json.dumps({"mean": MEAN, "std": STD}))
    page = model_page(run, convert_layers_model(run.cache, trained), {"/prep/": run.workdir})
    return page, raw, expected


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    page, raw, expected = _page_and_readings(run)
    got = page.evaluate(RAW_TO_MODEL_JS, {"url": MODEL_URL, "raw": raw.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page, raw, expected = _page_and_readings(run)
    got = page.evaluate(STANDARDISED_JS, {"url": MODEL_URL, "raw": raw.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="Raw features fed to the model in the page without the standardisation Python applied",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("label_agreement", "<=", 0.8),
    remedy=MATCHES_KERAS,
    cause="The converted model holds only the network. In Python the raw measurements went "
          "through a scaler ((x - mean) / std with the training statistics) before model.predict; "
          "a page that passes the raw values straight to the model feeds it numbers on a different "
          "scale, and the predictions are mostly wrong without any error.",
    fix="Ship the pre-processing with the model (the scaler's mean and std as JSON next to "
        "model.json) and apply it in the page with tensor ops before predict, then check the page "
        "against Python on the same raw inputs. The standardised page agrees with Keras on every "
        "row.",
    references=("https://www.tensorflow.org/js/guide/conversion",
                "https://scikit-learn.org/stable/modules/generated/sklearn.preprocessing.StandardScaler.html",
                "https://js.tensorflow.org/api/latest/#tensor2d"),
)
