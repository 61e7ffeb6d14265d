"""Reproduce a LiteRT finding with TensorFlow's converter and the LiteRT interpreter alone.

Written by ``pitfalls reduce`` beside ``model.keras`` (the smallest slice of layers that still shows
the finding, with their real weights; or ``saved_model/``, a whole SavedModel, which has no layers
to cut) and ``inputs/`` (the reference's inputs to that slice, one
``.npy`` per model input).  Run it with the Python that has tensorflow and ai-edge-litert installed:

    python reproduce.py

It converts the model as ``SETTINGS`` says, runs it on the interpreter and compares with the Keras
model's own output on the same inputs.  It prints the converter's or the interpreter's own error
text, or the largest difference against the tolerance, and exits 1 when the finding shows, 0 when
it does not.  The last line is the observation as JSON (``REPRODUCER-RESULT {...}``).
"""

import json
import os
import sys
import tempfile
from typing import Any

from harness.reduce.script_common import (calibration_inputs, child_result, compare_outputs, keras_reference,
                                         output_position, run_observed)

SETTINGS: dict[str, Any] = {"keras": "keras", "model": "model.keras", "inputs": ["input"], "quantize": "none",
            "select_tf_ops": False, "route": "export", "atol": 1e-4, "rtol": 1e-3}


def convert(model, calibration, tf, work):
    """The .tflite bytes, converted as SETTINGS say (int8: calibrated on ``calibration``, one row at a
    time; the converter raises its own error)."""
    if SETTINGS["route"] == "saved_model":  # the model is the SavedModel's directory
        converter = tf.lite.TFLiteConverter.from_saved_model(model, signature_keys=["serving_default"])
    elif SETTINGS["route"] == "export":
        saved = os.path.join(work, "saved_model")
        model.export(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    quantize = SETTINGS["quantize"]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        def representative():
            for row in range(len(calibration[0])):
                yield [x[row:row + 1] for x in calibration]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if SETTINGS["select_tf_ops"]:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


def interpret(work, inputs):
    """The interpreter's outputs on ``inputs`` (``work/model.tflite``), in the model's output order,
    from a child process that imports LiteRT and numpy only, as an app runs it: with TensorFlow in
    the same process, LiteRT would find TensorFlow's own kernels (the Flex delegate) and run ops no
    app's LiteRT runs.  Raises RuntimeError with the interpreter's own text when it refuses."""
    import subprocess

    import numpy as np

    for i, value in enumerate(inputs):
        np.save(os.path.join(work, f"in_{i}.npy"), value)
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--interpret", work, str(len(inputs))],
                          capture_output=True, text=True)
    result = child_result(done, "INTERPRETER-RESULT", "the interpreter process")
    return [np.load(os.path.join(work, f"out_{i}.npy")) for i in range(result["outputs"])]


def run_interpreter(work, count):
    """In the child process: LiteRT alone runs ``work/model.tflite`` on ``work/in_*.npy``."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    inputs = [np.load(os.path.join(work, f"in_{i}.npy")) for i in range(count)]
    try:
        interpreter = Interpreter(model_path=os.path.join(work, "model.tflite"))
        if SETTINGS["route"] == "saved_model":
            outputs = _run_signature(interpreter, inputs, work)
            print("INTERPRETER-RESULT " + json.dumps({"outputs": outputs}))
            return
        details = interpreter.get_input_details()
        by_name = {d["name"]: d for d in details}
        ordered = [by_name[n] for n in sorted(by_name, key=lambda n: _position(n, SETTINGS["inputs"]))]
        for detail, value in zip(ordered, inputs):
            if list(detail["shape"]) != list(value.shape):
                interpreter.resize_tensor_input(detail["index"], list(value.shape))
        interpreter.allocate_tensors()
        for detail, value in zip(ordered, inputs):
            interpreter.set_tensor(detail["index"], _quantised(value, detail, np))
        interpreter.invoke()
        outputs = sorted(interpreter.get_output_details(), key=lambda d: output_position(d["name"]))
        for i, detail in enumerate(outputs):
            raw = interpreter.get_tensor(detail["index"])
            scale, zero = detail["quantization"]
            np.save(os.path.join(work, f"out_{i}.npy"),
                    (raw.astype("float64") - zero) * scale if scale else raw.astype("float64"))
    except Exception as exc:  # the interpreter's own text, handed to the parent
        print("INTERPRETER-RESULT " + json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return
    print("INTERPRETER-RESULT " + json.dumps({"outputs": len(outputs)}))


def _quantised(value, detail, np):
    """``value`` in the dtype of the interpreter's input ``detail`` (scaled to its int8 quantisation)."""
    scale, zero = detail["quantization"]
    if scale and np.issubdtype(detail["dtype"], np.integer) and not np.issubdtype(value.dtype, np.integer):
        info = np.iinfo(detail["dtype"])
        value = np.clip(np.round(value / scale + zero), info.min, info.max)
    return np.asarray(value).astype(detail["dtype"])


def _run_signature(interpreter, inputs, work):
    """A SavedModel's .tflite through its serving_default signature, inputs and outputs by name
    (outputs saved in the order of their names, as the reference's); the number of outputs."""
    import numpy as np

    runner = interpreter.get_signature_runner("serving_default")
    details = runner.get_input_details()
    got = runner(**{name: _quantised(value, details[name], np) for name, value in zip(SETTINGS["inputs"], inputs)})
    out_details = runner.get_output_details()
    for i, name in enumerate(sorted(got)):
        scale, zero = out_details[name]["quantization"]
        raw = np.asarray(got[name])
        np.save(os.path.join(work, f"out_{i}.npy"), (raw.astype("float64") - zero) * scale if scale
                else raw.astype("float64"))
    return len(got)


def _position(tensor_name, names):
    """Where an interpreter input belongs among the Keras inputs (its name holds the Keras name)."""
    for i, name in enumerate(names):
        if tensor_name.split(":")[0].endswith(name):
            return i
    return len(names)


def observe(here):
    """What the runtime does with the model in ``here``: a dict with ``kind`` (converter, runtime,
    divergence or none) and the runtime's own text or the figures."""
    model, inputs, want = keras_reference(here, SETTINGS)
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="reproduce-") as work:
        try:
            tflite = convert(model, calibration_inputs(here, SETTINGS, inputs), tf, work)
        except Exception as exc:  # the converter's own error is the finding
            return {"kind": "converter", "error": type(exc).__name__, "text": str(exc)}
        with open(os.path.join(work, "model.tflite"), "wb") as f:
            f.write(tflite)
        try:
            got = interpret(work, inputs)
        except RuntimeError as exc:  # the interpreter's own error is the finding
            return {"kind": "runtime", "error": "RuntimeError", "text": str(exc)}
    return compare_outputs(got, want, SETTINGS["atol"], SETTINGS["rtol"])


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--interpret":
        run_interpreter(sys.argv[2], int(sys.argv[3]))
        return 0
    return run_observed(observe, __file__, "LiteRT")


if __name__ == "__main__":
    sys.exit(main())
