"""A SavedModel exported with TF 2.19 served by a TF 2.12 server: an op the old runtime lacks."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache, library_versions
from harness.compare import max_abs_diff
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, model_base_path

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

OLD_SERVING_TF = "2.12.0"
LOAD_ONCE = "no-load-retries"  # the serving variant whose failed load is final: its error shows at once


def bag_of_items_model(cache: ArtifactCache) -> Path:
    """A small recommender: a bag of item ids (padded with -1) -> mean embedding -> 3 scores.

    ``tf.nn.safe_embedding_lookup_sparse`` on ragged ids emits RaggedFillEmptyRows, an op added
    after TF 2.12.  Saved with ``tf.saved_model.save``; probe ids and outputs are saved beside it.
    """

    def build(out: Path) -> None:
        import numpy as np
        import tensorflow as tf

        class Recommender(tf.Module):
            def __init__(self) -> None:
                rng = np.random.default_rng(0)
                self.table = tf.Variable(rng.normal(size=(50, 8)).astype("float32"))
                self.head = tf.Variable(rng.normal(size=(8, 3)).astype("float32"))

            @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.int64, name="item_ids")])
            def serve(self, item_ids: "tf.Tensor") -> dict[str, "tf.Tensor"]:
                bags = tf.RaggedTensor.from_tensor(item_ids, padding=-1)
                pooled = tf.nn.safe_embedding_lookup_sparse(self.table, bags, combiner="mean")
                return {"scores": tf.matmul(pooled, self.head)}

        module = Recommender()
        tf.saved_model.save(module, str(out / "saved_model"), signatures={"serving_default": module.serve})
        x = np.array([[1, 2, 3, -1, -1, -1], [-1] * 6, [4, 4, 49, 7, 8, 9], [10, -1, -1, -1, -1, -1]],
                     dtype="int64")
        np.savez(out / "probe.npz", x=x, y=module.serve(tf.constant(x))["scores"].numpy())

    key = {"model": "bag-of-items-recommender", "versions": library_versions("tensorflow", "numpy")}
    return cache.get_or_build("saved_model_ragged_bag", key, build)


def _recommender_base(run: "Run[TfservingTarget]") -> Path:
    """The recommender (exported with this venv's TF, 2.19) laid out as version 1 of ``recommender``."""
    run.target.require_container("a server with another TensorFlow (its own image)")
    return model_base_path(run.workdir, {1: bag_of_items_model(run.cache) / "saved_model"}, name="recommender")


def _probe(run: "Run[TfservingTarget]", server: Server, serving_tf: str) -> dict[str, float]:
    import numpy as np

    run.note("implementation", server.implementation)
    run.note("serving_tensorflow", serving_tf)
    with np.load(bag_of_items_model(run.cache) / "probe.npz") as probe:
        x, expected = probe["x"], probe["y"]
    got = server.predict({"instances": x.tolist()}, model="recommender")["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected)}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    # The serving image pinned long ago (TF 2.12) runs a model exported with this venv's TF 2.19.
    server = run.enter(run.target.serve(model_name="recommender", model_dir=_recommender_base(run),
                                        tf_version=OLD_SERVING_TF, variant=LOAD_ONCE))
    return _probe(run, server, OLD_SERVING_TF)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    # The serving image's TensorFlow is the one that exported the model: this venv's own.
    training_tf = library_versions("tensorflow")["tensorflow"]
    server = run.enter(run.target.serve(model_name="recommender", model_dir=_recommender_base(run),
                                        tf_version=training_tf, variant=LOAD_ONCE))
    return _probe(run, server, training_tf)


SCENARIO = Scenario(
    title="SavedModel from TF 2.19 served by TF 2.12: Op type not registered 'RaggedFillEmptyRows'",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Op type not registered 'RaggedFillEmptyRows' in binary running on", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4)),
    cause="A SavedModel is a graph of TensorFlow ops; the server executes it with the TensorFlow "
          "runtime it was built with. Ops added after that release are unknown to an older server (here "
          "RaggedFillEmptyRows, which `tf.nn.safe_embedding_lookup_sparse` emits for ragged ids in "
          "recent TF releases; TF 2.12 does not have it): loading the "
          "version fails with TensorFlow's 'Op type not registered ... Make sure the Op and Kernel "
          "are registered in the binary running in this process', and the model never becomes "
          "AVAILABLE. Plain layers (Dense, Conv) often still load, so the mismatch goes unnoticed "
          "until a model uses a newer op.",
    fix="Serve with a TensorFlow Serving release at least as new as the TensorFlow that exported the "
        "model (pin the `tensorflow/serving:<version>` image tag to the training version), or export "
        "with the serving version. With TF 2.19 on both sides the model loads and matches Keras.",
    references=("https://www.tensorflow.org/tfx/serving/docker",
                "https://www.tensorflow.org/guide/versions#compatibility_of_savedmodels_graphs_and_checkpoints",
                "https://github.com/tensorflow/serving/issues/924",
                "https://github.com/tensorflow/serving/issues/411"),
)
