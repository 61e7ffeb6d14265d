"""One example passed as a flat array: the model expects a batch axis, [null, 8]."""

from __future__ import annotations

from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page, parity
from harness.models import ModelSpec, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.target import convert_layers_model

SPEC = ModelSpec("dense", "tf_keras")

# Classify examples one at a time, as a form or a sensor callback delivers them.
PREDICT_EACH = """async ({url, rows, batchAxis}) => {
  const m = await tf.loadLayersModel(url);
  const out = [];
  for (const row of rows) {
    const x = batchAxis ? tf.tensor2d([row], [1, row.length]) : tf.tensor(new Float32Array(row));
    out.push((await m.predict(x).array())[0]);
  }
  return out;
}"""


def _run(run: Run, batch_axis: bool) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    page = model_page(run, convert_layers_model(run.cache, trained))
    x, expected = trained.probe()
    got = page.evaluate(PREDICT_EACH, {"url": MODEL_URL, "rows": x.tolist(), "batchAxis": batch_axis})
    return parity(got, expected)


def faulty(run: Run) -> None:
    _run(run, batch_axis=False)  # tf.tensor(Float32Array(row)): shape [8]


def fixed(run: Run) -> dict[str, float]:
    return _run(run, batch_axis=True)


SCENARIO = Scenario(
    title="Single example without a batch axis: 'expected input_1 to have shape [null,8]'",
    targets=("tfjs",),
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
