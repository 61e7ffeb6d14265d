"""A model hosted on another origin (a model server or bucket) without CORS headers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.loopback import LoopbackServer
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.page import PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")


def _predict_from(run: Run[TfjsTarget], model_server: LoopbackServer) -> Any:
    """Open the app's page on its own origin and predict the probe batch with the model on ``model_server``."""
    page = run.enter(run.target.page(observe=run.observe))
    run.note("page_origin", page.url)
    run.note("model_origin", model_server.url)
    try:
        return page.evaluate(PREDICT_LAYERS_JS, {"url": model_server.url + "/models/dense/model.json",
                                                "x": trained_model(run.cache, SPEC).probe()[0].tolist()})
    finally:
        run.note("model_requests", [f"{r.method} {r.path} {r.status}" for r in model_server.requests])


def faulty(run: Run[TfjsTarget]) -> None:
    # The model lives on a second loopback origin (another port = another origin for the browser),
    # a static file server with its default headers.
    converted = convert_layers_model(run.cache, trained_model(run.cache, SPEC))
    model_server = run.enter(run.target.serve({"/models/dense/": converted}))
    _predict_from(run, model_server)


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    # The same model server, configured to allow other origins to read its responses.
    converted = convert_layers_model(run.cache, trained_model(run.cache, SPEC))
    model_server = run.enter(run.target.serve({"/models/dense/": converted},
                                              headers={"Access-Control-Allow-Origin": "*"}))
    got = _predict_from(run, model_server)
    return {"max_abs_diff": max_abs_diff(got, trained_model(run.cache, SPEC).probe()[1])}


SCENARIO = Scenario(
    title="Loading a model from another origin without CORS headers",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity"},
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
