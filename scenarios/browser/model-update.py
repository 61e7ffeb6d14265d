"""A new model deployed behind an unchanged URL, while the browser keeps the old one from its HTTP cache."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import AllOf, Figure, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.page import PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

# The update: the same architecture retrained for longer (same probe inputs, different weights).
OLD, NEW = ModelSpec("dense", "tf_keras", epochs=1), ModelSpec("dense", "tf_keras", epochs=5)
LONG_CACHE = {"Cache-Control": "public, max-age=86400"}

# The page asks a small, never-cached manifest which model version is current, then loads it.
LATEST_JS = """async ({x}) => {
  const latest = await (await fetch('/models/latest.json', {cache: 'no-cache'})).json();
  const m = await tf.loadLayersModel(latest.url);
  return {version: latest.version, out: await m.predict(tf.tensor(x)).array()};
}"""


def _outputs(run: Run[TfjsTarget]) -> tuple[Any, Any, Any]:
    x, old_out = trained_model(run.cache, OLD).probe()
    new_out = trained_model(run.cache, NEW).probe()[1]
    return x, old_out, new_out


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    x, old_out, new_out = _outputs(run)
    old_dir = convert_layers_model(run.cache, trained_model(run.cache, OLD))
    page = run.enter(run.target.page({"/model/": old_dir}, observe=run.observe,
                                     headers=lambda path: LONG_CACHE if path.startswith("/model/") else {}))
    page.evaluate(PREDICT_LAYERS_JS, {"url": "/model/model.json", "x": x.tolist()})
    # Deploy the new model at the same URL, then the user opens the page again.
    page.server.mount("/model/", convert_layers_model(run.cache, trained_model(run.cache, NEW)))
    mark = page.revisit()
    got = page.evaluate(PREDICT_LAYERS_JS, {"url": "/model/model.json", "x": x.tolist()})
    after = [r.path for r in page.server.requests[mark:] if r.path.startswith("/model/")]
    run.note("model_requests_after_update", after)
    return {"diff_to_new_model": max_abs_diff(got, new_out),
            "diff_to_old_model": max_abs_diff(got, old_out),
            "model_requests_after_update": float(len(after))}


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    import json

    x, old_out, new_out = _outputs(run)
    headers = lambda path: {"Cache-Control": "no-cache"} if path == "/models/latest.json" else LONG_CACHE  # noqa: E731
    page = run.enter(run.target.page(
        {"/models/v1/": convert_layers_model(run.cache, trained_model(run.cache, OLD))}, observe=run.observe,
        headers=headers, files={"/models/latest.json": json.dumps({"version": "v1", "url": "/models/v1/model.json"}).encode()}))
    first = page.evaluate(LATEST_JS, {"x": x.tolist()})
    # Deploy the new model under a new versioned URL and point the manifest at it.
    page.server.mount("/models/v2/", convert_layers_model(run.cache, trained_model(run.cache, NEW)))
    page.server.put_file("/models/latest.json", json.dumps({"version": "v2", "url": "/models/v2/model.json"}).encode())
    page.revisit()
    second = page.evaluate(LATEST_JS, {"x": x.tolist()})
    mark = page.revisit()  # a third visit: the versioned files still come from the cache
    page.evaluate(LATEST_JS, {"x": x.tolist()})
    third = [r.path for r in page.server.requests[mark:] if r.path.startswith("/models/v")]
    run.note("versions_seen", [first["version"], second["version"]])
    run.note("model_requests_on_third_visit", third)
    return {"first_diff_to_old_model": max_abs_diff(first["out"], old_out),
            "diff_to_new_model": max_abs_diff(second["out"], new_out),
            "model_requests_on_third_visit": float(len(third))}


SCENARIO = Scenario(
    title="Updated model not picked up: the browser serves the old one from its HTTP cache",
    targets=("tfjs",),
    figures={"diff_to_new_model": "parity", "diff_to_old_model": "parity", "first_diff_to_old_model": "parity",
             "model_requests_after_update": "events", "model_requests_on_third_visit": "events"},
    faulty=faulty,
    fixed=fixed,
    symptom=AllOf((Figure("model_requests_after_update", "<=", 0), Figure("diff_to_old_model", "<=", 1e-4),
                   Figure("diff_to_new_model", ">=", 0.01))),
    remedy=succeeds(Figure("first_diff_to_old_model", "<=", 1e-4), Figure("diff_to_new_model", "<=", 1e-4),
                    Figure("model_requests_on_third_visit", "<=", 0)),
    cause="The model files were served with `Cache-Control: max-age=86400`, so Chromium keeps "
          "model.json and the weight shards for a day and answers tf.loadLayersModel from its HTTP "
          "cache without asking the server. After the model is replaced at the same URL, returning "
          "users keep predicting with the old weights; nothing fails, the outputs are just stale "
          "(the same happens with a copy saved to indexeddb:// that is never refreshed).",
    fix="Give every model version its own URL (e.g. /models/v2/model.json, or a content hash in "
        "the path) and cache those files for long, while the small pointer to the current version "
        "is served with `Cache-Control: no-cache` (or fetched with `cache: 'no-cache'`). Then an "
        "update is seen on the next visit and unchanged models still load from the cache.",
    references=("https://developer.mozilla.org/en-US/docs/Web/HTTP/Caching",
                "https://developer.mozilla.org/en-US/docs/Web/HTTP/Headers/Cache-Control",
                "https://www.tensorflow.org/js/guide/save_load",
                "https://github.com/tensorflow/tfjs/issues/1514",
                "https://github.com/mlc-ai/web-llm/issues/308"),
)
