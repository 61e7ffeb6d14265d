"""A TensorFlow op tf.js does not implement (Softsign): the converter refuses the graph."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, custom_model, model_page, predict_in_page

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

# The documented escape hatch of the graph executor: implement the missing op in JavaScript.
REGISTER_SOFTSIGN = """() => {
  tf.registerOp('Softsign', (node) => {
    const x = node.inputs[0];
    return tf.div(x, tf.add(tf.abs(x), 1));
  });
  return 'Softsign';
}"""


def faulty(run: Run[TfjsTarget]) -> None:
    run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model"],
                  custom_model(run.cache, "softsign").saved_model)


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    model = custom_model(run.cache, "softsign")
    converted = run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
                                          "--skip_op_check"], model.saved_model)
    page = model_page(run, converted)
    run.note("registered", page.evaluate(REGISTER_SOFTSIGN))
    x, expected = model.probe()
    got = predict_in_page(page, MODEL_URL, x, graph=True)
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="Graph model with an op tf.js has no implementation for (Softsign)",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"ValueError: Unsupported Ops in the model before optimization\s+Softsign",
                   runtime="tensorflowjs converter"),
    remedy=MATCHES_KERAS,
    cause="tf.js implements a subset of TensorFlow's ops (the converter's op lists). A Keras "
          "`Dense(activation='softsign')` becomes the TF op Softsign in a SavedModel; tf.js's graph "
          "executor has no Softsign, so the converter checks the graph and refuses it rather than "
          "write a model the browser could not run.",
    fix="Check the supported-ops list before choosing layers. When an op is missing, either rewrite "
        "it with supported ops in Python (x / (1 + |x|)), or convert with `--skip_op_check` and "
        "implement the op in the page with `tf.registerOp('Softsign', node => ...)` before "
        "predicting, as here; the outputs then match Keras.",
    references=("https://github.com/tensorflow/tfjs/blob/master/tfjs-converter/docs/supported_ops.md",
                "https://js.tensorflow.org/api/latest/#registerOp",
                "https://github.com/tensorflow/tfjs/tree/master/tfjs-converter"),
)
