"""Running the converter: each artifact needs its own --input_format (layers vs graph model)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MODEL_URL, model_page, predict_in_page

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")


def faulty(run: Run[TfjsTarget]) -> None:
    # The SavedModel directory handed to the Keras (HDF5) reader of the converter.
    run_converter(run.cache, ["--input_format=keras"], saved_model(run.cache, SPEC))


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    layers_dir = run_converter(run.cache, ["--input_format=keras"], trained.model_file)  # the model.h5 file
    graph_dir = run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model"],
                              saved_model(run.cache, SPEC))  # the SavedModel directory
    page = model_page(run, layers_dir, {"/graph/": graph_dir})
    x, expected = trained.probe()
    return {"layers_max_abs_diff": max_abs_diff(predict_in_page(page, MODEL_URL, x), expected),
            "graph_max_abs_diff": max_abs_diff(predict_in_page(page, "/graph/model.json", x, graph=True), expected)}


SCENARIO = Scenario(
    title="SavedModel converted with --input_format=keras; each artifact needs its own format",
    targets=("tfjs",),
    figures={"graph_max_abs_diff": "parity", "layers_max_abs_diff": "parity"},
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
