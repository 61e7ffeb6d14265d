"""The serving binary is not where the container command says: Docker cannot start it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.models import ModelSpec
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import probe_diff, serve_spec

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")
ENTRYPOINT = "/usr/bin/tf_serving_entrypoint.sh"  # in tensorflow/serving and in our image
SERVER_FLAGS = ("--port=8500", "--rest_api_port=8501", "--model_name=model", "--model_base_path=/models/model")


def faulty(run: "Run[TfservingTarget]") -> None:
    # `tensorflow-model-server` is the name of the Debian/apt package; the binary it installs is
    # `tensorflow_model_server`.  A container command with the package name cannot even start.
    run.target.require_container("starting a container with a custom command")
    serve_spec(run, SPEC, command=["tensorflow-model-server", *SERVER_FLAGS])


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    # The image's documented entrypoint runs tensorflow_model_server (the binary's real name) with
    # --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}.
    run.target.require_container("starting a container with a custom command")
    server = serve_spec(run, SPEC, command=[ENTRYPOINT])
    return {"max_abs_diff": probe_diff(server, run.cache, SPEC)}


SCENARIO = Scenario(
    title="Container command names the apt package (tensorflow-model-server), not the binary",
    targets=("tfserving",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r'exec: "tensorflow-model-server": executable file not found in \$PATH', runtime="docker"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="The serving runtime is a separate program, not part of `pip install tensorflow` or of the "
          "`tensorflow-serving-api` package (which holds only the request protos and gRPC stubs). "
          "It is installed by the `tensorflow/serving` image or by the apt package "
          "`tensorflow-model-server`, whose binary is called `tensorflow_model_server`. A container "
          "command with the package name (or any binary the image lacks) is refused by the container "
          "runtime before anything runs: Docker reports 'executable file not found in $PATH'.",
    fix="Use the documented image and its entrypoint (`/usr/bin/tf_serving_entrypoint.sh`, driven by "
        "MODEL_NAME/MODEL_BASE_PATH, extra flags appended), or call the binary by its real name "
        "`tensorflow_model_server`. The model then loads and answers with the Keras model's outputs.",
    references=("https://www.tensorflow.org/tfx/serving/setup",
                "https://www.tensorflow.org/tfx/serving/docker",
                "https://pypi.org/project/tensorflow-serving-api/"),
)
