"""Asking the converter for a layers model from a SavedModel: an unsupported format pair."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MODEL_URL, model_page

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")

# The page wants a LayersModel (to fine-tune it in the browser), not an inference-only graph.
LOAD_TRAINABLE = """async ({url, x}) => {
  const m = await tf.loadLayersModel(url);
  return {y: await m.predict(tf.tensor(x)).array(), trainable: m.trainableWeights.length};
}"""


def faulty(run: Run[TfjsTarget]) -> None:
    run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_layers_model"],
                  saved_model(run.cache, SPEC))


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    # The same tf.keras SavedModel, read by the converter's Keras reader for that artifact.
    converted = run_converter(run.cache, ["--input_format=keras_saved_model"], saved_model(run.cache, SPEC))
    page = model_page(run, converted)
    x, expected = trained_model(run.cache, SPEC).probe()
    got = page.evaluate(LOAD_TRAINABLE, {"url": MODEL_URL, "x": x.tolist()})
    return {"max_abs_diff": max_abs_diff(got["y"], expected),
            "trainable_weights": float(got["trainable"])}


SCENARIO = Scenario(
    title="--output_format=tfjs_layers_model with a SavedModel input",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity", "trainable_weights": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"ValueError: Unsupported input_format - output_format pair: tf_saved_model - tfjs_layers_model",
                   runtime="tensorflowjs converter"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4), Figure("trainable_weights", ">=", 4)),
    cause="The converter supports only some input/output pairs. `--input_format=tf_saved_model` "
          "reads a SavedModel as a plain TensorFlow graph, which can only become a tf.js graph model "
          "(inference only); the Keras layer structure a LayersModel needs is not read on that path. "
          "Asking for `--output_format=tfjs_layers_model` there, because the page wants to fine-tune "
          "the model with fit(), stops the converter.",
    fix="Choose the reader for what the page needs: for a trainable tf.LayersModel from a tf.keras "
        "SavedModel use `--input_format=keras_saved_model` (its output is tfjs_layers_model), or "
        "convert the Keras .h5 file with `--input_format=keras`; load it with tf.loadLayersModel. "
        "Keep tf_saved_model -> tfjs_graph_model with tf.loadGraphModel for inference only. The "
        "layers model here has its trainable weights (2 kernels + 2 biases) and matches Keras.",
    references=("https://github.com/tensorflow/tfjs/tree/master/tfjs-converter",
                "https://www.tensorflow.org/js/guide/conversion"),
)
