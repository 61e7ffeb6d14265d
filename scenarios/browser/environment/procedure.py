"""Setting up a page for a tf.js backend: the WebAssembly backend's .wasm binaries, the WebGPU backend's adapter."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import AllOf, Figure, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.target import NODE_TFJS

if TYPE_CHECKING:
    from harness.targets.tfjs.page import TfjsPage
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")
WASM_DIST = NODE_TFJS / "tfjs-backend-wasm" / "dist"
WEBGPU_DIST = NODE_TFJS / "tfjs-backend-webgpu" / "dist"
# The site's own vendor folder holds tf.js and the backend's bundle.
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/js/tf.min.js"></script>
<script src="/js/%s"></script>
</head><body></body></html>"""
# The app selects a backend and lets the bundle set itself up.
APP_DEFAULT_JS = """async ({x, backend}) => {
  const ok = await tf.setBackend(backend);
  await tf.ready();
  const m = await tf.loadLayersModel('/model/model.json');
  return {setBackend: ok, backend: tf.getBackend(), out: await m.predict(tf.tensor(x)).array()};
}"""
# The app says where the deployed .wasm binaries are before selecting the backend.
APP_WASM_PATHS_JS = """async ({x}) => {
  tf.wasm.setWasmPaths('/js/wasm/');
  const ok = await tf.setBackend('wasm');
  await tf.ready();
  const m = await tf.loadLayersModel('/model/model.json');
  return {setBackend: ok, backend: tf.getBackend(), out: await m.predict(tf.tensor(x)).array()};
}"""
# The app asks for a WebGPU adapter first and says which backend it runs on.
APP_WEBGPU_CHECKED_JS = """async ({x}) => {
  const adapter = navigator.gpu ? await navigator.gpu.requestAdapter() : null;
  const ok = adapter !== null && await tf.setBackend('webgpu');
  await tf.ready();
  const m = await tf.loadLayersModel('/model/model.json');
  return {setBackend: ok, adapter: adapter !== null, backend: tf.getBackend(),
          out: await m.predict(tf.tensor(x)).array()};
}"""


def _site(run: Run[TfjsTarget], bundle: Path, deployed: Mapping[str, Path], *,
          browser_of: str | None = None) -> TfjsPage:
    """The site: PAGE with tf.js and ``bundle`` copied to /js/, the model at /model/, plus the ``deployed``
    mounts; in the browser ``browser_of``'s pages run in (default: the shared one, without a GPU process)."""
    files = {"/js/tf.min.js": (NODE_TFJS / "tfjs" / "dist" / "tf.min.js").read_bytes(),
             f"/js/{bundle.name}": bundle.read_bytes()}
    mounts = {"/model/": convert_layers_model(run.cache, trained_model(run.cache, SPEC)), **deployed}
    return run.enter(run.target.page(mounts, html=PAGE % bundle.name, files=files, backend=None,
                                     browser_of=browser_of, observe=run.observe))


def _column(run: Run[TfjsTarget], page: TfjsPage, backend: str, result: dict[str, Any]) -> dict[str, float]:
    """The figures of one backend: did setBackend say yes, is it in use, did tf.js say its start-up failed."""
    run.note(f"{backend}_backend_in_use", result["backend"])
    prefix = "" if backend == "wasm" else f"{backend}_"  # the wasm figures keep their first names
    return {f"{prefix}set_backend_returned_true": float(result["setBackend"]),
            f"{backend}_in_use": float(result["backend"] == backend),
            f"{prefix}init_failed_in_console": float(any(f"Initialization of backend {backend} failed" in c
                                                         for c in page.console))}


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    x = trained_model(run.cache, SPEC).probe()[0].tolist()
    page = _site(run, WASM_DIST / "tf-backend-wasm.min.js", {})  # only the JS was copied: no .wasm binaries
    figures = _column(run, page, "wasm", page.evaluate(APP_DEFAULT_JS, {"x": x, "backend": "wasm"}))
    run.note("wasm_requests", [f"{r.path} {r.status}" for r in page.server.requests if r.path.endswith(".wasm")])
    # WebGPU picked in a browser that offers no adapter (no GPU process: Chromium's --disable-gpu)
    page = _site(run, WEBGPU_DIST / "tf-backend-webgpu.min.js", {})
    return {**figures, **_column(run, page, "webgpu", page.evaluate(APP_DEFAULT_JS, {"x": x, "backend": "webgpu"}))}


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    x, expected = trained_model(run.cache, SPEC).probe()
    page = _site(run, WASM_DIST / "tf-backend-wasm.min.js", {"/js/wasm/": WASM_DIST})  # the binaries deployed too
    result = page.evaluate(APP_WASM_PATHS_JS, {"x": x.tolist()})
    figures = {**_column(run, page, "wasm", result),
               "wasm_binaries_served": float(sum(1 for r in page.server.served("/js/wasm/") if r.status == 200)),
               "max_abs_diff": max_abs_diff(result["out"], expected)}
    run.note("wasm_requests", [f"{r.path} {r.status}" for r in page.server.requests if r.path.endswith(".wasm")])
    # the same app, checking for an adapter, in a browser that has one (WebGPU on SwiftShader)
    page = _site(run, WEBGPU_DIST / "tf-backend-webgpu.min.js", {}, browser_of="webgpu")
    result = page.evaluate(APP_WEBGPU_CHECKED_JS, {"x": x.tolist()})
    run.note("webgpu_browser_flags", list(page.browser))
    return {**figures, **_column(run, page, "webgpu", result), "webgpu_adapter": float(result["adapter"]),
            "webgpu_max_abs_diff": max_abs_diff(result["out"], expected)}


