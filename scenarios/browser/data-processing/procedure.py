"""End to end with JavaScript pre-processing: the page must standardise raw features as Python did."""

from __future__ import annotations

from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, keras_outputs, model_page, parity
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Run, Scenario
from harness.targets.tfjs.target import convert_layers_model

SPEC = ModelSpec("dense", "tf_keras")  # trained on standardised features
# The training statistics of the 8 raw measurements (a scaler's mean_ and scale_), shipped with
# the model as preprocessing.json.
MEAN = (20.0, -5.0, 100.0, 3.0, 50.0, 0.5, 1000.0, 10.0)
STD = (5.0, 2.0, 30.0, 1.0, 10.0, 0.1, 200.0, 4.0)

PAGE = """async ({url, raw, standardise}) => {
  const m = await tf.loadLayersModel(url);
  let x = tf.tensor2d(raw);
  if (standardise) {
    const stats = await (await fetch('/prep/preprocessing.json')).json();
    x = x.sub(tf.tensor1d(stats.mean)).div(tf.tensor1d(stats.std));
  }
  return m.predict(x).array();
}"""


def _run(run: Run, standardise: bool) -> dict[str, float]:
    import json

    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, _ = trained.test_set()
    mean, std = np.asarray(MEAN, dtype="float32"), np.asarray(STD, dtype="float32")
    raw = (x[:64] * std + mean).astype("float32")  # what the page receives from its form/sensor
    expected = keras_outputs(run.cache, trained, (raw - mean) / std)  # the Python pipeline
    (run.workdir / "preprocessing.json").write_text(json.dumps({"mean": MEAN, "std": STD}))
    page = model_page(run, convert_layers_model(run.cache, trained), {"/prep/": run.workdir})
    got = page.evaluate(PAGE, {"url": MODEL_URL, "raw": raw.tolist(), "standardise": standardise})
    return parity(got, expected)


def faulty(run: Run) -> dict[str, float]:
    return _run(run, standardise=False)


def fixed(run: Run) -> dict[str, float]:
    return _run(run, standardise=True)


SCENARIO = Scenario(
    title="Raw features fed to the model in the page without the standardisation Python applied",
    targets=("tfjs",),
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
