"""Model weights shipped to the browser can be copied and run elsewhere, whatever the page does to hide them.

A fair pair: both variants serve a page that gives the user the model's predictions. The faulty
deployment "protects" the model the way many sites try to (an unguessable path, and a server
that refuses model requests without the page's Referer), but the weights still travel to every
visitor. The fixed deployment keeps the weights on the server and the page only calls a
prediction API. In both, an attacker works outside the browser with Python: replays the requests
the page made (as copied from the network panel), looks for weights, and rebuilds the model.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping
from urllib.error import HTTPError
from urllib.parse import urljoin
from urllib.request import Request, urlopen

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import AllOf, Figure, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.kit import decode_weights
from harness.targets.tfjs.page import PREDICT_LAYERS_JS, RequestSeen

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")
HIDDEN = "/assets/a7f3c91e/"  # "nobody will guess this path"
REPLAYED = ("referer", "user-agent", "accept")
API_JS = """async ({x}) => {
  const r = await fetch('/api/predict', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                         body: JSON.stringify({instances: x})});
  return (await r.json()).predictions;
}"""


def _http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urlopen(Request(url, headers=dict(headers or {})), timeout=10) as resp:
            return resp.status, resp.read()
    except HTTPError as err:
        return err.code, err.read()


def _replay(seen: list[RequestSeen]) -> dict[str, tuple[int, bytes]]:
    """GET every URL the page fetched again from Python, with the headers the browser sent."""
    bodies = {}
    for req in seen:
        if req.method == "GET" and req.url.startswith("http"):
            bodies[req.url] = _http_get(req.url, {k: v for k, v in req.headers.items() if k.lower() in REPLAYED})
    return bodies


def _dense_forward(model_json: Mapping[str, Any], weights: Mapping[str, Any], x: Any) -> Any:
    """The stolen model run with numpy: the Dense stack described by model.json's Keras topology."""
    import numpy as np

    out = np.asarray(x, dtype="float32")
    for layer in model_json["modelTopology"]["model_config"]["config"]["layers"]:
        if layer["class_name"] != "Dense":
            continue
        cfg = layer["config"]
        out = out @ weights[f"{cfg['name']}/kernel"] + weights[f"{cfg['name']}/bias"]
        if cfg["activation"] == "relu":
            out = np.maximum(out, 0.0)
        elif cfg["activation"] == "softmax":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
    return out


def _as_model_json(body: bytes) -> dict[str, Any] | None:
    try:
        found = json.loads(body)
    except ValueError:
        return None
    return found if isinstance(found, dict) and "weightsManifest" in found else None


