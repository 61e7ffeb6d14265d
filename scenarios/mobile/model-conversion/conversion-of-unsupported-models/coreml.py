"""An op coremltools cannot convert (``tf.linalg.det``), fixed by rewriting it with supported ops.

The model scores each example by the determinant of a 2x2 matrix built from its features
(an area, an orientation test).  coremltools' TensorFlow frontend has no translation for
``MatrixDeterminant``; for 2x2 matrices the closed form ``a*d - b*c`` uses only supported ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.artifacts import library_versions
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.coreml.convert import convert_to_coreml
from harness.targets.coreml.kit import mil_operations, on_macos

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget


def determinant_models(run: Run[CoremlTarget]) -> Path:
    """SavedModels ``linalg`` (tf.linalg.det) and ``closed_form`` plus TF reference outputs."""

    def build(out: Path) -> None:
        import numpy as np
        import tensorflow as tf

        spec = tf.TensorSpec([1, 4], tf.float32)

        class Linalg(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, x: Any) -> Any:
                return {"det": tf.linalg.det(tf.reshape(x, [-1, 2, 2]))}

        class ClosedForm(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, x: Any) -> Any:
                return {"det": x[:, 0] * x[:, 3] - x[:, 1] * x[:, 2]}

        for name, module in (("linalg", Linalg()), ("closed_form", ClosedForm())):
            tf.saved_model.save(module, str(out / name), signatures={"serving_default": module.serve})
        x = np.random.default_rng(11).uniform(-2.0, 2.0, size=(16, 4)).astype("float32")
        ref, rewritten = Linalg(), ClosedForm()
        np.savez(out / "reference.npz", x=x,
                 y=np.concatenate([ref.serve(tf.constant(r[None]))["det"].numpy() for r in x]),
                 y_rewrite=np.concatenate([rewritten.serve(tf.constant(r[None]))["det"].numpy() for r in x]))

    return run.cache.get_or_build("saved_model", {"model": "determinant-2x2", "v": 1,
                                                  "versions": library_versions("tensorflow")}, build)


def faulty(run: Run[CoremlTarget]) -> None:
    convert_to_coreml(run.cache, determinant_models(run) / "linalg")


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    import numpy as np

    models = determinant_models(run)
    package = convert_to_coreml(run.cache, models / "closed_form")
    ops = mil_operations(package)
    run.note("mil_operations", sorted(set(ops)))
    with np.load(models / "reference.npz") as f:
        x, y, y_rewrite = f["x"], f["y"], f["y_rewrite"]
    figures = {"rewrite_vs_linalg_max_abs_diff": max_abs_diff(y_rewrite, y),
               "mil_mul_ops": float(sum(op == "mul" for op in ops))}
    if on_macos():
        got = np.concatenate([np.ravel(run.target.predict_array(package, row[None])) for row in x])
        figures["coreml_max_abs_diff"] = max_abs_diff(got, y)
    return figures


SCENARIO = Scenario(
    title="tf.linalg.det has no Core ML conversion; a closed-form rewrite converts",
    targets=("coreml",),
    figures={"mil_mul_ops": "exact", "rewrite_vs_linalg_max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Conversion for TF op 'MatrixDeterminant' not implemented\."),
    remedy=succeeds(Figure("rewrite_vs_linalg_max_abs_diff", "<=", 1e-5), Figure("mil_mul_ops", ">=", 2)),
    cause="coremltools translates each TensorFlow op into MIL operations; ops without a "
          "translation (here `MatrixDeterminant`, also `MatrixInverse`, `Cumprod`, `Erfinv` in "
          "coremltools 9.0) stop the conversion with 'Conversion for TF op ... not implemented'.",
    fix="Rewrite the op with supported ops (for 2x2 matrices det = a*d - b*c), check the rewrite "
        "against the original in TensorFlow, convert, and compare Core ML's predictions on macOS. "
        "When no rewrite exists, register a composite operator (`@register_tf_op`) built from MIL "
        "ops, or a custom layer implemented in the app.",
    references=("https://apple.github.io/coremltools/docs-guides/source/composite-operators.html",
                "https://github.com/apple/coremltools/issues/958",
                "https://github.com/apple/coremltools/issues/1195"),
)
