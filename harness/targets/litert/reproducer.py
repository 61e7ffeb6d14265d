"""What ``pitfalls reduce`` reproduces on LiteRT (:class:`harness.reduce.api.Reproducer`).

The script (``reproducer_script.py``, copied with its ``SETTINGS``) converts with TensorFlow's
``TFLiteConverter`` as ``check`` does on the same path, runs the ``.tflite`` with the
ai-edge-litert interpreter in a child process without TensorFlow (as an app does: with TensorFlow
imported, LiteRT would borrow its Flex kernels), and compares with the Keras model at the path's
tolerance (:data:`harness.compare.TOLERANCES`).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.compare import tolerance_for
from harness.reduce.api import Reproducer, ScriptSpec, error_keyed, filled_script

NAME = "litert"
SCRIPT_TEMPLATE = Path(__file__).with_name("reproducer_script.py")

#: path -> (quantize, select_tf_ops, tolerance path, what the script does)
PATHS: dict[str, tuple[str, bool, str, str]] = {
    "float32": ("none", False, "float32",
                "TFLiteConverter with builtin ops only, then the LiteRT interpreter, compared with Keras at "
                "float32 tolerance (a converter error, an interpreter error or a divergence)"),
    "select_tf_ops": ("none", True, "float32",
                      "TFLiteConverter with Select TF ops (Flex), then the LiteRT interpreter of ai-edge-litert "
                      "(no Flex delegate), compared with Keras at float32 tolerance"),
    "float16": ("float16", False, "float16",
                "TFLiteConverter with float16 weights, then the LiteRT interpreter, compared with Keras at "
                "float16 tolerance"),
    "dynamic": ("dynamic", False, "int8",
                "TFLiteConverter with dynamic-range quantisation (int8 weights), then the LiteRT interpreter, "
                "compared with Keras at int8 tolerance"),
    "int8": ("int8", False, "int8",
             "TFLiteConverter with full-integer quantisation (int8 inputs and outputs, calibrated on the "
             "inputs beside the script), then the LiteRT interpreter, compared with Keras at int8 tolerance"),
}


def script(path: str, spec: ScriptSpec) -> str:
    """The standalone script for ``path``: the template with its ``SETTINGS`` line filled in."""
    quantize, select_tf_ops, tolerance_path, _ = PATHS[path]
    tolerance = tolerance_for(tolerance_path)
    settings = {"keras": spec.keras_module, "model": spec.model_file, "inputs": list(spec.input_names),
                "quantize": quantize, "select_tf_ops": select_tf_ops,
                "route": {"keras": "export", "saved_model": "saved_model"}.get(spec.keras_module, "keras_model"),
                "atol": tolerance.atol, "rtol": tolerance.rtol}
    return filled_script(SCRIPT_TEMPLATE, settings)


#: op names in a converter's or interpreter's text: ``tf.ResizeBicubic``, ``FlexResizeBicubic``
OP_NAME = re.compile(r"\btf\.([A-Z]\w+)|\bFlex([A-Z]\w+)")
#: the sentence that says what went wrong, among the lines a converter prints
KEY_SENTENCES = (
    re.compile(r"Some ops are not supported by the native TFLite runtime"),
    re.compile(r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported by this interpreter"),
    re.compile(r"Encountered unresolved custom op"),
    re.compile(r"Didn't find op for builtin opcode"),
    re.compile(r"failed to legalize operation '[\w.]+'"),
)


#: the same finding (:func:`harness.reduce.api.error_key` with LiteRT's sentences and op names), and one line
#: for a person
key, describe = error_keyed(KEY_SENTENCES, OP_NAME, "LiteRT")


REPRODUCER = Reproducer(target=NAME, paths={name: value[3] for name, value in PATHS.items()}, script=script, key=key,
                        describe=describe, packages=("tensorflow", "keras", "tf-keras", "ai-edge-litert", "numpy"),
                        calibrated=("int8",),
                        requirements="Python with tensorflow, keras (or tf-keras for a .h5 model), ai-edge-litert "
                                     "and numpy, at the versions below")
