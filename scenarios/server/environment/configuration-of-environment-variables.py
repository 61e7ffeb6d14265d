"""MODEL_NAME does not match the directory mounted under /models: the model is never found."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.models import ModelSpec
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import probe_diff, serve_spec

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    # The export is mounted at /models/model (the image's default MODEL_NAME), but the container is
    # started with -e MODEL_NAME=classifier: the entrypoint serves /models/classifier.
    run.target.require_container("the serving image's entrypoint, which reads MODEL_NAME")
    server = serve_spec(run, SPEC, env={"MODEL_NAME": "classifier"}, wait="started")
    server.raise_from_log(r"Could not find base path")


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    # Mount at /models/classifier and set MODEL_NAME=classifier: the name is also the REST path.
    server = serve_spec(run, SPEC, name="classifier", env={"MODEL_NAME": "classifier"})
    return {"max_abs_diff": probe_diff(server, run.cache, SPEC, model="classifier")}


SCENARIO = Scenario(
    title="MODEL_NAME names a model directory that is not mounted",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Could not find base path /models/classifier for servable classifier", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="The serving image's entrypoint builds `--model_name=${MODEL_NAME} "
          "--model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}` (MODEL_BASE_PATH defaults to /models). "
          "When MODEL_NAME differs from the directory the model was mounted at, the server polls a "
          "path that does not exist, logs 'Could not find base path ... for servable ...' on every "
          "poll and, waiting for its first model, never opens its ports.",
    fix="Keep the three names in step: mount the export at /models/<name>, start the container with "
        "`-e MODEL_NAME=<name>`, and query /v1/models/<name>. (Or set MODEL_BASE_PATH to the parent "
        "of the mounted directory.)",
    references=("https://www.tensorflow.org/tfx/serving/docker#running_a_serving_image",
                "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/tools/docker/tf_serving_entrypoint.sh"),
)
