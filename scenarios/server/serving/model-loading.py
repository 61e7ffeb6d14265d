"""Model loading: a base path pointing at the version directory is never loaded; load time grows with size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import load_seconds_from_log, model_base_path, probe_diff, serve_spec, wide_mlp_saved_model

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SMALL = ModelSpec("dense", "keras3")
WIDE, DEPTH = 4096, 4  # four hidden layers of 4096 units: about 50 M parameters (the export holds ~400 MB of variables)
CONFIG = """model_config_list {
  config { name: "small" base_path: "/models/small" model_platform: "tensorflow" }
  config { name: "large" base_path: "/models/large" model_platform: "tensorflow" }
}
"""


def faulty(run: "Run[TfservingTarget]") -> None:
    # --model_base_path pointing at the version directory (the SavedModel itself) instead of its parent.
    run.target.require_container("the image's /models mount layout")
    server = serve_spec(run, SMALL, args=["--model_base_path=/models/model/1"], wait="started")
    server.raise_from_log(r"No versions of servable model found under base path /models/model/1", timeout=90)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    large = wide_mlp_saved_model(run.cache, WIDE, DEPTH)
    bases = {"small": model_base_path(run.workdir, {1: saved_model(run.cache, SMALL)}, name="small"),
             "large": model_base_path(run.workdir, {1: large / "saved_model"}, name="large", hard_links=True)}
    config = run.workdir / "models.config"
    config.write_text(CONFIG)
    run.target.require_container("a model config file mounted into the server")
    server = run.enter(run.target.serve(models=bases, files={config: "/config/models.config"}, ready_model="large",
                                        args=["--model_config_file=/config/models.config"]))
    run.note("implementation", server.implementation)
    variables = sum(f.stat().st_size for f in (large / "saved_model" / "variables").iterdir())
    run.figure("large_variables_megabytes", variables / 1e6)
    log = server.logs()
    small_s, large_s = load_seconds_from_log(log, "small"), load_seconds_from_log(log, "large")
    with np.load(large / "probe.npz") as probe:
        got = server.predict({"instances": probe["x"].tolist()}, model="large")["predictions"]
        large_diff = max_abs_diff(got, probe["y"])
    return {"load_seconds_small": small_s, "load_seconds_large": large_s,
            "load_time_ratio": large_s / max(small_s, 1e-3),
            "max_abs_diff_large": large_diff, "max_abs_diff_small": probe_diff(server, run.cache, SMALL, model="small")}


SCENARIO = Scenario(
    title="Base path set to the version directory: never loaded; load time of a large model measured",
    targets=("tfserving",),
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"No versions of servable model found under base path /models/model/1\. "
                   r"Did you forget to name your leaf directory as a number", runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff_small", "<=", 1e-5), Figure("max_abs_diff_large", "<=", 1e-3),
                    Figure("load_time_ratio", ">", 2.0)),
    cause="The server loads a model from its base path by looking for numbered version "
          "subdirectories. Pointing --model_base_path at the SavedModel itself (.../model/1) leaves it "
          "looking for numbers among `saved_model.pb`, `variables`, `assets`: it logs 'No versions of "
          "servable ... found under base path' on every poll and the model never becomes AVAILABLE. "
          "Once the path is right, loading is not free: the SavedModel's graph is imported and every "
          "variable restored into memory before the version is published, so larger models take "
          "longer, and the server opens its ports only after the initial load.",
    fix="Point the base path at the directory that contains the version directories (/models/model, "
        "holding 1/, 2/ ...). Budget start-up and memory for the largest model: the load time of each "
        "version can be read from the server's own 'Loading servable version' and 'Successfully loaded "
        "servable version' log lines (here both models in one server, the large one measured against "
        "the small one); --enable_model_warmup with warm-up records also moves first-request latency "
        "into the load.",
    references=("https://www.tensorflow.org/tfx/serving/docker",
                "https://www.tensorflow.org/tfx/serving/saved_model_warmup",
                "https://github.com/tensorlayer/text-antispam/issues/7",
                "https://github.com/tensorflow/serving/issues/1419"),
)
