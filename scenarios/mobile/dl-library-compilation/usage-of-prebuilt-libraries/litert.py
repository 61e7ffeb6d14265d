"""The prebuilt LiteRT runtime has no TensorFlow (Flex) kernels: a Select-TF-ops model fails.

The model inverts a 2x2 matrix per example (``tf.linalg.inv``).  TF Lite has no builtin for
``MatrixInverse``, so the converter either refuses or, with ``SELECT_TF_OPS``, emits a
``FlexMatrixInverse`` node that needs the Flex delegate, which the pip ``ai-edge-litert`` wheel
(like the default Android/iOS runtime) does not contain.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.artifacts import library_versions
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget


def inverse_models(run: Run[LitertTarget]) -> Path:
    """SavedModels ``linalg`` (tf.linalg.inv) and ``builtin`` (closed form) plus reference data."""

    def build(out: Path) -> None:
        import numpy as np
        import tensorflow as tf

        spec = tf.TensorSpec([None, 4], tf.float32)

        def as_matrix(x: Any) -> Any:
            return tf.reshape(x, [-1, 2, 2]) + 3.0 * tf.eye(2)

        class Linalg(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, x: Any) -> Any:
                return {"inverse": tf.reshape(tf.linalg.inv(as_matrix(x)), [-1, 4])}

        class Builtin(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, x: Any) -> Any:
                m = tf.reshape(as_matrix(x), [-1, 4])
                a, b, c, d = m[:, 0], m[:, 1], m[:, 2], m[:, 3]
                det = a * d - b * c
                return {"inverse": tf.stack([d, -b, -c, a], axis=1) / det[:, None]}

        for name, module in (("linalg", Linalg()), ("builtin", Builtin())):
            tf.saved_model.save(module, str(out / name), signatures={"serving_default": module.serve})
        x = np.random.default_rng(3).uniform(-1.0, 1.0, size=(16, 4)).astype("float32")
        np.savez(out / "reference.npz", x=x, y=Linalg().serve(tf.constant(x))["inverse"].numpy())

    return run.cache.get_or_build("saved_model", {"model": "matrix-inverse-2x2", "v": 1,
                                                  "versions": library_versions("tensorflow")}, build)


def _reference(models: Path) -> tuple[Any, Any]:
    import numpy as np

    with np.load(models / "reference.npz") as f:
        return f["x"], f["y"]


def faulty(run: Run[LitertTarget]) -> None:
    models = inverse_models(run)
    tflite = convert_to_tflite(run.cache, models / "linalg", select_tf_ops=True)
    run.note("op_names", run.target.call(operator_names, str(tflite)))
    x, _ = _reference(models)
    run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)


def operator_names(model_path: str) -> list[str]:
    """In the LiteRT worker: the operator of every node (``_get_ops_details``, LiteRT's node list)."""
    from ai_edge_litert.interpreter import Interpreter

    return sorted({op["op_name"] for op in Interpreter(model_path=model_path)._get_ops_details()})


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    models = inverse_models(run)
    tflite = convert_to_tflite(run.cache, models / "builtin")
    ops = run.note("op_names", run.target.call(operator_names, str(tflite)))
    x, expected = _reference(models)
    got = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    return {"flex_ops": float(sum(op.startswith("Flex") for op in ops)),
            "max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="A Select-TF-ops model on the prebuilt LiteRT runtime, which has no Flex delegate",
    targets=("litert",),
    figures={"flex_ops": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported by "
                   r"this interpreter\. Make sure you apply/link the Flex delegate before inference\..*"
                   r"Node number \d+ \(FlexMatrixInverse\) failed to prepare", runtime="litert"),
    remedy=succeeds(Figure("flex_ops", "<=", 0), Figure("max_abs_diff", "<=", 1e-5)),
    cause="`tf.linalg.inv` has no TF Lite builtin. Converting with `SELECT_TF_OPS` succeeds and "
          "embeds a `FlexMatrixInverse` node that runs TensorFlow's own kernel through the Flex "
          "delegate. The prebuilt runtimes (the `ai-edge-litert` wheel, the default Android AAR and "
          "iOS pod) do not contain that delegate, so preparing the node fails and the error names "
          "the op.",
    fix="Keep the model inside the builtin op set: rewrite the op with builtins (here the "
        "closed-form inverse of a 2x2 matrix), convert without SELECT_TF_OPS, and verify the "
        "model has no Flex node and matches TensorFlow's result. If the op cannot be rewritten, "
        "link the Flex library (`tensorflow-lite-select-tf-ops` on Android, `TensorFlowLiteSelectTfOps` "
        "on iOS), which adds several MB to the app.",
    references=("https://ai.google.dev/edge/litert/models/ops_select",
                "https://github.com/tensorflow/tensorflow/issues/55644",
                "https://github.com/tensorflow/tensorflow/issues/71564",
                "https://github.com/tensorflow/tensorflow/issues/50714"),
)
