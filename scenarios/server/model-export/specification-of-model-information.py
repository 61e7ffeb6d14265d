"""A tf.Module exported without `signatures=`: two tf.functions, so no serving_default signature."""

from __future__ import annotations

from pathlib import Path

from harness.artifacts import ArtifactCache
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import cached_export, serve_versions, signature_defs

SPEC = ModelSpec("dense", "keras3")


def export_module(cache: ArtifactCache, trained: TrainedModel, *, name_signatures: bool) -> Path:
    """The trained MLP rewritten as a low-level tf.Module with `predict` and `logits` methods."""

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

        module = Classifier()
        if name_signatures:
            tf.saved_model.save(module, str(out), signatures={"serving_default": module.predict,
                                                              "logits": module.logits})
        else:
            tf.saved_model.save(module, str(out))  # TF picks a default only if there is one tf.function

    return cached_export(cache, {"recipe": "module-signatures/1", "named": name_signatures,
                                 "model": trained.dir.name}, build)


def _run(run: Run, name_signatures: bool) -> dict[str, float]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    server = serve_versions(run, {1: export_module(run.cache, trained, name_signatures=name_signatures)})
    signatures = signature_defs(server)
    run.note("signatures", {k: {"inputs": sorted(v.get("inputs", {})), "outputs": sorted(v.get("outputs", {})),
                                "method": v.get("method_name")} for k, v in signatures.items()})
    got = np.asarray(server.predict({"instances": x.tolist()})["predictions"])
    return {"max_abs_diff": float(np.max(np.abs(got - expected))),
            "serving_default_outputs": float(len(signatures.get("serving_default", {}).get("outputs", {})))}


def faulty(run: Run) -> dict[str, float]:
    return _run(run, name_signatures=False)


def fixed(run: Run) -> dict[str, float]:
    return _run(run, name_signatures=True)


SCENARIO = Scenario(
    title="SavedModel without a serving_default signature: the server loads it, requests fail",
    targets=("tfserving",),
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
