"""A model saved by Keras 3, converted with tensorflowjs 4.22 and loaded in tf.js 4.22."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import library_versions
from harness.compare import max_abs_diff
from harness.models import KERAS_DISTS, ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MODEL_URL, model_page
from harness.targets.tfjs.page import PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

KERAS3, TF_KERAS = ModelSpec("dense", "keras3"), ModelSpec("dense", "tf_keras")


def keras3_h5(run: Run[TfjsTarget]) -> Path:
    """The Keras 3 model saved as HDF5 (`model.save('model.h5')`), the file the converter reads."""
    trained = trained_model(run.cache, KERAS3)
    key = {"from": trained.dir.name, "versions": library_versions(*KERAS_DISTS)}
    return run.cache.get_or_build("trained_h5", key, lambda out: trained.load().save(out / "model.h5")) / "model.h5"


def _load_in_page(run: Run[TfjsTarget], converted: Path, x: Any) -> Any:
    """Record what wrote model.json and its InputLayer config, then load it in a page and predict ``x``."""
    info = json.loads((converted / "model.json").read_text())
    layers = info["modelTopology"]["model_config"]["config"]["layers"]
    run.note("generated_by", info.get("generatedBy"))
    run.note("input_layer_config_keys", sorted(layers[0]["config"]))
    return model_page(run, converted).evaluate(PREDICT_LAYERS_JS, {"url": MODEL_URL, "x": x.tolist()})


def faulty(run: Run[TfjsTarget]) -> None:
    # Trained and saved with Keras 3 (tf.keras under TF 2.16+), converted as a Keras HDF5 file.
    converted = run_converter(run.cache, ["--input_format=keras"], keras3_h5(run))
    _load_in_page(run, converted, trained_model(run.cache, KERAS3).probe()[0])


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    # The same model built and saved with tf_keras (the Keras 2 API), converted the same way.
    trained = trained_model(run.cache, TF_KERAS)
    converted = run_converter(run.cache, ["--input_format=keras"], trained.model_file)
    x, expected = trained.probe()
    return {"max_abs_diff": max_abs_diff(_load_in_page(run, converted, x), expected)}


SCENARIO = Scenario(
    title="Keras 3 model config in tf.js: InputLayer has batch_shape, tf.js expects batch_input_shape",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"An InputLayer should be passed either a `batchInputShape` or an `inputShape`\.",
                   runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4)),
    cause="tf.keras is Keras 3 from TF 2.16 on. Keras 3 writes a different model config: the "
          "InputLayer has `batch_shape` (not `batch_input_shape`) and dtypes are DTypePolicy "
          "objects. tensorflowjs_converter 4.22 copies that config into model.json without "
          "complaint, but tf.js 4.22's layers deserializer only knows the Keras 2 keys, so "
          "loading fails in the browser: 'An InputLayer should be passed either a "
          "`batchInputShape` or an `inputShape`.'",
    fix="Keep the Keras 2 API for models headed to tf.js layers format: `pip install tf_keras` "
        "and train/save with `import tf_keras` (or set TF_USE_LEGACY_KERAS=1 before importing "
        "TensorFlow), then convert the .h5 file; or export a SavedModel and convert it to a "
        "graph model (`--input_format=tf_saved_model`), loaded with tf.loadGraphModel. Pin the "
        "converter and tf.js to the same version.",
    references=("https://github.com/tensorflow/tfjs/issues/8494",
                "https://keras.io/getting_started/",
                "https://github.com/keras-team/tf-keras",
                "https://www.tensorflow.org/js/tutorials/conversion/import_keras"),
)
