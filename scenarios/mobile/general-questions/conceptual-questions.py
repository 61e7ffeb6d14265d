"""What a converted mobile model is: a TF Lite flatbuffer with signatures, run by an interpreter.

A frequent misconception is that the ``.tflite`` file is "the Keras model, smaller", to be
reopened with Keras for a quick check.  It is another format entirely; Keras refuses it.  The
fixed variant walks the golden path and inspects what the conversion produced: the file
identifier, the signature, the input/output details, and the effect of the default delegate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    import keras

    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    keras.models.load_model(tflite)  # "it is the same model, only smaller"


def run_signature(model_path: str, x: Any) -> dict[str, Any]:
    """In the LiteRT worker: call the model through its signature, as apps should."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=model_path)
    runner = interp.get_signature_runner("serving_default")
    name = next(iter(runner.get_input_details()))
    return {"input_name": name, "outputs": runner(**{name: x})}


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np

    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    x, expected = trained_model(run.cache, SPEC).probe()
    head = tflite.read_bytes()[:8]
    details = run.note("model_io", run.target.inspect(tflite))
    run.note("file_identifier", head[4:8].decode("ascii", "replace"))
    by_signature = run.target.call(run_signature, str(tflite), x[:1])
    run.note("signature_input", by_signature["input_name"])
    sig_out = np.asarray(next(iter(by_signature["outputs"].values())))
    with_xnnpack = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    builtin_only = run.target.predict(tflite, [x], profile=PROFILES["no-xnnpack"], resize=True)[0]
    return {
        "is_tflite_flatbuffer": float(head[4:8] == b"TFL3"),
        "signatures": float(len(details["signatures"])),
        "dynamic_batch": float(details["inputs"][0]["shape_signature"][0] == -1),
        "signature_vs_keras_max_abs_diff": max_abs_diff(sig_out, expected[:1]),
        "xnnpack_vs_builtin_max_abs_diff": max_abs_diff(with_xnnpack, builtin_only),
        "max_abs_diff": max_abs_diff(with_xnnpack, expected),
    }


SCENARIO = Scenario(
    title="A .tflite file is not a Keras model: what conversion produces, inspected",
    targets=("litert",),
    figures={"dynamic_batch": "exact", "is_tflite_flatbuffer": "exact", "max_abs_diff": "parity",
             "signature_vs_keras_max_abs_diff": "parity", "signatures": "exact",
             "xnnpack_vs_builtin_max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"File format not supported: filepath=.*model\.tflite\. Keras 3 only supports V3 "
                   r"`\.keras` files"),
    remedy=succeeds(Figure("is_tflite_flatbuffer", ">=", 1), Figure("signatures", ">=", 1),
                    Figure("dynamic_batch", ">=", 1), Figure("signature_vs_keras_max_abs_diff", "<=", 1e-5),
                    Figure("xnnpack_vs_builtin_max_abs_diff", "<=", 1e-5), Figure("max_abs_diff", "<=", 1e-5)),
    cause="Training frameworks and mobile runtimes use different formats. Keras saves `.keras` "
          "(a zip of config and weights) or `.h5`; TensorFlow exports SavedModel (a graph); the "
          "TF Lite converter writes a FlatBuffer (file identifier `TFL3`) holding operators, "
          "tensors, weights and signatures, which only a TF Lite interpreter runs. Keras cannot "
          "reopen it.",
    fix="Think of the pipeline as train (Keras) -> export (SavedModel) -> convert (TFLiteConverter) "
        "-> run (LiteRT Interpreter, with delegates such as XNNPACK, applied by default on CPU, or "
        "GPU/NNAPI on devices). Inspect the converted model with the interpreter: signatures, input "
        "and output details (shape_signature -1 marks a dynamic batch), and compare outputs with "
        "Keras and across delegates.",
    references=("https://ai.google.dev/edge/litert/models/convert_tf",
                "https://ai.google.dev/edge/litert/models/signatures",
                "https://ai.google.dev/edge/litert/performance/delegates"),
)
