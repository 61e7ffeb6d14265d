"""What ``pitfalls reduce`` reproduces on Core ML (:class:`harness.reduce.api.Reproducer`).

The script (``reproducer_script.py``, copied with its ``SETTINGS``) converts the model with
coremltools alone, as ``check`` converts on the same route (:data:`harness.targets.coreml.convert.ROUTES`,
to :data:`~harness.targets.coreml.convert.DEFAULT_CONVERSION`), and prints coremltools' own
error.  Conversion runs anywhere; a prediction (and so a divergence) only on macOS: elsewhere the
script prints coremltools' own refusal to predict and shows nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.compare import tolerance_for
from harness.reduce.api import Reproducer, ScriptSpec, error_keyed, filled_script
from harness.targets.coreml.convert import DEFAULT_CONVERSION

NAME = "coreml"
SCRIPT_TEMPLATE = Path(__file__).with_name("reproducer_script.py")

#: route -> what the script does (``check``'s bare ``coreml`` is the first: the model as given)
PATHS: dict[str, str] = {
    "as-given": ("ct.convert(source='tensorflow') of the model as check converts it as given (the .keras file or "
                 "SavedModel itself, a tf_keras model's SavedModel), to an ML program for iOS 15: coremltools' "
                 "conversion error; on macOS, MLModel.predict compared with Keras at float32 tolerance"),
    "concrete-function": ("the Keras model traced into one tf.function and saved with tf.saved_model.save, then "
                          "ct.convert as on as-given: coremltools' conversion error; on macOS, the prediction "
                          "compared with Keras"),
}

#: the sentences coremltools says what went wrong with
KEY_SENTENCES = (
    re.compile(r"Conversion for TF op '\w+' not implemented"),
    re.compile(r"Only a single concrete function is supported"),
    re.compile(r"is unsupported for inputs/outputs of the model"),
    re.compile(r"Input model path should be \.h5/\.hdf5 file or a directory"),
    re.compile(r"Model prediction is only supported on macOS"),
)
#: the TF op coremltools names
OP_NAME = re.compile(r"TF op '(\w+)'")


def script(path: str, spec: ScriptSpec) -> str:
    """The standalone script for ``path`` (a route): the template with its ``SETTINGS`` filled in."""
    tolerance = tolerance_for("float32")
    return filled_script(SCRIPT_TEMPLATE, {"keras": spec.keras_module, "model": spec.model_file,
                                           "inputs": list(spec.input_names), "route": path,
                                           **{k: str(v) for k, v in DEFAULT_CONVERSION.items()},
                                           "atol": tolerance.atol, "rtol": tolerance.rtol})


#: the same finding (:func:`harness.reduce.api.error_key` with coremltools' sentences and op names), and one line
#: for a person
key, describe = error_keyed(KEY_SENTENCES, OP_NAME, "Core ML")


REPRODUCER = Reproducer(target=NAME, paths=PATHS, script=script, key=key, describe=describe,
                        packages=("tensorflow", "keras", "tf-keras", "coremltools", "numpy"),
                        requirements="Python with tensorflow, keras (or tf-keras for a .h5 model), coremltools and "
                                     "numpy, at the versions below (a prediction needs macOS)")
