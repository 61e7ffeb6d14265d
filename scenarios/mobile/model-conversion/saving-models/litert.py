"""Saving a Keras 3 model in a form TFLiteConverter accepts: model.save(dir) versus model.export(dir)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    # The Keras 2 habit: model.save("some_dir") used to write a SavedModel for the converter.
    model = trained_model(run.cache, SPEC).load()
    model.save(str(run.workdir / "saved_model"))


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import tensorflow as tf

    trained = trained_model(run.cache, SPEC)
    export_dir = run.workdir / "saved_model"
    trained.load().export(str(export_dir), verbose=False)
    run.note("signatures", sorted(tf.saved_model.load(str(export_dir)).signatures.keys()))
    tflite = run.workdir / "model.tflite"
    tflite.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(export_dir)).convert())
    x, expected = trained.probe()
    got = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    return {"max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Keras 3 model.save(dir) no longer writes a SavedModel for the converter",
    targets=("litert",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Invalid filepath extension for saving\. Please add either a `\.keras` extension "
                   r"for the native Keras format \(recommended\) or a `\.h5` extension\. Use "
                   r"`model\.export\(filepath\)` if you want to export a SavedModel for use with "
                   r"TFLite/TFServing"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="Under Keras 2 (tf.keras before TF 2.16) model.save('dir') wrote a TensorFlow "
          "SavedModel, the format TFLiteConverter.from_saved_model reads. Keras 3, which tf.keras "
          "is since TF 2.16, saves only .keras (or legacy .h5) files and refuses a path without "
          "one of those extensions, pointing to model.export instead.",
    fix="Call model.export('dir') (Keras 3) to write an inference-only SavedModel with a "
        "serving_default signature, then convert it with TFLiteConverter.from_saved_model('dir'). "
        "The converted model is run on LiteRT and matches the Keras outputs.",
    references=("https://keras.io/api/models/model_saving_apis/export/",
                "https://keras.io/guides/migrating_to_keras_3/",
                "https://github.com/serizba/cppflow/issues/265"),
)
