"""Converting a trained Keras 3 model: which TFLiteConverter entry point takes what."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    # The model was saved with model.save("model.keras"); the file is handed to from_saved_model,
    # which expects a SavedModel *directory* (saved_model.pb + variables/), not a Keras archive.
    import tensorflow as tf

    trained = trained_model(run.cache, SPEC)
    run.note("source", trained.model_file.name)
    tf.lite.TFLiteConverter.from_saved_model(str(trained.model_file)).convert()


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    paths = {
        # Keras 3 in memory: load the .keras file, then from_keras_model.
        "from_keras_model": convert_to_tflite(run.cache, trained.model_file, from_keras=True),
        # The documented path for Keras 3: model.export(dir) writes a SavedModel with a
        # serving_default signature, then from_saved_model(dir).
        "export_then_from_saved_model": convert_to_tflite(run.cache, saved_model(run.cache, SPEC)),
    }
    diffs = {}
    for name, path in paths.items():
        got = run.target.predict(path, [x], profile=PROFILES["host"], resize=True)[0]
        diffs[name] = max_abs_diff(got, expected)
        run.figure(f"max_abs_diff_{name}", diffs[name])
        run.note(f"bytes_{name}", path.stat().st_size)
    return {"max_abs_diff": max(diffs.values())}


SCENARIO = Scenario(
    title="A .keras file handed to TFLiteConverter.from_saved_model",
    targets=("litert",),
    figures={"max_abs_diff": "parity", "max_abs_diff_export_then_from_saved_model": "parity",
             "max_abs_diff_from_keras_model": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"SavedModel file does not exist at: \S*model\.keras/\{saved_model\.pbtxt\|saved_model\.pb\}"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="TFLiteConverter has one entry point per kind of source: from_saved_model reads a "
          "SavedModel directory (saved_model.pb plus variables/), from_keras_model takes a Keras "
          "model object, from_concrete_functions takes traced tf.functions. Keras 3's "
          "model.save('model.keras') writes a zip archive in the native Keras format, which is "
          "not a SavedModel, so from_saved_model looks inside it for saved_model.pb and fails "
          "with 'SavedModel file does not exist at: model.keras/{saved_model.pbtxt|saved_model.pb}'.",
    fix="Either load the .keras file with keras.models.load_model and call "
        "TFLiteConverter.from_keras_model(model), or (the path documented for Keras 3 and for "
        "serving) call model.export('dir') and then TFLiteConverter.from_saved_model('dir'). "
        "Both conversions are run here and their outputs match the Keras model on a probe batch.",
    references=("https://ai.google.dev/edge/litert/models/convert_tf",
                "https://www.tensorflow.org/api_docs/python/tf/lite/TFLiteConverter",
                "https://keras.io/api/models/model_saving_apis/export/"),
)
