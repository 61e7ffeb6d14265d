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
from harness.reduce.api import Observation, Reproducer, ScriptSpec

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
                "route": "export" if spec.keras_module == "keras" else "keras_model",
                "atol": tolerance.atol, "rtol": tolerance.rtol}
    template = SCRIPT_TEMPLATE.read_text(encoding="utf-8")
    filled, count = re.subn(r"^SETTINGS: dict\[str, Any\] = \{.*?\}\n",
                              lambda _: f"SETTINGS: dict[str, Any] = {settings!r}\n", template,
                            count=1, flags=re.S | re.M)
    assert count == 1, "reproducer_script.py lost its SETTINGS line"
    return filled


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


def key(found: Observation) -> tuple[str, ...]:
    """The same finding: the same kind; for an error, the same key sentence and the same ops named
    (locations, tensor shapes and node numbers may differ); for a divergence, beyond the same
    tolerance (the script's, fixed per path)."""
    kind = str(found.get("kind"))
    if kind not in ("converter", "runtime"):
        return (kind,)
    text = str(found.get("text", ""))
    sentence = next((m.group(0) for pattern in KEY_SENTENCES if (m := pattern.search(text))), None)
    if sentence is None:
        first = next((line for line in text.splitlines() if line.strip()), "")
        sentence = re.sub(r"\d+", "N", re.sub(r"loc\(.*?\)", "", first)).strip()[:200]
    ops = sorted({a or b for a, b in OP_NAME.findall(text)})
    return (kind, str(found.get("error", "")), sentence, ",".join(ops))


def describe(found: Observation) -> str:
    """One line: the runtime's key sentence and ops, or the divergence's figures."""
    kind = found.get("kind")
    if kind in ("converter", "runtime"):
        _, error, sentence, ops = key(found)
        return f"{kind} error {error}: {sentence}" + (f" ({ops})" if ops else "")
    if kind == "divergence":
        if found.get("max_abs_diff") is None:
            return f"divergence: {found.get('text', 'output shapes differ')}"
        return f"divergence: max |LiteRT - Keras| {found['max_abs_diff']:.4g} > {found['bound']:.4g}"
    if kind == "none":
        return f"no finding: max |LiteRT - Keras| {found.get('max_abs_diff', 0.0):.4g} <= {found.get('bound', 0.0):.4g}"
    return f"{kind}: {str(found.get('text', ''))[:300]}"


REPRODUCER = Reproducer(target=NAME, paths={name: value[3] for name, value in PATHS.items()}, script=script, key=key,
                        describe=describe, packages=("tensorflow", "keras", "tf-keras", "ai-edge-litert", "numpy"),
                        requirements="Python with tensorflow, keras (or tf-keras for a .h5 model), ai-edge-litert "
                                     "and numpy, at the versions below")
