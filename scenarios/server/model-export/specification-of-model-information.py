"""A tf.Module exported without `signatures=`: two tf.functions, so no serving_default signature."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import ArtifactCache
from harness.compare import max_abs_diff
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import cached_export, serve_versions, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def export_module(cache: ArtifactCache, trained: TrainedModel, how: str, save: Callable[[Any, str], None]) -> Path:
    """The trained MLP rewritten as a low-level tf.Module with `predict` and `logits` methods,
    written by ``save(module, path)`` (``how`` names the call; it is part of the cache key)."""

    def build(out: Path) -> None:
        import tensorflow as tf

        weights = [tf.constant(w) for w in trained.load().get_weights()]  # kernel, bias x 2
        features = tf.TensorSpec([None, 8], tf.float32, name="features")

        class Classifier(tf.Module):
            def __init__(self) -> None:
                super().__init__()
                self.params = [tf.Variable(w) for w in weights]

            @tf.function(input_signature=[features])
            def logits(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
                w1, b1, w2, b2 = self.params
                return {"logits": tf.nn.relu(x @ w1 + b1) @ w2 + b2}

            @tf.function(input_signature=[features])
            def predict(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
                return {"probabilities": tf.nn.softmax(self.logits(x)["logits"])}

        save(Classifier(), str(out))

    return cached_export(cache, {"recipe": "module-signatures/2", "save": how, "model": trained.dir.name}, build)


def _serve_and_predict(run: "Run[TfservingTarget]", trained: TrainedModel, model_dir: Path) -> dict[str, float]:
    """Serve the export, note its signatures, and send a request that names no signature."""
    x, expected = trained.probe()
    server = serve_versions(run, {1: model_dir})
    signatures = signature_defs(server)
    run.note("signatures", {k: {"inputs": sorted(v.get("inputs", {})), "outputs": sorted(v.get("outputs", {})),
                                "method": v.get("method_name")} for k, v in signatures.items()})
    got = server.predict({"instances": x.tolist()})["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected),
            "serving_default_outputs": float(len(signatures.get("serving_default", {}).get("outputs", {})))}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    def save(module: Any, path: str) -> None:
        import tensorflow as tf

        tf.saved_model.save(module, path)  # TF picks a default only if there is one tf.function

    trained = trained_model(run.cache, SPEC)
    return _serve_and_predict(run, trained, export_module(run.cache, trained, "no signatures=", save))


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    def save(module: Any, path: str) -> None:
        import tensorflow as tf

        tf.saved_model.save(module, path, signatures={"serving_default": module.predict, "logits": module.logits})

    trained = trained_model(run.cache, SPEC)
    return _serve_and_predict(run, trained, export_module(run.cache, trained, "signatures= named", save))


SCENARIO = Scenario(
    title="SavedModel without a serving_default signature: the server loads it, requests fail",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity", "serving_default_outputs": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r'^Serving signature name: "serving_default" not found in signature def$', runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5), Figure("serving_default_outputs", ">=", 1)),
    cause="A request that names no signature uses \"serving_default\". tf.saved_model.save only "
          "creates that signature by itself when the object has exactly one tf.function with an "
          "input signature; this module has two (`predict` and `logits`), so the SavedModel has "
          "no signature at all. TF Serving loads it without complaint (GET /metadata shows an "
          "empty signature_def map) and answers every predict with HTTP 400 \"Serving signature "
          "name: \\\"serving_default\\\" not found in signature def\".",
    fix="Name the signatures when saving: tf.saved_model.save(module, path, signatures="
        "{'serving_default': module.predict, 'logits': module.logits}). Their input and output "
        "names (here `features` and `probabilities`) and the predict method are then in the "
        "metadata, and a default request returns Keras's probabilities.",
    references=("https://www.tensorflow.org/guide/saved_model#specifying_signatures_during_export",
                "https://www.tensorflow.org/api_docs/python/tf/saved_model/save",
                "https://www.tensorflow.org/tfx/serving/signature_defs"),
)
