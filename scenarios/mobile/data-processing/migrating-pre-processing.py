"""Standardisation done in the Python training pipeline, forgotten in the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import accuracy, max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

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


def sensor_test_set(run: Run[LitertTarget]) -> tuple["np.ndarray", "np.ndarray", "np.ndarray"]:
    """Held-out rows as the sensors report them, their labels, and the Python pipeline's
    probabilities on the same rows (standardised there, as in training)."""
    trained = trained_model(run.cache, SPEC)
    x, labels = trained.test_set()
    return sensor_readings(x), labels, trained.load().predict(x, verbose=0)


def scores(probs: "np.ndarray", labels: "np.ndarray", keras_probs: "np.ndarray") -> dict[str, float]:
    keras_accuracy = accuracy(keras_probs, labels)
    device_accuracy = accuracy(probs, labels)
    return {"keras_accuracy": keras_accuracy, "device_accuracy": device_accuracy,
            "accuracy_drop": keras_accuracy - device_accuracy,
            "max_abs_diff": max_abs_diff(probs, keras_probs)}


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    raw, labels, keras_probs = sensor_test_set(run)
    # The app hands the sensors' values to the interpreter as they come.
    probs = run.target.predict(tflite, [raw], profile=PROFILES["low-end"], resize=True)[0]
    return scores(probs, labels, keras_probs)


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    raw, labels, keras_probs = sensor_test_set(run)
    # The training pipeline's standardisation, ported with its statistics.
    probs = run.target.predict(tflite, [standardise(raw)], profile=PROFILES["low-end"], resize=True)[0]
    return scores(probs, labels, keras_probs)


SCENARIO = Scenario(
    title="The app feeds raw sensor readings to a model trained on standardised features",
    targets=("litert",),
    figures={"accuracy_drop": "exact", "device_accuracy": "exact", "keras_accuracy": "exact",
             "max_abs_diff": "parity"},
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
