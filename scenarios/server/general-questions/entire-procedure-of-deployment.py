"""Golden path on the server: train -> export a SavedModel -> serve it -> REST :predict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import model_base_path

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    # The SavedModel is mounted as the base path itself, without a numbered version directory.
    import shutil

    base = run.workdir / "model"
    shutil.copytree(saved_model(run.cache, SPEC), base)
    server = run.enter(run.target.serve(model_dir=base, wait="started"))
    server.raise_from_log(r"No versions of servable \S+ found under base path")


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    base = model_base_path(run.workdir, {1: saved_model(run.cache, SPEC)})
    server = run.enter(run.target.serve(model_dir=base))
    run.note("implementation", server.implementation)
    x, expected = trained_model(run.cache, SPEC).probe()
    got = server.predict({"instances": x.tolist()})["predictions"]
    return {"max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Train, export, serve and query a model over TF Serving's REST API",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"No versions of servable model found under base path .*Did you forget to name your leaf directory as a number", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="TF Serving looks for numbered version directories under the model base path "
          "(/models/model/1/saved_model.pb). A SavedModel placed directly at the base path is never "
          "loaded: the server logs that it found no versions and, waiting for its initial load, "
          "never opens its ports.",
    fix="Export into <base>/<version>/ (e.g. `model.export('models/model/1')`), mount <base> at "
        "/models/<MODEL_NAME>, wait for the version to be AVAILABLE, then POST :predict.",
    references=("https://www.tensorflow.org/tfx/serving/docker",
                "https://www.tensorflow.org/tfx/serving/api_rest"),
)
