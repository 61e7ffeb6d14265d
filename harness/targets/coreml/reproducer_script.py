"""A standalone Core ML reproducer, written by ``pitfalls reduce`` beside a model (``model.keras``, a
tf_keras ``model.h5`` or a ``saved_model/`` directory) and ``inputs/`` (its inputs, one ``.npy``
each).

It converts the model with coremltools alone, as ``SETTINGS`` say and as ``pitfalls check``
converts on the same path (``as-given``: the file, or a tf_keras model's SavedModel, handed to
``ct.convert(source="tensorflow")``; ``concrete-function``: the Keras model traced into one
``tf.function`` and saved with ``tf.saved_model.save`` first), to an ML program for iOS 15.  A
conversion error is printed in coremltools' own words.  When the conversion works, the model is run
with ``MLModel.predict`` and compared with the Keras model: on macOS only; elsewhere coremltools
refuses to predict, and the script prints that refusal and exits 0 (nothing shown).
Needs Python with tensorflow, keras (or tf_keras), coremltools and numpy; nothing of pitfalls.
Exit 1 when the problem shows, 0 when it does not; the last line is ``REPRODUCER-RESULT {json}``.
"""

import os
import sys
import tempfile
from typing import Any

from harness.reduce.script_common import compare_outputs, keras_reference, output_position, run_observed

SETTINGS: dict[str, Any] = {"keras": "keras", "model": "model.keras", "inputs": ["input"], "route": "as-given",
            "convert_to": "mlprogram", "minimum_deployment_target": "iOS15", "atol": 1e-4, "rtol": 1e-3}


def saved_for_conversion(model, here, work):
    """What ``ct.convert`` is given: the file or directory itself (as given), the tf_keras model's
    SavedModel (coremltools loads an .h5 path with Keras 3), or one traced tf.function's SavedModel."""
    import tensorflow as tf

    if SETTINGS["keras"] == "saved_model":
        return model  # the SavedModel's directory
    out = os.path.join(work, "saved_model")
    if SETTINGS["route"] == "concrete-function":
        specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]

        @tf.function(input_signature=specs)
        def serve(*args):
            return model(list(args) if len(args) > 1 else args[0])

        module = tf.Module()
        module.model = model
        module.serve = serve
        tf.saved_model.save(module, out, signatures={"serving_default": serve})
        return out
    if SETTINGS["keras"] == "tf_keras":
        model.save(out, save_format="tf")
        return out
    return os.path.join(here, SETTINGS["model"])


def predict(mlmodel, inputs):
    """Core ML's outputs on ``inputs`` (inputs by the spec's names in order; outputs by name)."""
    import numpy as np

    names = [i.name for i in mlmodel.get_spec().description.input]
    got = mlmodel.predict(dict(zip(names, inputs)))
    return [np.asarray(got[name], dtype="float64") for name in sorted(got, key=output_position)]


def observe(here):
    """What coremltools does with the model in ``here``: ``converter`` (its own error), ``skipped``
    (converted; its refusal to predict off macOS), ``divergence`` or ``none``."""
    model, inputs, want = keras_reference(here, SETTINGS)
    import coremltools as ct

    with tempfile.TemporaryDirectory(prefix="reproduce-") as work:
        source = saved_for_conversion(model, here, work)
        try:
            mlmodel = ct.convert(source, source="tensorflow", convert_to=SETTINGS["convert_to"],
                                 minimum_deployment_target=getattr(ct.target, SETTINGS["minimum_deployment_target"]))
        except Exception as exc:  # coremltools' own error is the finding
            return {"kind": "converter", "error": type(exc).__name__, "text": str(exc)}
        try:
            got = predict(mlmodel, inputs)
        except Exception as exc:
            if sys.platform != "darwin":  # coremltools refuses to predict here: nothing can be compared
                return {"kind": "skipped", "error": type(exc).__name__, "text": str(exc)}
            return {"kind": "runtime", "error": type(exc).__name__, "text": str(exc)}
    return compare_outputs(got, want, SETTINGS["atol"], SETTINGS["rtol"])


def main():
    return run_observed(observe, __file__, "Core ML")


if __name__ == "__main__":
    sys.exit(main())
