"""End to end around a served model: standardise the raw request, argmax the reply into labels."""

from __future__ import annotations

from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import RAW_MEAN, RAW_STD, label_figures, raw_measurements, serve_versions

SPEC = ModelSpec("dense", "keras3")  # trained on standardised features
CLASS_NAMES = ("low", "medium", "high")


def _run(run: Run, standardise: bool) -> dict[str, float]:
    import numpy as np

    from harness.models import keras_outputs

    trained = trained_model(run.cache, SPEC)
    x, y = trained.test_set()
    raw = raw_measurements(x[:64])  # what the client receives from its sensors
    features = (raw - np.asarray(RAW_MEAN, "float32")) / np.asarray(RAW_STD, "float32") if standardise else raw
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    scores = np.asarray(server.predict({"instances": features.tolist()})["predictions"])
    labels = [CLASS_NAMES[i] for i in np.argmax(scores, axis=1)]  # post-processing
    run.note("first_labels", labels[:8])
    # The Python pipeline the model was validated with: scaler, then Keras.
    return label_figures(scores, keras_outputs(run.cache, trained, x[:64]), y[:64])


def faulty(run: Run) -> dict[str, float]:
    return _run(run, standardise=False)


def fixed(run: Run) -> dict[str, float]:
    return _run(run, standardise=True)


SCENARIO = Scenario(
    title="Raw measurements sent to a served model trained on standardised features",
    targets=("tfserving",),
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