def _steal(bodies: Mapping[str, tuple[int, bytes]], headers: Mapping[str, str]) -> tuple[Any, Any] | None:
    """Find a tf.js model.json among the replayed responses and download its shards."""
    for url, (status, body) in bodies.items():
        model_json = _as_model_json(body) if status == 200 else None
        if model_json is not None:
            shards = {p: _http_get(urljoin(url, p), headers)[1]
                      for group in model_json["weightsManifest"] for p in group["paths"]}
            return model_json, decode_weights(model_json, shards)
    return None


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    x = trained.probe()[0]
    referer_only = lambda path, headers: (403 if path.startswith(HIDDEN) and "Referer" not in headers else None)  # noqa: E731
    # The model sits under an unguessable path, with "hotlink protection" (Referer required).
    page = run.enter(run.target.page({HIDDEN: convert_layers_model(run.cache, trained)}, observe=run.observe,
                                     guard=referer_only))
    in_page = page.evaluate(PREDICT_LAYERS_JS, {"url": HIDDEN + "model.json", "x": x.tolist()})
    naive_status, _ = _http_get(page.url + HIDDEN + "model.json")  # the protection does stop a plain download
    bodies = _replay(page.requests_seen)
    model_json_req = next(r for r in page.requests_seen if r.url.endswith("model.json"))
    stolen = _steal(bodies, {k: v for k, v in model_json_req.headers.items() if k.lower() in REPLAYED})
    if stolen is None:
        return {"naive_fetch_status": float(naive_status), "weight_bytes_stolen": 0.0}
    model_json, weights = stolen
    run.note("stolen_tensors", {name: list(w.shape) for name, w in weights.items()})
    outside = _dense_forward(model_json, weights, x)
    return {"naive_fetch_status": float(naive_status),
            "weight_bytes_stolen": float(sum(w.nbytes for w in weights.values())),
            "stolen_max_abs_diff": max_abs_diff(outside, in_page)}


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    import numpy as np

    from harness.targets.litert.target import LitertTarget, convert_to_tflite

    x, expected = trained_model(run.cache, SPEC).probe()
    # The model stays on the server, run there by a real runtime (LiteRT, in its own process).
    server_model = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    litert = run.enter(LitertTarget())

    def predict(body: bytes, _headers: Mapping[str, str]) -> tuple[int, bytes, str]:
        inputs = np.asarray(json.loads(body)["instances"], dtype="float32")
        outputs = litert.predict(server_model, [inputs], batch=True)[0]
        return 200, json.dumps({"predictions": outputs.tolist()}).encode(), "application/json"

    page = run.enter(run.target.page(observe=run.observe, routes={"/api/predict": predict}))
    in_page = page.evaluate(API_JS, {"x": x.tolist()})
    bodies = _replay(page.requests_seen)
    # Also try where models usually are; an attacker would.
    for guess in ("/model.json", "/model/model.json", "/models/model.json", HIDDEN + "model.json"):
        bodies[page.url + guess] = _http_get(page.url + guess)
    kernels = [w.tobytes() for w in decode_weights(*_served_model(run)).values() if w.nbytes >= 32]
    found = sum(1 for k in kernels for _, body in bodies.values() if k in body)
    run.note("urls_tried", sorted(bodies))
    return {"api_max_abs_diff": max_abs_diff(in_page, expected),
            "weight_tensors_reachable": float(found),
            "model_json_reachable": float(sum(1 for _, body in bodies.values() if _as_model_json(body)))}


def _served_model(run: Run[TfjsTarget]) -> tuple[Any, dict[str, bytes]]:
    """The tf.js files of the model (what a leak would expose), to search the responses for."""
    converted = convert_layers_model(run.cache, trained_model(run.cache, SPEC))
    model_json = json.loads((converted / "model.json").read_text())
    return model_json, {p: (converted / p).read_bytes() for g in model_json["weightsManifest"] for p in g["paths"]}


SCENARIO = Scenario(
    title="Model weights in the page can be copied and run outside the browser",
    targets=("tfjs",),
    figures={"api_max_abs_diff": "parity", "model_json_reachable": "exact", "naive_fetch_status": "exact",
             "stolen_max_abs_diff": "parity", "weight_bytes_stolen": "size", "weight_tensors_reachable": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=AllOf((Figure("naive_fetch_status", ">=", 400), Figure("weight_bytes_stolen", ">", 0),
                   Figure("stolen_max_abs_diff", "<=", 1e-5))),
    remedy=succeeds(Figure("api_max_abs_diff", "<=", 1e-4), Figure("weight_tensors_reachable", "<=", 0),
                    Figure("model_json_reachable", "<=", 0)),
    cause="To predict in the browser, tf.js must download model.json and every weight shard to "
          "the visitor's machine. Hiding the path or refusing requests without the page's Referer "
          "only stops a careless download: the browser's network panel lists the URLs, and "
          "replaying them with the same headers from Python returns the files. The weights decode "
          "with numpy from the public weightsManifest and reproduce the page's predictions "
          "exactly, outside the browser. Obfuscation or encryption in JS does not help either, "
          "since the page must hold the key to run the model.",
    fix="If the model itself must stay secret, do not ship it: keep it on the server and expose "
        "only a prediction API (here the page posts inputs to /api/predict, the server runs the "
        "model with LiteRT, and no weight byte is reachable from the page's origin). This costs "
        "a round trip, server compute and offline use, and the API can still be queried to "
        "approximate the model (model extraction), so add authentication and rate limits. If "
        "the model must run on the device, treat it as public.",
    references=("https://www.tensorflow.org/js/guide/save_load",
                "https://github.com/tensorflow/tfjs/issues/1452",
                "https://github.com/tensorflow/tfjs/issues/1461",
                "https://www.usenix.org/conference/usenixsecurity16/technical-sessions/presentation/tramer"),
)
