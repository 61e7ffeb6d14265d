"""A TensorFlow op tf.js does not implement (Softsign): the converter refuses the graph."""

from __future__ import annotations

from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, custom_model, model_page, parity, predict_in_page
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.target import convert_graph_model

# The documented escape hatch of the graph executor: implement the missing op in JavaScript.
REGISTER_SOFTSIGN = """() => {
  tf.registerOp('Softsign', (node) => {
    const x = node.inputs[0];
    return tf.div(x, tf.add(tf.abs(x), 1));
  });
  return 'Softsign';
}"""


def faulty(run: Run) -> None:
    convert_graph_model(run.cache, custom_model(run.cache, "softsign").saved_model)


def fixed(run: Run) -> dict[str, float]:
    model = custom_model(run.cache, "softsign")
    converted = convert_graph_model(run.cache, model.saved_model, "--skip_op_check")
    page = model_page(run, converted)
    run.note("registered", page.evaluate(REGISTER_SOFTSIGN))
    x, expected = model.probe()
    return parity(predict_in_page(page, MODEL_URL, x, graph=True), expected)


SCENARIO = Scenario(
    title="Graph model with an op tf.js has no implementation for (Softsign)",
    targets=("tfjs",),
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
