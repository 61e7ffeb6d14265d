"""Running the converter: each artifact needs its own --input_format (layers vs graph model)."""

from __future__ import annotations

from harness.targets.tfjs.kit import MODEL_URL, model_page, parity, predict_in_page
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.target import convert_graph_model, convert_layers_model, run_converter

SPEC = ModelSpec("dense", "tf_keras")


def faulty(run: Run) -> None:
    # The SavedModel directory handed to the Keras (HDF5) reader of the converter.
    run_converter(run.cache, ["--input_format=keras"], saved_model(run.cache, SPEC))


def fixed(run: Run) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    layers_dir = convert_layers_model(run.cache, trained)  # model.h5 -> --input_format=keras
    graph_dir = convert_graph_model(run.cache, saved_model(run.cache, SPEC))  # dir -> tf_saved_model
    page = model_page(run, layers_dir, {"/graph/": graph_dir})
    x, expected = trained.probe()
    layers = parity(predict_in_page(page, MODEL_URL, x), expected)
    graph = parity(predict_in_page(page, "/graph/model.json", x, graph=True), expected)
    return {"layers_max_abs_diff": layers["max_abs_diff"], "graph_max_abs_diff": graph["max_abs_diff"]}


SCENARIO = Scenario(
    title="SavedModel converted with --input_format=keras; each artifact needs its own format",
    targets=("tfjs",),
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"ValueError: Expected path to point to an HDF5 file, but it points to a directory: \S*saved_model",
                   runtime="tensorflowjs converter"),
    remedy=succeeds(Figure("layers_max_abs_diff", "<=", 1e-4), Figure("graph_max_abs_diff", "<=", 1e-4)),
    cause="tensorflowjs_converter has one reader per artifact kind. `--input_format=keras` reads a "
          "Keras HDF5 file (model.h5) and writes a layers model; a SavedModel is a directory and needs "
          "`--input_format=tf_saved_model`, which writes a graph model. Given a directory, the Keras "
          "reader stops before converting anything.",
    fix="Match the flag to the artifact: `tensorflowjs_converter --input_format=keras model.h5 out/` "
        "(load with tf.loadLayersModel) or `tensorflowjs_converter --input_format=tf_saved_model "
        "--output_format=tfjs_graph_model saved_model/ out/` (load with tf.loadGraphModel). Both "
        "paths are checked against the Keras outputs in Chromium.",
    references=("https://www.tensorflow.org/js/guide/conversion",
                "https://github.com/tensorflow/tfjs/tree/master/tfjs-converter"),
)
