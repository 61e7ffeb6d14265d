"""End to end around a served model: standardise the raw request, argmax the reply into labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.models import ModelSpec, TrainedModel, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import RAW_MEAN, RAW_STD, Server, label_figures, raw_measurements, serve_versions

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")  # trained on standardised features
CLASS_NAMES = ("low", "medium", "high")


def _raw_rows(run: "Run[TfservingTarget]") -> tuple["np.ndarray", TrainedModel, Server]:
    """The client's raw measurements of 64 test rows, and the served model trained on standardised ones."""
    trained = trained_model(run.cache, SPEC)
    x, _ = trained.test_set()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    return raw_measurements(x[:64]), trained, server  # what the client receives from its sensors


def _judge(run: "Run[TfservingTarget]", scores: "np.ndarray", trained: TrainedModel) -> dict[str, float]:
    """The labels against the Python pipeline the model was validated with: scaler, then Keras."""
    from harness.models import keras_outputs

    x, y = trained.test_set()
    return label_figures(scores, keras_outputs(run.cache, trained, x[:64]), y[:64])


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    raw, trained, server = _raw_rows(run)
    # The raw values go to the server as they are: the scaler stayed in the training script.
    scores = np.asarray(server.predict({"instances": raw.tolist()})["predictions"])
    run.note("first_labels", [CLASS_NAMES[i] for i in np.argmax(scores, axis=1)][:8])
    return _judge(run, scores, trained)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    raw, trained, server = _raw_rows(run)
    # Pre-processing: the scaler's training statistics, applied before the request.
    features = (raw - np.asarray(RAW_MEAN, "float32")) / np.asarray(RAW_STD, "float32")
    scores = np.asarray(server.predict({"instances": features.tolist()})["predictions"])
    # Post-processing: argmax over each row, then the class names.
    run.note("first_labels", [CLASS_NAMES[i] for i in np.argmax(scores, axis=1)][:8])
    return _judge(run, scores, trained)


SCENARIO = Scenario(
    title="Raw measurements sent to a served model trained on standardised features",
    targets=("tfserving",),
    figures={"accuracy": "exact", "label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("label_agreement", "<=", 0.8),
    remedy=succeeds(Figure("label_agreement", ">=", 1.0), Figure("max_abs_diff", "<=", 1e-4),
                    Figure("accuracy", ">=", 0.85)),
    cause="A SavedModel exported from the Keras model holds only the network. In training the "
          "raw measurements went through a scaler ((x - mean) / std) first, so a client that "
          "posts the raw values gets HTTP 200 and confident, mostly wrong predictions: the server "
          "cannot know the numbers are on another scale, since they have the right shape and "
          "dtype.",
    fix="Apply the same pre-processing before the request (the scaler's training mean and std "
        "shipped with the model) and the post-processing after it (argmax over each row of "
        "`predictions`, then the class names). The served labels then agree with the Python "
        "pipeline on every row; a sturdier fix moves the scaler into the model "
        "(see migrating-pre-processing).",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://scikit-learn.org/stable/modules/generated/sklearn.preprocessing.StandardScaler.html",
                "https://keras.io/guides/preprocessing_layers/"),
)
