"""A Keras 3 `.keras` file handed to the converter's Keras (HDF5) reader."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import label_agreement, max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MATCHES_KERAS, MODEL_URL, model_page, predict_in_page

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "keras3")  # model.save("model.keras"), the Keras 3 default


def faulty(run: Run[TfjsTarget]) -> None:
    run_converter(run.cache, ["--input_format=keras"], trained_model(run.cache, SPEC).model_file)


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    # Same Keras 3 model, saved for serving with model.export() -> SavedModel -> graph model.
    converted = run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model"],
                              saved_model(run.cache, SPEC))
    page = model_page(run, converted)
    x, expected = trained_model(run.cache, SPEC).probe()
    got = predict_in_page(page, MODEL_URL, x, graph=True)
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected)}


SCENARIO = Scenario(
    title="Keras 3 .keras file given to tensorflowjs_converter --input_format=keras",
    targets=("tfjs",),
    figures={"label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"OSError: Unable to (synchronously )?open file \(file signature not found\)",
                   runtime="tensorflowjs converter"),
    remedy=MATCHES_KERAS,
    cause="Keras 3 (tf.keras under TF 2.16+) saves `model.keras`, a zip archive of config.json and "
          "weights. `--input_format=keras` expects the legacy HDF5 file that tf_keras's "
          "`model.save('model.h5')` writes and opens it with h5py, which finds no HDF5 signature in a "
          "zip file.",
    fix="Save the model in a form the converter reads: `model.export('saved_model')` (Keras 3) and "
        "convert with `--input_format=tf_saved_model` to a graph model, as here; or build and save the "
        "model with tf_keras (TF_USE_LEGACY_KERAS=1) as `model.h5` for a layers model. The exported "
        "model matches the Keras 3 outputs in Chromium.",
    references=("https://github.com/tensorflow/tfjs/issues/8266",
                "https://github.com/AlexanderLutsenko/nobuco/issues/67",
                "https://keras.io/api/models/model_saving_apis/export/",
                "https://www.tensorflow.org/js/guide/conversion"),
)
