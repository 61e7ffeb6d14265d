"""Golden path in the browser: train -> convert to tf.js layers format -> serve -> predict in Chromium."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff, tolerance_for
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.backends import TABLE
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.page import PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")


def faulty(run: Run[TfjsTarget]) -> None:
    # Serving the Keras HDF5 file itself: tf.js only reads its own JSON format.
    trained = trained_model(run.cache, SPEC)
    page = run.enter(run.target.page({"/model/": trained.dir}, observe=run.observe))
    page.evaluate(PREDICT_LAYERS_JS, {"url": "/model/model.h5", "x": trained.probe()[0].tolist()})


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    converted = run_converter(run.cache, ["--input_format=keras"], trained.model_file)  # model.h5 -> model.json + shards
    x, expected = trained.probe()
    figures: dict[str, float] = {}
    for backend in TABLE:  # the same files on every tf.js backend (WebGPU in a browser of its own)
        page = run.enter(run.target.page({"/model/": converted}, backend=backend.name, observe=run.observe))
        got = page.evaluate(PREDICT_LAYERS_JS, {"url": "/model/model.json", "x": x.tolist()})
        run.note(f"{backend.name}_backend_in_use", page.evaluate("() => tf.getBackend()"))
        figures[f"{backend.name}_max_abs_diff"] = max_abs_diff(got, expected)
    return figures


SCENARIO = Scenario(
    title="Train, convert and predict with TensorFlow.js in Chromium",
    targets=("tfjs",),
    figures={"cpu_max_abs_diff": "parity", "wasm_max_abs_diff": "parity", "webgl_max_abs_diff": "parity",
             "webgpu_max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Failed to parse model JSON", runtime="tfjs"),
    # each backend within the tolerance of its numeric path (float32: 1e-4; WebGL's float16 textures: 1e-2)
    remedy=succeeds(*(Figure(f"{b.name}_max_abs_diff", "<=", tolerance_for(b.tolerance).atol) for b in TABLE)),
    cause="tf.loadLayersModel fetches a model.json topology plus binary weight shards; a Keras "
          "HDF5 file is not JSON, so parsing the response fails in the page.",
    fix="Convert the model with `tensorflowjs_converter --input_format=keras model.h5 out/`, serve "
        "`out/` over HTTP and load `out/model.json`; the same files run on every tf.js backend, each "
        "within the precision of its numeric path.",
    references=("https://www.tensorflow.org/js/tutorials/conversion/import_keras",),
)
