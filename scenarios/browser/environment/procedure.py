"""Setting up a page for the WebAssembly backend: the scripts, the .wasm binaries and setWasmPaths."""

from __future__ import annotations

from typing import Any

from harness.models import ModelSpec, trained_model
from harness.scenario import AllOf, Figure, Run, Scenario, succeeds
from harness.targets.tfjs.target import NODE_TFJS, convert_layers_model

SPEC = ModelSpec("dense", "tf_keras")
WASM_DIST = NODE_TFJS / "tfjs-backend-wasm" / "dist"
# The site's own vendor folder: the two bundles were copied there, the .wasm binaries were not.
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/js/tf.min.js"></script>
<script src="/js/tf-backend-wasm.min.js"></script>
</head><body></body></html>"""
APP_JS = """async ({wasmPath, x}) => {
  if (wasmPath) tf.wasm.setWasmPaths(wasmPath);
  const ok = await tf.setBackend('wasm');
  await tf.ready();
  const m = await tf.loadLayersModel('/model/model.json');
  return {setBackend: ok, backend: tf.getBackend(), out: await m.predict(tf.tensor(x)).array()};
}"""


def _run_app(run: Run, wasm_path: str | None) -> tuple[dict[str, Any], Any, Any]:
    trained = trained_model(run.cache, SPEC)
    files = {"/js/tf.min.js": (NODE_TFJS / "tfjs" / "dist" / "tf.min.js").read_bytes(),
             "/js/tf-backend-wasm.min.js": (WASM_DIST / "tf-backend-wasm.min.js").read_bytes()}
    mounts = {"/model/": convert_layers_model(run.cache, trained)}
    if wasm_path:
        mounts[wasm_path] = WASM_DIST  # the binaries deployed next to the site's assets
    page = run.enter(run.target.page(mounts, html=PAGE, files=files, backend=None, observe=run.observe))
    x, expected = trained.probe()
    result = page.evaluate(APP_JS, {"wasmPath": wasm_path, "x": x.tolist()})
    run.note("backend_in_use", result["backend"])
    run.note("wasm_requests", [f"{r.path} {r.status}" for r in page.server.requests if r.path.endswith(".wasm")])
    return result, expected, page


def faulty(run: Run) -> dict[str, float]:
    result, _, page = _run_app(run, None)
    return {"set_backend_returned_true": float(result["setBackend"]),
            "wasm_in_use": float(result["backend"] == "wasm"),
            "init_failed_in_console": float(any("Initialization of backend wasm failed" in c for c in page.console))}


def fixed(run: Run) -> dict[str, float]:
    import numpy as np

    result, expected, page = _run_app(run, "/js/wasm/")
    return {"set_backend_returned_true": float(result["setBackend"]),
            "wasm_in_use": float(result["backend"] == "wasm"),
            "wasm_binaries_served": float(sum(1 for r in page.server.served("/js/wasm/") if r.status == 200)),
            "max_abs_diff": float(np.max(np.abs(np.asarray(result["out"]) - expected)))}


SCENARIO = Scenario(
    title="WASM backend set up without its .wasm binaries silently falls back to another backend",
    targets=("tfjs",),
    faulty=faulty,
    fixed=fixed,
    symptom=AllOf((Figure("set_backend_returned_true", "<=", 0), Figure("wasm_in_use", "<=", 0),
                   Figure("init_failed_in_console", ">=", 1))),
    remedy=succeeds(Figure("set_backend_returned_true", ">=", 1), Figure("wasm_in_use", ">=", 1),
                    Figure("wasm_binaries_served", ">=", 1), Figure("max_abs_diff", "<=", 1e-4)),
    cause="The tf.js WebAssembly backend is two parts: the JS bundle and the "
          "tfjs-backend-wasm*.wasm binaries it downloads at start-up, by default from the folder "
          "the bundle was loaded from. Copying only the JS into the site's vendor folder makes "
          "that download 404; tf.setBackend('wasm') then resolves to false, the console says "
          "'Initialization of backend wasm failed', and tf.ready() moves on to the next "
          "registered backend (WebGL here). Nothing throws: the app runs on another backend than "
          "the one it was set up and measured for.",
    fix="Deploy the .wasm files with the bundle (or tell tf.js where they are with "
        "`tf.wasm.setWasmPaths('/path/to/wasm/')` before setBackend), check the value returned "
        "by `await tf.setBackend('wasm')` and `tf.getBackend()` after `tf.ready()`, and serve "
        ".wasm with the application/wasm MIME type.",
    references=("https://github.com/tensorflow/tfjs/blob/master/tfjs-backend-wasm/README.md",
                "https://js.tensorflow.org/api/latest/#setBackend",
                "https://www.tensorflow.org/js/guide/platform_environment"),
)
