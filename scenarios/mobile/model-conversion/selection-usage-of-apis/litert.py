"""The interpreter API: TensorFlow's deprecated tf.lite.Interpreter versus LiteRT's Interpreter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    # The interpreter from the TF package, in a test suite that turns warnings into errors
    # (pytest -W error, or filterwarnings = error), as a project preparing for TF 2.20 would.
    import warnings

    import tensorflow as tf

    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tf.lite.Interpreter(model_path=str(tflite))


def run_with_litert(model_path: str, x: "np.ndarray") -> dict[str, Any]:
    """Runs in the LiteRT worker (no TensorFlow there): LiteRT's interpreter, warnings recorded."""
    import warnings

    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        interp = Interpreter(model_path=model_path)
        inp = interp.get_input_details()[0]
        interp.resize_tensor_input(inp["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        y = interp.get_tensor(interp.get_output_details()[0]["index"])
    return {"y": y, "warnings": [str(w.message) for w in seen]}


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, expected = trained.probe()
    result = run.target.call(run_with_litert, str(tflite), x, profile=PROFILES["host"])
    for text in result["warnings"]:
        run.observe(text)
    return {"warnings": float(len(result["warnings"])),
            "max_abs_diff": max_abs_diff(result["y"], expected)}


SCENARIO = Scenario(
    title="tf.lite.Interpreter is deprecated in TF 2.19: LiteRT's ai_edge_litert Interpreter replaces it",
    targets=("litert",),
    figures={"max_abs_diff": "parity", "warnings": "exact"},
    applies=("tensorflow>=2.19",),  # the version matrix: TF 2.18's tf.lite.Interpreter does not warn yet
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"tf\.lite\.Interpreter is deprecated and is scheduled for deletion in\s+TF 2\.20\. "
                   r"Please use the LiteRT interpreter from the ai_edge_litert package\."),
    remedy=succeeds(Figure("warnings", "<=", 0), Figure("max_abs_diff", "<=", 1e-5)),
    cause="TF Lite's Python APIs moved out of TensorFlow into LiteRT (package ai-edge-litert). "
          "In TF 2.19 `tf.lite.Interpreter` still works but warns on every construction that it "
          "is scheduled for deletion in TF 2.20; a suite that treats warnings as errors (or the "
          "next TF release) breaks on it. The TF interpreter also drags the whole TensorFlow "
          "package into what should be a light inference process.",
    fix="Install ai-edge-litert and use `from ai_edge_litert.interpreter import Interpreter` (same "
        "methods: allocate_tensors, set_tensor, invoke, get_tensor). Here it runs in a process "
        "without TensorFlow, raises no warning and matches the Keras outputs. The converter "
        "itself (tf.lite.TFLiteConverter) stays in TensorFlow.",
    references=("https://ai.google.dev/edge/litert/migration",
                "https://www.tensorflow.org/api_docs/python/tf/lite/Interpreter",
                "https://pypi.org/project/ai-edge-litert/"),
)
