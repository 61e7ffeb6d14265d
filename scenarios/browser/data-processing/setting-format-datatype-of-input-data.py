"""Integer features in an Int32Array give an int32 tensor; the graph model wants float32."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.models import ModelSpec, keras_outputs, saved_model, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.convert import convert_graph_model
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")

# The page collects integer readings (counts, scores) into a typed array, as form or sensor code
# often does; tf.tensor takes its dtype from the typed array unless told otherwise.
DTYPE_INFERRED_JS = """async ({url, flat, rows}) => {
  const m = await tf.loadGraphModel(url);
  const x = tf.tensor(Int32Array.from(flat), [rows, 8]);             // int32, from the Int32Array
  return m.predict(x).array();
}"""
DTYPE_STATED_JS = """async ({url, flat, rows}) => {
  const m = await tf.loadGraphModel(url);
  const x = tf.tensor(Int32Array.from(flat), [rows, 8], 'float32');  // the dtype the model expects
  return m.predict(x).array();
}"""


def _page_and_readings(run: Run[TfjsTarget]) -> tuple[TfjsPage, np.ndarray, np.ndarray]:
    """The page with the graph model, integer readings, and Keras's outputs on them as float32 (as Python feeds them)."""
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    readings = np.rint(trained.test_set()[0][:32] * 2.0).astype("int32")
    expected = keras_outputs(run.cache, trained, readings.astype("float32"))
    page = model_page(run, convert_graph_model(run.cache, saved_model(run.cache, SPEC)))
    return page, readings, expected


def faulty(run: Run[TfjsTarget]) -> None:
    page, readings, _ = _page_and_readings(run)
    page.evaluate(DTYPE_INFERRED_JS, {"url": MODEL_URL, "flat": readings.reshape(-1).tolist(),
                                      "rows": int(readings.shape[0])})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page, readings, expected = _page_and_readings(run)
    got = page.evaluate(DTYPE_STATED_JS, {"url": MODEL_URL, "flat": readings.reshape(-1).tolist(),
                                          "rows": int(readings.shape[0])})
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="int32 tensor (from an Int32Array) fed to a float32 graph model",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"The dtype of dict\['input_1'\] provided in model\.execute\(dict\) must be float32, "
                   r"but was int32", runtime="tfjs"),
    remedy=MATCHES_KERAS,
    cause="tf.tensor infers its dtype from the data: plain JS numbers give float32, but an Int32Array "
          "(or integer pixel data) gives int32. A graph model's inputs carry the dtype of the "
          "SavedModel signature (DT_FLOAT), and GraphModel.execute checks it strictly, so integer "
          "features that Python would silently treat as floats are rejected in the page.",
    fix="State the dtype the model expects: `tf.tensor(data, shape, 'float32')` (or `x.toFloat()` / "
        "`tf.cast(x, 'float32')`), reading it from `model.inputs[0].dtype` when in doubt. The "
        "page then matches Keras on the same integer readings.",
    references=("https://js.tensorflow.org/api/latest/#tensor",
                "https://js.tensorflow.org/api/latest/#class:GraphModel",
                "https://github.com/tensorflow/tfjs/issues/3723",
                "https://github.com/tensorflow/tfjs/issues/7004"),
)
