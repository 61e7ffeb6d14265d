"""One example passed as a flat array: the model expects a batch axis, [null, 8]."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page

if TYPE_CHECKING:
    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")

# Classify examples one at a time, as a form or a sensor callback delivers them.
ONE_FLAT_ROW_JS = """async ({url, rows}) => {
  const m = await tf.loadLayersModel(url);
  const out = [];
  for (const row of rows) {
    const x = tf.tensor(new Float32Array(row));          // shape [8]: no batch axis
    out.push((await m.predict(x).array())[0]);
  }
  return out;
}"""
ONE_ROW_BATCH_JS = """async ({url, rows}) => {
  const m = await tf.loadLayersModel(url);
  const out = [];
  for (const row of rows) {
    const x = tf.tensor2d([row], [1, row.length]);       // shape [1, 8]: a batch of one
    out.push((await m.predict(x).array())[0]);
  }
  return out;
}"""


def _page(run: Run[TfjsTarget]) -> tuple[TfjsPage, TrainedModel]:
    trained = trained_model(run.cache, SPEC)
    return model_page(run, convert_layers_model(run.cache, trained)), trained


def faulty(run: Run[TfjsTarget]) -> None:
    page, trained = _page(run)
    page.evaluate(ONE_FLAT_ROW_JS, {"url": MODEL_URL, "rows": trained.probe()[0].tolist()})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page, trained = _page(run)
    x, expected = trained.probe()
    got = page.evaluate(ONE_ROW_BATCH_JS, {"url": MODEL_URL, "rows": x.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="Single example without a batch axis: 'expected input_1 to have shape [null,8]'",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Error when checking : expected \w+ to have shape \[null,8\] but got array with shape \[8,1\]\.",
                   runtime="tfjs"),
    remedy=MATCHES_KERAS,
    cause="A Keras model's input has a batch axis: shape [null, 8] means any number of rows of 8 "
          "features. A single example built as a flat (typed) array is a 1-D tensor [8]; "
          "LayersModel.predict turns it into a column [8, 1] (8 rows of one feature) and rejects "
          "it in its input check.",
    fix="Give every input its batch axis: `tf.tensor2d([row], [1, 8])` (or `x.expandDims(0)` / "
        "`x.reshape([1, 8])`), and read `model.inputs[0].shape` when in doubt. Each row then gets "
        "the prediction Keras gives.",
    references=("https://js.tensorflow.org/api/latest/#tf.LayersModel.predict",
                "https://github.com/tensorflow/tfjs/issues/6320",
                "https://www.tensorflow.org/js/guide/tensors_operations"),
)
