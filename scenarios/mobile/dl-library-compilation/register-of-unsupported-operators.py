"""A model converted with ``allow_custom_ops`` runs into an op the runtime has no kernel for.

The model turns per-step hazards into a survival curve with ``tf.math.cumprod``, which has no
TF Lite builtin.  ``converter.allow_custom_ops = True`` makes the conversion pass by writing a
*custom* ``Cumprod`` operator whose kernel the app is expected to register; without it, LiteRT
fails when it prepares the node.  Registering a kernel needs native code: TF's Python wrapper has
``custom_op_registerers`` for a compiled library, and ai-edge-litert 2.3.0's ``Interpreter`` does
not accept even that (the fixed variant records its refusal), so the fix here is the rewrite.
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


def survival_models(run: Run[LitertTarget]) -> Path:
    """SavedModels ``cumprod`` and ``builtin`` (exp of a cumulative sum of logs) plus reference data."""

    def build(out: Path) -> None:
        import numpy as np
        import tensorflow as tf

        spec = tf.TensorSpec([None, 8], tf.float32)

        class Cumprod(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, logits: Any) -> Any:
                return {"survival": tf.math.cumprod(tf.sigmoid(logits), axis=1)}

        class Builtin(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, logits: Any) -> Any:
                return {"survival": tf.exp(tf.math.cumsum(tf.math.log(tf.sigmoid(logits)), axis=1))}

        for name, module in (("cumprod", Cumprod()), ("builtin", Builtin())):
            tf.saved_model.save(module, str(out / name), signatures={"serving_default": module.serve})
        x = np.random.default_rng(5).normal(2.0, 1.0, size=(16, 8)).astype("float32")
        np.savez(out / "reference.npz", x=x, y=Cumprod().serve(tf.constant(x))["survival"].numpy())

    return run.cache.get_or_build("saved_model", {"model": "survival-cumprod", "v": 1,
                                                  "versions": library_versions("tensorflow")}, build)


def _reference(models: Path) -> tuple[Any, Any]:
    import numpy as np

    with np.load(models / "reference.npz") as f:
        return f["x"], f["y"]


def custom_operators(model_path: str) -> list[str]:
    """Names of the custom operator codes in a .tflite file (read with LiteRT's schema module)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(Path(model_path).read_bytes(), 0))
    return sorted(c.customCode.decode() for c in model.operatorCodes if c.customCode)


def registration_refusal(model_path: str) -> str:
    """In the LiteRT worker: what LiteRT's Interpreter says to a custom-op registerer."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        Interpreter(model_path=model_path, custom_op_registerers=["Register_CUMPROD"])
    except TypeError as exc:
        return str(exc)
    return "accepted"


def faulty(run: Run[LitertTarget]) -> None:
    models = survival_models(run)
    tflite = convert_to_tflite(run.cache, models / "cumprod", extra={"allow_custom_ops": True})
    run.note("custom_ops", custom_operators(str(tflite)))
    x, _ = _reference(models)
    run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    models = survival_models(run)
    tflite = convert_to_tflite(run.cache, models / "builtin")
    custom = run.note("custom_ops", custom_operators(str(tflite)))
    run.note("registration_api", run.target.call(registration_refusal, str(tflite)))
    x, expected = _reference(models)
    got = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    return {"custom_ops": float(len(custom)), "max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Custom op left unregistered: allow_custom_ops converts, the runtime cannot run it",
    targets=("litert",),
    figures={"custom_ops": "exact", "max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Encountered unresolved custom op: Cumprod\..*Node number \d+ \(Cumprod\) failed to prepare",
                   runtime="litert"),
    remedy=succeeds(Figure("custom_ops", "<=", 0), Figure("max_abs_diff", "<=", 1e-5)),
    cause="`allow_custom_ops=True` does not make an op supported: it writes a custom operator code "
          "(here `Cumprod`) and leaves it to the app to register a kernel under that name. An app "
          "that links only the builtin op resolver fails when the interpreter prepares the node: "
          "'Encountered unresolved custom op: Cumprod'.",
    fix="Either implement and register the kernel (C++ `TfLiteRegistration` added to the op "
        "resolver; in Python only through `custom_op_registerers` of a compiled library, in Java "
        "through a custom native build), or rewrite the op with builtins. Here cumprod(p) becomes "
        "exp(cumsum(log p)), valid because p = sigmoid(.) > 0; the rewritten model has no custom "
        "op and matches TensorFlow's cumprod.",
    references=("https://ai.google.dev/edge/litert/models/ops_custom",
                "https://github.com/tensorflow/tensorflow/issues/38341",
                "https://github.com/tensorflow/tensorflow/issues/41758"),
)
