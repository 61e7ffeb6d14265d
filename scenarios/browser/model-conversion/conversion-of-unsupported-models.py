"""A Keras Lambda layer converts, but tf.js cannot rebuild it: 'Unknown layer: Lambda'."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, CustomModel, custom_model, model_page, predict_in_page

if TYPE_CHECKING:
    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

# The Python lambda was `lambda t: t * 0.5 + 1.0`; its bytecode in model.json means nothing to
# JavaScript, so the page ports it as a layer class registered under the serialized class name.
REGISTER_LAMBDA = """() => {
  class Lambda extends tf.layers.Layer {
    static className = 'Lambda';
    call(inputs) {
      return tf.tidy(() => (Array.isArray(inputs) ? inputs[0] : inputs).mul(0.5).add(1.0));
    }
    computeOutputShape(inputShape) { return inputShape; }
  }
  tf.serialization.registerClass(Lambda);
  return Lambda.className;
}"""


def _page(run: Run[TfjsTarget]) -> tuple[CustomModel, TfjsPage]:
    """The Lambda model converted as a layers model (the converter accepts it), served in a page."""
    model = custom_model(run.cache, "lambda")
    converted = run_converter(run.cache, ["--input_format=keras"], model.h5)
    return model, model_page(run, converted)


def faulty(run: Run[TfjsTarget]) -> None:
    model, page = _page(run)
    predict_in_page(page, MODEL_URL, model.probe()[0])


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    model, page = _page(run)
    run.note("registered", page.evaluate(REGISTER_LAMBDA))
    x, expected = model.probe()
    got = predict_in_page(page, MODEL_URL, x)
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="Keras Lambda layer in a layers model: Unknown layer: Lambda in the page",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Unknown layer: Lambda\. This may be due to one of the following reasons:.*"
                   r"The layer is defined in Python, in which case it needs to be ported to TensorFlow\.js",
                   runtime="tfjs"),
    remedy=MATCHES_KERAS,
    cause="A Lambda layer wraps arbitrary Python code. tensorflowjs_converter writes it into "
          "model.json as serialized Python bytecode without complaint, but tf.js builds layers from "
          "its own registry of classes, has no Lambda and cannot run Python, so loadLayersModel fails "
          "while deserializing the topology.",
    fix="Port the layer to JavaScript: a subclass of tf.layers.Layer with `static className = "
        "'Lambda'` and a `call()` doing the same maths, registered with "
        "tf.serialization.registerClass before loading. Alternatively rebuild the Python model "
        "with built-in layers (or a custom layer with get_config) so nothing is Python-only. The "
        "ported page matches the Keras outputs.",
    references=("https://www.tensorflow.org/js/guide/models_and_layers#custom_layers",
                "https://github.com/tensorflow/tfjs/issues/1521",
                "https://github.com/tensorflow/tfjs/issues/419",
                "https://stackoverflow.com/questions/50878885/unknown-layer-lambda-in-tensorflowjs-on-browser"),
)
