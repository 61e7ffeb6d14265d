"""Reading a label out of a classification-style reply: `classes` lists every class, `scores` decides."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import ArtifactCache
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import cached_export, export_endpoint, serve_versions

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")
CLASS_NAMES = ("low", "medium", "high")


def export_classes_and_scores(cache: ArtifactCache, trained: TrainedModel) -> Path:
    """A signature shaped like TF's classification outputs: ``classes`` [N, 3] and ``scores`` [N, 3]."""

    def build(out: Path) -> None:
        import tensorflow as tf

        model = trained.load()

        def serve(features: tf.Tensor) -> dict[str, tf.Tensor]:
            scores = model(features)
            classes = tf.tile(tf.constant([list(CLASS_NAMES)]), [tf.shape(scores)[0], 1])
            return {"classes": classes, "scores": scores}

        export_endpoint(out, model, serve, [tf.TensorSpec([None, 8], tf.float32, name="features")])

    return cached_export(cache, {"recipe": "classes-and-scores/1", "names": CLASS_NAMES,
                                 "model": trained.dir.name}, build)


def _classify(run: "Run[TfservingTarget]") -> tuple[list[dict[str, Any]], "np.ndarray", "np.ndarray"]:
    """Serve the classes-and-scores export and send 64 test rows: (predictions, labels, Keras outputs)."""
    from harness.models import keras_outputs

    trained = trained_model(run.cache, SPEC)
    x, y = trained.test_set()
    x, y = x[:64], y[:64]
    server = serve_versions(run, {1: export_classes_and_scores(run.cache, trained)})
    predictions: list[dict[str, Any]] = server.predict({"instances": x.tolist()})["predictions"]  # one object per row
    run.note("first_prediction", predictions[0])
    return predictions, y, keras_outputs(run.cache, trained, x)


def _label_figures(labels: list[str], y: "np.ndarray", keras: "np.ndarray") -> dict[str, float]:
    """Accuracy of the client's labels, and their agreement with Keras's argmax."""
    import numpy as np

    keras_labels = [CLASS_NAMES[i] for i in np.argmax(keras, axis=1)]
    return {"accuracy": float(np.mean([label == CLASS_NAMES[t] for label, t in zip(labels, y)])),
            "label_agreement": float(np.mean([a == b for a, b in zip(labels, keras_labels)]))}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    predictions, y, keras = _classify(run)
    # The client takes `classes` for "the predicted class" and reads its first entry.
    labels = [p["classes"][0] for p in predictions]
    return _label_figures(labels, y, keras)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    predictions, y, keras = _classify(run)
    # The label is the class whose score is highest: argmax over `scores`, looked up in `classes`.
    labels = [p["classes"][int(np.argmax(p["scores"]))] for p in predictions]
    return _label_figures(labels, y, keras)


SCENARIO = Scenario(
    title="Label read from the `classes` output (all class names) instead of argmax over `scores`",
    targets=("tfserving",),
    figures={"accuracy": "exact", "label_agreement": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("accuracy", "<=", 0.6),
    remedy=succeeds(Figure("accuracy", ">=", 0.85), Figure("label_agreement", ">=", 1.0)),
    cause="Classification-style signatures (canned Estimators, TF's classification SignatureDef, "
          "exports that mimic them) return two outputs per example: `classes`, the names of all "
          "classes in a fixed order, and `scores`, one probability per class in that order. With "
          "the row format each prediction is an object holding both. A client that takes "
          "`classes` for the predicted class, and reads its first entry, gives every example the "
          "same label: the reply is HTTP 200 and well formed, only the accuracy collapses to the "
          "share of that class.",
    fix="Post-process the reply by the signature's meaning: for each prediction take the index "
        "of the highest score (argmax over `scores`, or over each row of a plain `predictions` "
        "list) and look that index up in `classes`. The labels then match Keras's argmax on every "
        "row.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://www.tensorflow.org/tfx/serving/signature_defs",
                "https://github.com/tensorflow/serving/issues/55",
                "https://github.com/MtDersvan/tf_playground/issues/5"),
)
