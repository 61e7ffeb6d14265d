"""The app script runs before the tf.js script tag has loaded the library."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model

if TYPE_CHECKING:
    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")

# The application's own script: it uses the global `tf` as soon as it runs.
APP_JS = """const INPUT = %s;
window.prediction = (async () => {
  const model = await tf.loadLayersModel('/model/model.json');
  return model.predict(tf.tensor(INPUT)).array();
})();
"""
APP_FIRST = """<!doctype html><html><head><meta charset="utf-8">
<script src="/js/app.js"></script>
<script src="/lib/tfjs/tf.min.js"></script>
</head><body></body></html>"""
LIBRARY_FIRST = """<!doctype html><html><head><meta charset="utf-8">
<script src="/lib/tfjs/tf.min.js" defer></script>
<script src="/js/app.js" defer></script>
</head><body></body></html>"""


def _open(run: Run[TfjsTarget], html: str) -> tuple[TrainedModel, TfjsPage]:
    """The page ``html`` with the app script at /js/app.js (it predicts the probe batch into window.prediction)."""
    trained = trained_model(run.cache, SPEC)
    x = trained.probe()[0]
    app = (APP_JS % json.dumps(x.tolist())).encode()
    page = run.enter(run.target.page({"/model/": convert_layers_model(run.cache, trained)}, html=html,
                                     backend=None, observe=run.observe, files={"/js/app.js": app}))
    run.note("script_order", [r.path for r in page.server.requests if r.path.endswith(".js")])
    return trained, page


def faulty(run: Run[TfjsTarget]) -> None:
    _, page = _open(run, APP_FIRST)
    page.raise_page_errors()


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    trained, page = _open(run, LIBRARY_FIRST)
    page.raise_page_errors()
    got = page.evaluate("() => window.prediction")
    run.note("tfjs_version", page.evaluate("() => tf.version.tfjs"))
    return {"max_abs_diff": max_abs_diff(got, trained.probe()[1]),
            "page_errors": float(len(page.page_errors))}


SCENARIO = Scenario(
    title="tf used before its script tag loaded the library",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity", "page_errors": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"^ReferenceError: tf is not defined$", runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4), Figure("page_errors", "<=", 0)),
    cause="The script-tag build of tf.js defines the global `tf` only when tf.min.js has run. "
          "Classic <script> tags run in document order, so an application script placed above "
          "the library tag (or a library tag marked `async`, which runs whenever it arrives) "
          "uses `tf` before it exists: 'ReferenceError: tf is not defined'.",
    fix="Load the library before the code that uses it: put the tf.js tag first, and if you use "
        "`defer` put it on both tags (deferred scripts keep their order and run after parsing); "
        "with a bundler, `import * as tf from '@tensorflow/tfjs'` instead of the global.",
    references=("https://www.tensorflow.org/js/tutorials/setup",
                "https://developer.mozilla.org/en-US/docs/Web/HTML/Element/script#defer",
                "https://github.com/tensorflow/tfjs/issues/5142",
                "https://github.com/tensorflow/tfjs/issues/3997"),
)
