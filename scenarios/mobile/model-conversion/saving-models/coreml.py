"""Saved with Keras 3's default format, the model cannot be handed to coremltools.

``model.save("model.keras")`` is the Keras 3 default, but coremltools' TensorFlow frontend reads
only an ``.h5`` file, a SavedModel directory or an in-memory tf.keras model.  The fixed variant
saves with tf_keras as a SavedModel, converts it and checks the converted spec (and, on macOS,
the predictions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.coreml.convert import convert_to_coreml
from harness.targets.coreml.kit import on_macos, spec_summary

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget


def faulty(run: Run[CoremlTarget]) -> None:
    trained = trained_model(run.cache, ModelSpec("dense", "keras3"))
    run.note("saved_as", trained.model_file.name)
    convert_to_coreml(run.cache, trained.model_file)


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    spec = ModelSpec("dense", "tf_keras")
    package = convert_to_coreml(run.cache, saved_model(run.cache, spec))
    summary = run.note("spec", spec_summary(package))
    figures = {"is_ml_program": float(summary["model_type"] == "mlProgram"),
               "input_features": float(summary["inputs"][0]["shape"][-1])}
    if on_macos():
        x, expected = trained_model(run.cache, spec).probe()
        figures["max_abs_diff"] = max_abs_diff(run.target.predict_array(package, x[:1]), expected[:1])
    return figures


SCENARIO = Scenario(
    title="A Keras 3 .keras file handed to coremltools",
    targets=("coreml",),
    figures={"input_features": "exact", "is_ml_program": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Input model path should be \.h5/\.hdf5 file or a directory, but got .*model\.keras"),
    remedy=succeeds(Figure("is_ml_program", ">=", 1), Figure("input_features", ">=", 8),
                    Figure("input_features", "<=", 8)),
    cause="Keras 3 saves to its own `.keras` zip format by default. coremltools' TensorFlow "
          "frontend (declared tested up to TF 2.12) predates it and accepts only HDF5 files, "
          "SavedModel directories or tf.keras objects, so it refuses the path outright.",
    fix="Save in a format the converter reads: with tf_keras (TF_USE_LEGACY_KERAS=1 or "
        "`import tf_keras`) write a SavedModel (`model.save(dir, save_format='tf')`) and convert "
        "that directory; then check the converted spec, and on macOS compare predictions with "
        "Keras.",
    references=("https://apple.github.io/coremltools/docs-guides/source/tensorflow-2.html",
                "https://keras.io/guides/serialization_and_saving/"),
)
