"""Setting up a page for the WebAssembly backend: the scripts, the .wasm binaries and setWasmPaths."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping

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
# The site's own vendor folder holds the two bundles.
PAGE = """<!doctype html><html><head><meta charset="utf-8">
<script src="/js/tf.min.js"></script>
<script src="/js/tf-backend-wasm.min.js"></script>
</head><body></body></html>"""
# The app selects the wasm backend and lets the bundle find its binaries by itself.
APP_DEFAULT_PATHS_JS = """async ({x}) => {
  const ok = await tf.setBackend('wasm');
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


def _site(run: Run[TfjsTarget], deployed: Mapping[str, Path]) -> TfjsPage:
    """The site: PAGE with the two bundles copied to /js/, the model at /model/, plus the ``deployed`` mounts."""
    files = {"/js/tf.min.js": (NODE_TFJS / "tfjs" / "dist" / "tf.min.js").read_bytes(),
             "/js/tf-backend-wasm.min.js": (WASM_DIST / "tf-backend-wasm.min.js").read_bytes()}
    mounts = {"/model/": convert_layers_model(run.cache, trained_model(run.cache, SPEC)), **deployed}
    return run.enter(run.target.page(mounts, html=PAGE, files=files, backend=None, observe=run.observe))


def _note_backend(run: Run[TfjsTarget], page: TfjsPage, backend: str) -> None:
    run.note("backend_in_use", backend)
    run.note("wasm_requests", [f"{r.path} {r.status}" for r in page.server.requests if r.path.endswith(".wasm")])


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    page = _site(run, {})  # only the JS was copied: no .wasm binaries on the site
    result = page.evaluate(APP_DEFAULT_PATHS_JS, {"x": trained_model(run.cache, SPEC).probe()[0].tolist()})
    _note_backend(run, page, result["backend"])
    return {"set_backend_returned_true": float(result["setBackend"]),
            "wasm_in_use": float(result["backend"] == "wasm"),
            "init_failed_in_console": float(any("Initialization of backend wasm failed" in c for c in page.console))}


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    page = _site(run, {"/js/wasm/": WASM_DIST})  # the binaries deployed next to the site's assets
    x, expected = trained_model(run.cache, SPEC).probe()
    result = page.evaluate(APP_WASM_PATHS_JS, {"x": x.tolist()})
    _note_backend(run, page, result["backend"])
    return {"set_backend_returned_true": float(result["setBackend"]),
            "wasm_in_use": float(result["backend"] == "wasm"),
            "wasm_binaries_served": float(sum(1 for r in page.server.served("/js/wasm/") if r.status == 200)),
            "max_abs_diff": max_abs_diff(result["out"], expected)}


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
