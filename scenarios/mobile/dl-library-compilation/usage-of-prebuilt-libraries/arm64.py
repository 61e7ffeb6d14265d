"""The prebuilt runtime on the device (aarch64 LiteRT under qemu): no Flex kernels there either.

A desktop check of a Select-TF-ops model proves nothing about the phone: the prebuilt aarch64
LiteRT (the same ``ai-edge-litert`` release, ARM kernels) has no Flex delegate, so the
``FlexMatrixDeterminant`` node fails on the device.  The builtin rewrite (``a*d - b*c``) runs
there, and its outputs must agree with the x86-64 kernels and with TensorFlow; so must an
int8-quantized model's (within one quantization step).  Timings under qemu mean nothing and
none are taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.artifacts import library_versions
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.models import ModelSpec, saved_model, trained_model
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES, quantize

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget


def det_models(run: Run[LitertTarget]) -> Path:
    """SavedModels ``flex`` (tf.linalg.det) and ``builtin`` (closed form) and TF's outputs."""

    def build(out: Path) -> None:
        import numpy as np
        import tensorflow as tf

        class Scores(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
            def flex(self, x: Any) -> Any:
                return {"det": tf.linalg.det(tf.reshape(x, [-1, 2, 2]))}

            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32)])
            def builtin(self, x: Any) -> Any:
                return {"det": x[:, 0] * x[:, 3] - x[:, 1] * x[:, 2]}

        module = Scores()
        for name in ("flex", "builtin"):
            tf.saved_model.save(module, str(out / name), signatures={"serving_default": getattr(module, name)})
        x = np.random.default_rng(13).uniform(-2.0, 2.0, size=(16, 4)).astype("float32")
        np.savez(out / "reference.npz", x=x, y=module.flex(tf.constant(x))["det"].numpy())

    return run.cache.get_or_build("saved_model", {"model": "det-2x2-any-batch", "v": 1,
                                                  "versions": library_versions("tensorflow")}, build)


def _device_available(run: Run[LitertTarget]) -> None:
    from harness.targets.litert.arm64 import arm64_unavailable_reason

    reason = arm64_unavailable_reason()
    if reason:
        run.skip(f"arm64 device: {reason}")


def _reference(models: Path) -> tuple[Any, Any]:
    import numpy as np

    with np.load(models / "reference.npz") as f:
        return f["x"], f["y"]


def faulty(run: Run[LitertTarget]) -> None:
    _device_available(run)
    models = det_models(run)
    tflite = convert_to_tflite(run.cache, models / "flex", select_tf_ops=True)
    x, _ = _reference(models)
    run.target.predict(tflite, [x[:1]], profile=PROFILES["arm64"])


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    _device_available(run)
    models = det_models(run)
    tflite = convert_to_tflite(run.cache, models / "builtin")
    x, expected = _reference(models)
    on_arm = run.target.predict(tflite, [x[:1]], profile=PROFILES["arm64"])[0]
    on_x86 = run.target.predict(tflite, [x[:1]], profile=PROFILES["host"])[0]
    from harness.targets.litert.arm64 import arm64_versions

    run.note("arm64_versions", arm64_versions())
    return {"arm_vs_x86_max_abs_diff": max_abs_diff(on_arm, on_x86),
            "arm_vs_tensorflow_max_abs_diff": max_abs_diff(on_arm, expected[:1]),
            "int8_arm_vs_x86_max_steps": _int8_parity(run)}


def _int8_parity(run: Run[LitertTarget]) -> float:
    """The zoo's dense model fully quantized to int8: ARM and x86 kernels must agree to the step."""
    spec = ModelSpec("dense", "keras3")
    probe, _ = trained_model(run.cache, spec).probe()
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, spec), quantize="int8", representative=probe)
    q = quantize(probe[:1], run.target.inspect(tflite)["inputs"][0])  # the device profile runs batch 1
    on_arm, on_x86 = (run.target.predict(tflite, [q], profile=PROFILES[p])[0] for p in ("arm64", "host"))
    return max_abs_diff(on_arm, on_x86)  # int8 steps


SCENARIO = Scenario(
    title="The prebuilt aarch64 LiteRT has no Flex delegate either; the builtin rewrite agrees across CPUs",
    targets=("litert",),
    figures={"arm_vs_tensorflow_max_abs_diff": "parity", "arm_vs_x86_max_abs_diff": "parity",
             "int8_arm_vs_x86_max_steps": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported by "
                   r"this interpreter\..*FlexMatrixDeterminant", runtime="litert/arm64"),
    remedy=succeeds(Figure("arm_vs_x86_max_abs_diff", "<=", 1e-6),
                    Figure("arm_vs_tensorflow_max_abs_diff", "<=", 1e-5),
                    Figure("int8_arm_vs_x86_max_steps", "<=", 1)),
    cause="The runtime that ships to phones is a prebuilt library for ARM; like the desktop "
          "wheel it contains the builtin kernels only. A model converted with SELECT_TF_OPS "
          "needs the Flex delegate linked into the app, so the node fails on the device exactly "
          "as on the desktop. Kernels also differ by architecture (NEON paths vs x86 SIMD), so a "
          "model checked only on x86 has not been checked on the device.",
    fix="Rewrite the op with builtins (or link the Flex library into the app), then check the "
        "model on the device's own runtime: here the aarch64 LiteRT wheel under qemu gives the "
        "same outputs as the x86-64 kernels and as TensorFlow, and an int8 model's outputs agree "
        "to the quantization step.",
    references=("https://ai.google.dev/edge/litert/models/ops_select",
                "https://github.com/tensorflow/tensorflow/issues/50714"),
)
