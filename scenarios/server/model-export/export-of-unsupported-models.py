"""A tf.py_function in the serving graph: the SavedModel exports, but no model server can run it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache
from harness.compare import max_abs_diff
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import cached_export, export_endpoint, serve_versions

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")
LIMIT = 2.0  # features are clipped to [-LIMIT, LIMIT] before the network (outlier guard)


def clip_in_python(x: "np.ndarray") -> "np.ndarray":
    import numpy as np

    return np.clip(x, -LIMIT, LIMIT).astype("float32")


def export_clipped(cache: ArtifactCache, trained: TrainedModel, clip_name: str,
                   clip: Callable[["tf.Tensor"], "tf.Tensor"]) -> Path:
    """The network behind ``clip`` (the outlier guard), exported as ``serving_default``."""

    def build(out: Path) -> None:
        import tensorflow as tf

        model = trained.load()

        def serve(features: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"probabilities": model(clip(features))}

        export_endpoint(out, model, serve, [tf.TensorSpec([None, 8], tf.float32, name="features")])

    return cached_export(cache, {"recipe": "clip-before-network/2", "clip": clip_name,
                                 "limit": LIMIT, "model": trained.dir.name}, build)


def _serve_and_compare(run: "Run[TfservingTarget]", trained: TrainedModel, model_dir: Path) -> dict[str, float]:
    """Serve the export and compare it with Keras on the NumPy-clipped test rows."""
    import numpy as np

    from harness.models import keras_outputs

    x, _ = trained.test_set()
    x = x[:32]
    run.note("export_ops", sorted(_graph_ops(model_dir) & {"EagerPyFunc", "PyFunc", "ClipByValue"}))
    server = serve_versions(run, {1: model_dir}, variant="no-load-retries")
    got = server.predict({"instances": x.tolist()})["predictions"]
    expected = keras_outputs(run.cache, trained, clip_in_python(x))
    return {"max_abs_diff": max_abs_diff(got, expected),
            "rows_clipped": float(np.sum(np.any(np.abs(x) > LIMIT, axis=1)))}


def _graph_ops(model_dir: Path) -> set[str]:
    """Op types in the SavedModel's graph and function library (read from saved_model.pb)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    ops: set[str] = set()
    for meta in saved.meta_graphs:
        ops |= {node.op for node in meta.graph_def.node}
        for function in meta.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)

    def clip(features: "tf.Tensor") -> "tf.Tensor":
        # The NumPy pre-processing kept, wrapped in tf.py_function so that it runs "in the graph".
        import tensorflow as tf

        clipped = tf.py_function(clip_in_python, [features], tf.float32)
        clipped.set_shape([None, 8])
        return clipped

    return _serve_and_compare(run, trained, export_clipped(run.cache, trained, "tf.py_function(np.clip)", clip))


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)

    def clip(features: "tf.Tensor") -> "tf.Tensor":
        # The same pre-processing written with a TensorFlow op: part of the graph the server runs.
        import tensorflow as tf

        return tf.clip_by_value(features, -LIMIT, LIMIT)

    return _serve_and_compare(run, trained, export_clipped(run.cache, trained, "tf.clip_by_value", clip))


SCENARIO = Scenario(
    title="Pre-processing written as tf.py_function: exported, not servable; rewritten with TF ops",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity", "rows_clipped": "exact"},
    faulty=faulty,
    fixed=fixed,
    # TF Serving's C++ binary has no kernel for the Python-only op ('PyFunc'/'EagerPyFunc' not
    # registered); the TF Serving-compatible server runs in Python, has the op, and fails in its
    # kernel because the Python callback was never registered in the serving process.
    symptom=Raises(r"Could not find callback with key=pyfunc_\d+ in the registry"
                   r"|Op type not registered 'EagerPyFunc'"
                   r"|No OpKernel was registered to support Op 'EagerPyFunc'", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5), Figure("rows_clipped", ">=", 1)),
    cause="tf.py_function (and tf.numpy_function) put an EagerPyFunc op in the graph that only "
          "holds a token ('pyfunc_1') naming a Python callable registered in the exporting "
          "process. The SavedModel is written without complaint, but the callable is not in it: "
          "TF Serving's C++ binary has no kernel for the op at all, and any other process that "
          "loads the graph, like the TF Serving-compatible server used here, fails at the first "
          "request with TensorFlow's \"ValueError: Could not find callback with key=pyfunc_1 in "
          "the registry.\" (HTTP 400).",
    fix="Write the pre-processing with TensorFlow ops (here tf.clip_by_value instead of np.clip in "
        "a py_function) so that it is part of the graph; the exported signature then runs in the "
        "server and its predictions equal Keras on the NumPy-clipped inputs. Logic that cannot be "
        "expressed in TF ops must stay in the client or become a custom C++ op linked into the "
        "server.",
    references=("https://www.tensorflow.org/api_docs/python/tf/py_function",
                "https://github.com/tensorflow/serving/issues/992",
                "https://github.com/tensorflow/serving/issues/495",
                "https://www.tensorflow.org/tfx/serving/custom_op"),
)
