"""A graph model (converted from a SavedModel) loaded with tf.loadLayersModel instead of tf.loadGraphModel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.errors import RuntimeFailure
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_graph_model, convert_layers_model
from harness.targets.tfjs.page import PREDICT_GRAPH_JS, PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")
FORMAT_JS = "async (url) => (await (await fetch(url)).json()).format"


def _graph_page(run: Run[TfjsTarget]) -> TfjsPage:
    """A page serving the graph model (converted from the SavedModel) at /model/, its format noted."""
    converted = convert_graph_model(run.cache, saved_model(run.cache, SPEC))
    page = run.enter(run.target.page({"/model/": converted}, observe=run.observe))
    run.note("model_json_format", page.evaluate(FORMAT_JS, "/model/model.json"))
    return page


def faulty(run: Run[TfjsTarget]) -> None:
    trained = trained_model(run.cache, SPEC)
    x = trained.probe()[0].tolist()
    # The reverse mistake, kept as evidence: a layers model given to loadGraphModel.
    with run.target.page({"/layers/": convert_layers_model(run.cache, trained)}) as other:
        try:
            other.evaluate(PREDICT_GRAPH_JS, {"url": "/layers/model.json", "x": x})
        except RuntimeFailure as err:
            run.note("reverse_mistake_error", err.message)
    page = _graph_page(run)
    page.evaluate(PREDICT_LAYERS_JS, {"url": "/model/model.json", "x": x})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page = _graph_page(run)
    x, expected = trained_model(run.cache, SPEC).probe()
    got = page.evaluate(PREDICT_GRAPH_JS, {"url": "/model/model.json", "x": x.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Graph model loaded with loadLayersModel",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"layer: Improper config format: \{\"node\":\[.*'className' and 'config' must set\.",
                   runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4)),
    cause="tensorflowjs_converter writes two different formats: a *layers* model (from a Keras "
          "HDF5 file; model.json holds a Keras topology) and a *graph* model (from a SavedModel; "
          "model.json holds a TensorFlow GraphDef, `\"format\": \"graph-model\"`). "
          "tf.loadLayersModel tries to deserialise the GraphDef's node list as a Keras layer and "
          "fails with 'Improper config format ... 'className' and 'config' must set.'. The "
          "reverse mistake (a layers model given to tf.loadGraphModel) fails with "
          "\"Cannot read properties of undefined (reading 'producer')\" (recorded as evidence).",
    fix="Check the `format` field of model.json and use the matching loader: "
        "`tf.loadGraphModel` for graph-model, `tf.loadLayersModel` for layers-model (or convert "
        "with the output format your code expects).",
    references=("https://js.tensorflow.org/api/latest/#loadGraphModel",
                "https://www.tensorflow.org/js/guide/conversion",
                "https://github.com/tensorflow/tfjs/issues/3487",
                "https://github.com/tensorflow/tfjs/issues/3772"),
)
