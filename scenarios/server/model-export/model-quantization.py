"""Float16 weights for a served model: half the weight bytes, near-identical predictions, and the dtype trap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import ArtifactCache
from harness.compare import accuracy, label_agreement, max_abs_diff
from harness.models import ModelSpec, TrainedModel, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import cached_export, grpc_predict, serve_versions, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def export_float16(cache: ArtifactCache, trained: TrainedModel, layout: str, build_model: Callable[[], Any]) -> Path:
    """``build_model()`` (the MLP's layers in float16) given the trained weights as float16, exported.

    ``layout`` names what ``build_model`` builds (it is part of the cache key); the model is a
    ``keras.Model`` (Keras ships no type information, hence ``Any``).
    """

    def build(out: Path) -> None:
        model = build_model()
        model.set_weights([w.astype("float16") for w in trained.load().get_weights()])
        model.export(str(out), verbose=False)

    return cached_export(cache, {"recipe": "float16-weights/2", "layout": layout, "model": trained.dir.name}, build)


def weight_bytes(model_dir: Path) -> int:
    """Bytes of the stored weight tensors (the checkpoint in variables/), by dtype and shape."""
    import numpy as np
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(model_dir / "variables" / "variables"))
    shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
    return sum(int(np.prod(shapes[name])) * dtypes[name].size for name in shapes
               if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH") and dtypes[name].is_floating)


def _serve_and_call(run: "Run[TfservingTarget]", trained: TrainedModel, half: Path) -> dict[str, float]:
    """Serve the float16 export and call it as the float32 model's gRPC client always has."""
    from harness.models import keras_outputs

    x, y = trained.test_set()
    x, y = x[:64], y[:64]
    run.figure("weight_bytes_ratio", weight_bytes(half) / weight_bytes(saved_model(run.cache, SPEC)))
    server = serve_versions(run, {1: half})
    signature = signature_defs(server)["serving_default"]
    (input_name, info), = signature["inputs"].items()
    (output_name,) = signature["outputs"]
    run.note("signature_input", {input_name: info["dtype"]})
    # The gRPC client of the float32 model, unchanged: it sends the float32 array it has.
    got = grpc_predict(server, {input_name: x}).outputs[output_name]
    expected = keras_outputs(run.cache, trained, x)
    return {"max_abs_diff": max_abs_diff(got, expected), "label_agreement": label_agreement(got, expected),
            "accuracy": accuracy(got, y)}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    def float16_everywhere() -> Any:
        # The whole model in float16, input included: the signature declares DT_HALF.
        import keras

        return keras.Sequential([keras.Input((8,), dtype="float16", name="features"),
                                 keras.layers.Dense(16, activation="relu", dtype="float16"),
                                 keras.layers.Dense(3, activation="softmax", dtype="float16")])

    trained = trained_model(run.cache, SPEC)
    return _serve_and_call(run, trained, export_float16(run.cache, trained, "float16 I/O", float16_everywhere))


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    def float16_inside() -> Any:
        # Float16 layers behind a float32 Input (Keras casts it to each layer's dtype), and the
        # output cast back to float32: the signature stays DT_FLOAT.
        import keras

        return keras.Sequential([keras.Input((8,), dtype="float32", name="features"),
                                 keras.layers.Dense(16, activation="relu", dtype="float16"),
                                 keras.layers.Dense(3, activation="softmax", dtype="float16"),
                                 keras.layers.Activation("linear", dtype="float32")])

    trained = trained_model(run.cache, SPEC)
    return _serve_and_call(run, trained, export_float16(run.cache, trained, "float32 I/O", float16_inside))


SCENARIO = Scenario(
    title="Float16 model with a float16 signature called by a float32 gRPC client vs float32 I/O",
    targets=("tfserving",),
    figures={"accuracy": "exact", "label_agreement": "exact", "max_abs_diff": "parity", "weight_bytes_ratio": "size"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Expects arg\[0\] to be half but float is provided", runtime="tfserving"),
    remedy=succeeds(Figure("weight_bytes_ratio", "<=", 0.55), Figure("max_abs_diff", "<=", 5e-3),
                    Figure("label_agreement", ">=", 1.0), Figure("accuracy", ">=", 0.85)),
    cause="Storing the weights as float16 halves the model's weight bytes with almost no change "
          "in the predictions. But when the whole model, input included, is made float16, its "
          "serving signature declares DT_HALF. TF Serving passes a gRPC TensorProto to the graph "
          "as it is, without conversion, so the existing clients, which send float32 tensors "
          "(tf.make_tensor_proto of a float32 array), fail in TensorFlow's function call with "
          "\"Expects arg[0] to be half but float is provided\". REST clients fare no better: "
          "TF Serving's JSON decoder has no DT_HALF conversion and answers \"Conversion of JSON "
          "Value: ... to type: half\".",
    fix="Keep the serving interface float32 and quantise inside: float32 Input, float16 layers "
        "(Keras casts the input to each layer's dtype) and a final float32 cast of the output. "
        "The weights stay float16 (weight bytes 0.5 of the float32 model's), unchanged clients "
        "work, and the predictions stay within 5e-3 of the float32 model with the same labels. "
        "Alternatively change every client to send DT_HALF, a breaking API change.",
    references=("https://keras.io/api/mixed_precision/policy/",
                "https://www.tensorflow.org/guide/mixed_precision",
                "https://github.com/tensorflow/serving/issues/1673",
                "https://github.com/tensorflow/serving/issues/927",
                "https://github.com/tensorflow/serving/pull/1753"),
)
