"""Integer features in an Int32Array give an int32 tensor; the graph model wants float32."""

from __future__ import annotations

from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, keras_outputs, model_page, parity
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.target import convert_graph_model

SPEC = ModelSpec("dense", "tf_keras")

# The page collects integer readings (counts, scores) into a typed array, as form or sensor code
# often does; tf.tensor takes its dtype from the typed array unless told otherwise.
PREDICT_TYPED = """async ({url, flat, rows, dtype}) => {
  const m = await tf.loadGraphModel(url);
  const data = Int32Array.from(flat);
  const x = dtype ? tf.tensor(data, [rows, 8], dtype) : tf.tensor(data, [rows, 8]);
  return m.predict(x).array();
}"""


def _run(run: Run, dtype: str | None) -> dict[str, float]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    readings = np.rint(trained.test_set()[0][:32] * 2.0).astype("int32")
    expected = keras_outputs(run.cache, trained, readings.astype("float32"))  # Python: float32 input
    converted = convert_graph_model(run.cache, saved_model(run.cache, SPEC))
    page = model_page(run, converted)
    got = page.evaluate(PREDICT_TYPED, {"url": MODEL_URL, "flat": readings.reshape(-1).tolist(),
                                        "rows": int(readings.shape[0]), "dtype": dtype})
    return parity(got, expected)


def faulty(run: Run) -> None:
    _run(run, dtype=None)  # tf.tensor infers int32 from the Int32Array


def fixed(run: Run) -> dict[str, float]:
    return _run(run, dtype="float32")


SCENARIO = Scenario(
    title="int32 tensor (from an Int32Array) fed to a float32 graph model",
    targets=("tfjs",),
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