SCENARIO = Scenario(
    title="A tf.js backend set up without what it needs (WASM's .wasm binaries, WebGPU's adapter) silently "
          "falls back to another backend",
    targets=("tfjs",),
    figures={"init_failed_in_console": "events", "max_abs_diff": "parity", "set_backend_returned_true": "exact",
             "wasm_binaries_served": "exact", "wasm_in_use": "exact", "webgpu_adapter": "exact",
             "webgpu_in_use": "exact", "webgpu_init_failed_in_console": "events", "webgpu_max_abs_diff": "parity",
             "webgpu_set_backend_returned_true": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=AllOf((Figure("set_backend_returned_true", "<=", 0), Figure("wasm_in_use", "<=", 0),
                   Figure("init_failed_in_console", ">=", 1),
                   Figure("webgpu_set_backend_returned_true", "<=", 0), Figure("webgpu_in_use", "<=", 0),
                   Figure("webgpu_init_failed_in_console", ">=", 1))),
    remedy=succeeds(Figure("set_backend_returned_true", ">=", 1), Figure("wasm_in_use", ">=", 1),
                    Figure("wasm_binaries_served", ">=", 1), Figure("max_abs_diff", "<=", 1e-4),
                    Figure("webgpu_adapter", ">=", 1), Figure("webgpu_set_backend_returned_true", ">=", 1),
                    Figure("webgpu_in_use", ">=", 1), Figure("webgpu_max_abs_diff", "<=", 1e-4)),
    cause="The tf.js WebAssembly backend is two parts: the JS bundle and the "
          "tfjs-backend-wasm*.wasm binaries it downloads at start-up, by default from the folder "
          "the bundle was loaded from. Copying only the JS into the site's vendor folder makes "
          "that download 404; tf.setBackend('wasm') then resolves to false, the console says "
          "'Initialization of backend wasm failed', and tf.ready() moves on to the next "
          "registered backend (WebGL here). The WebGPU backend needs an adapter from the browser: "
          "where there is none (no GPU process, a blocklisted GPU, a browser without WebGPU) "
          "navigator.gpu.requestAdapter() gives null, the console says 'No available adapters.' and "
          "'Initialization of backend webgpu failed', and the same fallback happens. Nothing throws: "
          "the app runs on another backend than the one it was set up and measured for.",
    fix="Deploy the .wasm files with the bundle (or tell tf.js where they are with "
        "`tf.wasm.setWasmPaths('/path/to/wasm/')` before setBackend), check the value returned "
        "by `await tf.setBackend(...)` and `tf.getBackend()` after `tf.ready()`, and serve "
        ".wasm with the application/wasm MIME type. For WebGPU, ask "
        "`await navigator.gpu?.requestAdapter()` first and choose the fallback yourself when it is "
        "null; to test WebGPU in headless Chromium without a GPU, start it with "
        "`--enable-unsafe-webgpu --use-webgpu-adapter=swiftshader` (as tf.js's own CI does).",
    references=("https://github.com/tensorflow/tfjs/blob/master/tfjs-backend-wasm/README.md",
                "https://github.com/tensorflow/tfjs/blob/master/tfjs-backend-webgpu/README.md",
                "https://js.tensorflow.org/api/latest/#setBackend",
                "https://www.tensorflow.org/js/guide/platform_environment"),
)
