"""tf.loadLayersModel returns a Promise: calling predict on it without await fails."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, TrainedModel, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model

if TYPE_CHECKING:
    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")

FAULTY_JS = """async ({url, x}) => {
  const m = tf.loadLayersModel(url);          // missing await: m is a Promise
  return m.predict(tf.tensor(x)).array();
}"""

FIXED_JS = """async ({url, x}) => {
  const m = await tf.loadLayersModel(url);    // wait for the model
  return m.predict(tf.tensor(x)).array();
}"""


def _page(run: Run[TfjsTarget]) -> tuple[TrainedModel, TfjsPage]:
    trained = trained_model(run.cache, SPEC)
    page = run.enter(run.target.page({"/model/": convert_layers_model(run.cache, trained)}, observe=run.observe))
    return trained, page


def faulty(run: Run[TfjsTarget]) -> None:
    trained, page = _page(run)
    page.evaluate(FAULTY_JS, {"url": "/model/model.json", "x": trained.probe()[0].tolist()})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    trained, page = _page(run)
    x, expected = trained.probe()
    got = page.evaluate(FIXED_JS, {"url": "/model/model.json", "x": x.tolist()})
    return {"max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="predict() called on the Promise returned by loadLayersModel",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"predict is not a function", runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4)),
    cause="Model loading in tf.js is asynchronous: loadLayersModel returns a Promise of a model. "
          "Without `await` the code calls predict on the Promise, which has no such method.",
    fix="`await` the load (or use `.then`) before calling predict.",
    references=("https://js.tensorflow.org/api/latest/#loadLayersModel",),
)
