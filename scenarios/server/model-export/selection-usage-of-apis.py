"""tf.saved_model.save on a Keras 3 model: loads in TF Serving, every predict fails; model.export works."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache
from harness.compare import max_abs_diff
from harness.models import ModelSpec, TrainedModel, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import cached_export, serve_versions, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def export_with_tf_saved_model_save(cache: ArtifactCache, trained: TrainedModel) -> Path:
    """The Keras 3 model written with TensorFlow's generic ``tf.saved_model.save``."""

    def build(out: Path) -> None:
        import tensorflow as tf

        tf.saved_model.save(trained.load(), str(out))

    return cached_export(cache, {"recipe": "tf.saved_model.save/1", "model": trained.dir.name}, build)


def _predict(run: "Run[TfservingTarget]", model_dir: Path) -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    server = serve_versions(run, {1: model_dir})
    signature = signature_defs(server)["serving_default"]
    run.note("serving_default", {"inputs": sorted(signature["inputs"]), "outputs": sorted(signature["outputs"])})
    got = server.predict({"instances": x.tolist()})["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected)}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    # TensorFlow's generic saver on a Keras 3 model: tf.saved_model.save(model, path).
    return _predict(run, export_with_tf_saved_model_save(run.cache, trained_model(run.cache, SPEC)))


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    # Keras's own serving export: model.export(path) (the zoo's SavedModel).
    return _predict(run, saved_model(run.cache, SPEC))


SCENARIO = Scenario(
    title="Keras 3 model saved with tf.saved_model.save: served, but its variables are never restored",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Could not find variable dense(_\d+)?/(kernel|bias)\. This could mean that the variable "
                   r"has been deleted\. In TF1, it can also mean the variable is uninitialized\.",
                   runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="tf.saved_model.save(model, path) accepts a Keras 3 model and writes a SavedModel with a "
          "serving_default signature, which TF Serving loads and reports AVAILABLE. But Keras 3 "
          "variables are Keras objects wrapping tf.Variables: the signature's graph reads them "
          "through resource handles ('dense/bias') that the SavedModel's restore op does not "
          "assign. A loader that runs the graph in a Session, as TF Serving (and saved_model_cli) "
          "do, never creates those variables, and every request fails with TensorFlow's "
          "FAILED_PRECONDITION \"Could not find variable dense/bias ...\"; tf.saved_model.load in "
          "Python hides the problem because it restores objects, not graph resources.",
    fix="Export Keras 3 models for serving with model.export(path) (or keras.export.ExportArchive "
        "with archive.track(model) for custom endpoints), which write the variables so that the "
        "graph's restore op initialises them. The served predictions then equal Keras's; use "
        "model.save('x.keras') only for Keras itself.",
    references=("https://github.com/tensorflow/serving/issues/2226",
                "https://github.com/tensorflow/serving/issues/2250",
                "https://github.com/keras-team/keras/issues/19274",
                "https://keras.io/api/models/model_saving_apis/export/"),
)
