"""The converted model's batch dimension: [1, 8] at allocation, -1 in its shape signature."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    # The Keras model took batches of any size; the app feeds 16 rows at once.
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, _ = trained.probe()
    run.note("input_shape", run.target.inspect(tflite)["inputs"][0]["shape"])
    run.target.predict(tflite, [x], profile=PROFILES["host"])


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    details = run.target.inspect(tflite)["inputs"][0]
    run.note("input_shape", details["shape"])
    run.note("input_shape_signature", details["shape_signature"])
    x, expected = trained.probe()
    # resize_tensor_input(index, [16, 8]) then allocate_tensors(), done by predict(resize=True).
    got = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    return {"batch_dim_in_signature": float(details["shape_signature"][0]),
            "rows_out": float(got.shape[0]),
            "max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="A batch of 16 fed to a converted model whose input is allocated as [1, 8]",
    targets=("litert",),
    figures={"batch_dim_in_signature": "exact", "max_abs_diff": "parity", "rows_out": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Cannot set tensor: Dimension mismatch\. Got 16 but expected 1 for dimension 0 of input 0\.",
                   runtime="litert"),
    remedy=succeeds(Figure("batch_dim_in_signature", "<", 0), Figure("rows_out", ">=", 16),
                    Figure("max_abs_diff", "<=", 1e-5)),
    cause="The Keras model's batch dimension is None. The converter keeps it as -1 in the "
          "tensor's `shape_signature` but gives the tensor a concrete `shape` of [1, 8], which is "
          "what allocate_tensors() reserves. Setting a [16, 8] array then fails with 'Cannot set "
          "tensor: Dimension mismatch. Got 16 but expected 1 for dimension 0 of input 0.'",
    fix="Read `get_input_details()`: `shape_signature` says which dimensions may change. Call "
        "`interpreter.resize_tensor_input(index, [16, 8])` and `allocate_tensors()` again before "
        "`set_tensor` (or fix the batch size at conversion). The 16 outputs then match Keras.",
    references=("https://ai.google.dev/edge/litert/inference",
                "https://www.tensorflow.org/api_docs/python/tf/lite/Interpreter#resize_tensor_input",
                "https://github.com/tensorflow/tensorflow/issues/49979"),
)
