"""A model referenced by a file:// path from a web page, versus the browser's own storage (IndexedDB)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.page import PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")
STORE_URL = "indexeddb://pitfalls-dense"

# First visit: download over HTTP once and keep a copy in the browser's storage.
SAVE_JS = """async ({url, store}) => {
  const m = await tf.loadLayersModel(url);
  const saved = await m.save(store);
  return saved.modelArtifactsInfo.weightDataBytes;
}"""


def faulty(run: Run[TfjsTarget]) -> None:
    # The page is served over http, but the model is referenced by its path on disk.
    trained = trained_model(run.cache, SPEC)
    converted = convert_layers_model(run.cache, trained)
    page = run.enter(run.target.page(observe=run.observe))
    page.evaluate(PREDICT_LAYERS_JS, {"url": (converted / "model.json").as_uri(), "x": trained.probe()[0].tolist()})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    page = run.enter(run.target.page({"/model/": convert_layers_model(run.cache, trained)}, observe=run.observe))
    run.note("saved_weight_bytes", page.evaluate(SAVE_JS, {"url": "/model/model.json", "store": STORE_URL}))
    run.note("models_in_storage", page.evaluate("() => tf.io.listModels()"))
    # Second visit in the same browser profile, with the model gone from the server.
    page.server.unmount("/model/")
    mark = page.revisit()
    x, expected = trained.probe()
    got = page.evaluate(PREDICT_LAYERS_JS, {"url": STORE_URL, "x": x.tolist()})
    second_visit = [r.path for r in page.server.requests[mark:] if r.path.startswith("/model/")]
    run.note("model_requests_on_second_visit", second_visit)
    return {"max_abs_diff": max_abs_diff(got, expected),
            "model_requests_on_second_visit": float(len(second_visit))}


SCENARIO = Scenario(
    title="Loading a model from a local file path in the browser",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity", "model_requests_on_second_visit": "events"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Failed to fetch.*Not allowed to load local resource: file://", runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4), Figure("model_requests_on_second_visit", "<=", 0)),
    cause="A web page cannot read the user's file system: tf.loadLayersModel falls back to fetch() "
          "for a URL it has no handler for, and Chromium refuses a file:// fetch from an http page "
          "('Not allowed to load local resource'), so fetch rejects with 'TypeError: Failed to fetch'. "
          "'Local storage' in the browser means the browser's own stores (IndexedDB, localStorage), "
          "not a path on disk.",
    fix="Serve model.json and its weight shards over HTTP (same origin, or with CORS), and to keep "
        "a copy on the device call `model.save('indexeddb://name')` once; later visits load "
        "`tf.loadLayersModel('indexeddb://name')` with no network at all (`localstorage://` works "
        "too for small models; localStorage holds only a few MB).",
    references=("https://www.tensorflow.org/js/guide/save_load",
                "https://js.tensorflow.org/api/latest/#io.listModels",
                "https://github.com/tensorflow/tfjs/issues/257"),
)
