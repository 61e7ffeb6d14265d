"""TF Serving serves TensorFlow SavedModels only: a native Keras file in the version directory is not loadable."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import probe_diff, serve_spec

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    # The trained model as Keras saves it (model.keras, a zip of config + weights), dropped into the
    # version directory as if the server could read any model file.
    version = run.workdir / "model" / "1"
    version.mkdir(parents=True)
    shutil.copy2(trained_model(run.cache, SPEC).model_file, version / "model.keras")
    server = run.enter(run.target.serve(model_dir=version.parent, variant="no-load-retries"))
    run.note("implementation", server.implementation)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    # The same model exported to the format the server runs: a SavedModel (model.export(dir)).
    server = serve_spec(run, SPEC)
    return {"max_abs_diff": probe_diff(server, run.cache, SPEC)}


SCENARIO = Scenario(
    title="A .keras file is not a servable: TF Serving loads SavedModels only",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Specified file path does not appear to contain a SavedModel bundle \(should have a file called "
                   r"`saved_model\.pb`\)\nSpecified file path: \S*/model/1", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="TF Serving's only built-in platform is `tensorflow`, whose loader reads a SavedModel "
          "(saved_model.pb + variables/). It does not run Keras files (.keras, .h5), PyTorch, ONNX or "
          "scikit-learn models, and it executes no Python: the version directory must hold a graph "
          "TensorFlow can run on its own. Given a .keras file the load fails and the model never "
          "becomes AVAILABLE.",
    fix="Convert before deploying: load the Keras model and `model.export('<base>/<version>')` (Keras 3) "
        "or `tf.saved_model.save` a tf.Module with a serving signature; for other frameworks convert to "
        "a SavedModel or use a server that supports them (e.g. a multi-framework server).",
    references=("https://www.tensorflow.org/tfx/serving/serving_basic",
                "https://keras.io/api/models/model_saving_apis/export/",
                "https://www.tensorflow.org/tfx/serving/custom_servable"),
)
