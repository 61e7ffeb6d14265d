"""Pre-processing left in the Python training code vs a Normalization layer inside the export."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache
from harness.models import ModelSpec, TrainedModel, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import RAW_MEAN, RAW_STD, cached_export, label_figures, raw_measurements, serve_versions

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")  # trained on standardised features


def export_with_normalization(cache: ArtifactCache, trained: TrainedModel) -> Path:
    """The trained network behind a Normalization layer holding the scaler's statistics."""

    def build(out: Path) -> None:
        import keras
        import numpy as np

        norm = keras.layers.Normalization(mean=list(RAW_MEAN), variance=list(np.square(RAW_STD)))
        keras.Sequential([keras.Input((8,), name="raw_measurements"), norm, trained.load()]).export(
            str(out), verbose=False)

    return cached_export(cache, {"recipe": "normalization-in-model/1", "model": trained.dir.name,
                                 "mean": RAW_MEAN, "std": RAW_STD}, build)


def _run(run: "Run[TfservingTarget]", model_dir: Path, trained: TrainedModel) -> dict[str, float]:
    import numpy as np

    from harness.models import keras_outputs

    x, y = trained.test_set()
    server = serve_versions(run, {1: model_dir})
    # The new client (another service, a mobile app's backend) sends what it measures: raw values.
    scores = np.asarray(server.predict({"instances": raw_measurements(x[:64]).tolist()})["predictions"])
    return label_figures(scores, keras_outputs(run.cache, trained, x[:64]), y[:64])


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    # The export holds the network only: the scaler stayed in the Python training script.
    return _run(run, saved_model(run.cache, SPEC), trained)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    # The scaler moved into the export, as a Normalization layer in front of the network.
    return _run(run, export_with_normalization(run.cache, trained), trained)


SCENARIO = Scenario(
    title="Standardisation kept in Python: raw requests accepted, accuracy lost; fixed in the model",
    targets=("tfserving",),
    figures={"accuracy": "exact", "label_agreement": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("accuracy", "<=", 0.7),
    remedy=succeeds(Figure("accuracy", ">=", 0.85), Figure("label_agreement", ">=", 1.0),
                    Figure("max_abs_diff", "<=", 1e-4)),
    cause="The scaler ((x - mean) / std) lived in the Python training script, outside the model, "
          "and was not migrated with it: the exported SavedModel expects standardised features, "
          "while the clients that call the server send raw measurements. The server accepts them "
          "(right shape, right dtype) and answers HTTP 200, but the accuracy drops far below what "
          "the model reached in training.",
    fix="Move the pre-processing into the exported graph: a keras.layers.Normalization layer "
        "with the training mean and variance in front of the trained network, exported with "
        "model.export. Every client now sends raw values and gets the predictions of the Python "
        "pipeline (accuracy restored, labels identical to scaler + Keras).",
    references=("https://keras.io/api/layers/preprocessing_layers/numerical/normalization/",
                "https://keras.io/guides/preprocessing_layers/",
                "https://cloud.google.com/vertex-ai/docs/tabular-data/bp-tabular"),
)
