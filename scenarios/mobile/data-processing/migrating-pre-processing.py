"""Standardisation done in the Python training pipeline, forgotten in the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

SPEC = ModelSpec("dense", "keras3")
# What the sensors report: each feature in its own unit. Training standardised them with these
# statistics (x = (raw - mean) / std) before the model ever saw them.
RAW_MEAN = (36.6, 1013.0, 72.0, 0.5, 120.0, 4.2, 15.0, 250.0)
RAW_STD = (0.8, 9.0, 12.0, 0.25, 35.0, 1.1, 6.0, 80.0)


def sensor_readings(x: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return (x * np.array(RAW_STD, "float32") + np.array(RAW_MEAN, "float32")).astype("float32")


def standardise(raw: "np.ndarray") -> "np.ndarray":
    """The training pipeline's preprocessing, ported to the app."""
    import numpy as np

    return ((raw - np.array(RAW_MEAN, "float32")) / np.array(RAW_STD, "float32")).astype("float32")


def measure(run: Run, port_preprocessing: bool) -> dict[str, float]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, labels = trained.test_set()
    raw = sensor_readings(x)
    device_input = standardise(raw) if port_preprocessing else raw
    probs = run.target.predict(tflite, [device_input], profile=PROFILES["low-end"], resize=True)[0]
    keras_probs = trained.load().predict(x, verbose=0)  # the Python pipeline: standardised input
    keras_accuracy = float(np.mean(keras_probs.argmax(1) == labels))
    device_accuracy = float(np.mean(probs.argmax(1) == labels))
    return {"keras_accuracy": keras_accuracy, "device_accuracy": device_accuracy,
            "accuracy_drop": keras_accuracy - device_accuracy,
            "max_abs_diff": float(np.max(np.abs(probs - keras_probs)))}


def faulty(run: Run) -> dict[str, float]:
    return measure(run, port_preprocessing=False)


def fixed(run: Run) -> dict[str, float]:
    return measure(run, port_preprocessing=True)


SCENARIO = Scenario(
    title="The app feeds raw sensor readings to a model trained on standardised features",
    targets=("litert",),
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("accuracy_drop", ">", 0.3)),
    remedy=succeeds(Figure("accuracy_drop", "<=", 0.01), Figure("max_abs_diff", "<=", 1e-4)),
    cause="Preprocessing often lives in the Python training code (a StandardScaler, a mean/std "
          "computed on the training set), not in the model. The converted model expects "
          "standardised features; the app, re-written by someone else, passes the sensors' raw "
          "values. LiteRT accepts them without complaint (same shape and dtype) and the "
          "predictions are silently wrong: the accuracy drop is measured against the Keras "
          "pipeline on the same held-out rows.",
    fix="Port the preprocessing with the exact statistics used in training (ship them with the "
        "model, e.g. in its metadata) or, better, put it inside the model before export (a "
        "keras.layers.Normalization layer converts to builtin ops), so that app and training "
        "cannot drift apart. With the same standardisation the device matches Keras.",
    references=("https://ai.google.dev/edge/litert/models/metadata",
                "https://keras.io/api/layers/preprocessing_layers/numerical/normalization/",
                "https://www.tensorflow.org/tutorials/load_data/csv"),
)
