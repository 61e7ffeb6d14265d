"""A model hosted on another origin (a model server or bucket) without CORS headers."""

from __future__ import annotations

from typing import Mapping

from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.target import PREDICT_LAYERS_JS, convert_layers_model

SPEC = ModelSpec("dense", "tf_keras")
CORS_HEADERS = {"Access-Control-Allow-Origin": "*"}


def _predict_from_model_server(run: Run, headers: Mapping[str, str] | None) -> tuple[list[list[float]], object]:
    trained = trained_model(run.cache, SPEC)
    # The model lives on a second loopback origin (another port = another origin for the browser).
    model_server = run.enter(run.target.serve({"/models/dense/": convert_layers_model(run.cache, trained)},
                                              headers=headers))
    page = run.enter(run.target.page(observe=run.observe))
    run.note("page_origin", page.url)
    run.note("model_origin", model_server.url)
    got = page.evaluate(PREDICT_LAYERS_JS, {"url": model_server.url + "/models/dense/model.json",
                                            "x": trained.probe()[0].tolist()})
    run.note("model_requests", [f"{r.method} {r.path} {r.status}" for r in model_server.requests])
    return got, trained


def faulty(run: Run) -> None:
    _predict_from_model_server(run, headers=None)


def fixed(run: Run) -> dict[str, float]:
    import numpy as np

    got, trained = _predict_from_model_server(run, headers=CORS_HEADERS)
    expected = trained.probe()[1]  # type: ignore[attr-defined]
    return {"max_abs_diff": float(np.max(np.abs(np.asarray(got) - expected)))}


SCENARIO = Scenario(
    title="Loading a model from another origin without CORS headers",
    targets=("tfjs",),
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Failed to fetch.*has been blocked by CORS policy: No 'Access-Control-Allow-Origin' "
                   r"header is present on the requested resource", runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4)),
    cause="tf.loadLayersModel downloads model.json and the weight shards with fetch(). When they "
          "are on another origin (another host or port, e.g. a storage bucket or model server), "
          "the browser only hands the response to the page if the server allows that origin with "
          "an Access-Control-Allow-Origin header. Without it Chromium blocks the response and the "
          "page only sees 'TypeError: Failed to fetch'; the reason is printed to the console.",
    fix="Configure the model server to send `Access-Control-Allow-Origin` (the page's origin or *) "
        "for model.json and every shard, or serve the model from the page's own origin.",
    references=("https://developer.mozilla.org/en-US/docs/Web/HTTP/CORS",
                "https://github.com/tensorflow/tfjs/issues/1755",
                "https://github.com/tensorflow/tfjs/issues/2338",
                "https://www.tensorflow.org/js/guide/platform_environment"),
)
