"""TensorFlow.js in Debian's headless Chromium, driven by Playwright.

One browser per test process (activated lazily, closed at the end of the session), a fresh
browser context per page (no IndexedDB, localStorage or HTTP-cache state leaks between
scenarios), and loopback HTTP servers for the page, the model files and the tf.js bundles from
the npm lockfile.  Page errors, console messages and failed requests are recorded; an exception
thrown by page code comes back as a :class:`RuntimeFailure` with the browser's text.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import HarnessError, RuntimeFailure, SetupError, WaitTimeout
from harness.loopback import Guard, HeaderRule, LoopbackServer, Route
from harness.paths import REPO_ROOT
from harness.targets.base import Target

if TYPE_CHECKING:
    from harness.models import TrainedModel

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic")
NODE_TFJS = REPO_ROOT / "node_modules" / "@tensorflow"
PAGE_DIR = Path(__file__).resolve().parent / "page"
BACKENDS = ("cpu", "webgl", "wasm")
_TIMEOUT_MARK = "pitfalls-evaluate-timeout"


def lib_mounts() -> dict[str, Path]:
    """URL prefixes of the tf.js bundles installed from the npm lockfile."""
    return {"/lib/tfjs/": NODE_TFJS / "tfjs" / "dist",
            "/lib/tfjs-backend-wasm/": NODE_TFJS / "tfjs-backend-wasm" / "dist"}


def _tfjs_npm_version() -> str:
    pkg = NODE_TFJS / "tfjs" / "package.json"
    return str(json.loads(pkg.read_text())["version"]) if pkg.is_file() else "missing"


# ---------------------------------------------------------------------------- conversion

def _converter_failure(proc: subprocess.CompletedProcess[str], args: list[str]) -> RuntimeFailure:
    err = proc.stderr.strip()
    kinds = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception)):", err, flags=re.MULTILINE)
    start = err.rfind("\n" + kinds[-1] + ":") + 1 if kinds else max(0, len(err) - 3000)
    return RuntimeFailure("tensorflowjs converter", err[start:][-4000:] or f"exit code {proc.returncode}",
                          kind=kinds[-1].rsplit(".", 1)[-1] if kinds else "",
                          source=f"stderr of `tensorflowjs_converter {' '.join(args)}` (exit {proc.returncode})")


def run_converter(cache: ArtifactCache, args: list[str], source: Path, *, timeout: float = 300.0) -> Path:
    """Run the real ``tensorflowjs_converter`` CLI on ``source``; cached by arguments and versions.

    The output directory is the last argument the converter sees.  A failing conversion raises
    :class:`RuntimeFailure` with the converter's own error text and is not cached.
    """
    key = {"args": args, "source": str(source), "versions": library_versions("tensorflowjs", "tensorflow", "tf-keras")}

    def build(out: Path) -> None:
        exe = Path(sys.executable).with_name("tensorflowjs_converter")
        full = [*args, str(source), str(out / "model")]
        try:
            proc = subprocess.run([str(exe), *full], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"tensorflowjs_converter did not finish in {timeout}s", evidence=" ".join(full)) from None
        if proc.returncode != 0:
            raise _converter_failure(proc, args)

    return cache.get_or_build("tfjs", key, build) / "model"


def convert_layers_model(cache: ArtifactCache, trained: "TrainedModel", *extra: str) -> Path:
    """A tf_keras HDF5 model -> tf.js layers format (``model.json`` + weight shards)."""
    return run_converter(cache, ["--input_format=keras", *extra], trained.model_file)


def convert_graph_model(cache: ArtifactCache, saved_model_dir: Path, *extra: str) -> Path:
    """A SavedModel -> tf.js graph format."""
    return run_converter(cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model", *extra],
                         saved_model_dir)


# ---------------------------------------------------------------------------- the page

def _first_lines(message: str) -> str:
    """The error text without the JS stack frames Playwright appends."""
    lines = [ln for ln in message.splitlines() if not ln.lstrip().startswith("at ")]
    text = "\n".join(lines).strip()
    return text.removeprefix("Page.evaluate: ")


@dataclass(frozen=True)
class RequestSeen:
    """A request the page made, as the browser's network panel shows it."""

    url: str
    method: str
    resource_type: str
    headers: dict[str, str]


class TfjsPage:
    """A page in a fresh browser context, served from a loopback server.

    Everything the browser reports is kept as evidence: console messages, uncaught page errors,
    failed requests and every request the page made (URL and headers).
    """

    def __init__(self, page: Any, server: LoopbackServer, observe: Callable[[str], Any] | None) -> None:
        self.page = page
        self.server = server
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.requests_seen: list[RequestSeen] = []
        self._observe = observe or (lambda _text: None)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_pageerror)
        page.on("requestfailed", self._on_requestfailed)
        page.on("request", self._on_request)

    def _on_console(self, msg: Any) -> None:
        text = f"console.{msg.type}: {msg.text}"
        self.console.append(text)
        if msg.type in ("error", "warning"):
            self._observe(text)

    def _on_pageerror(self, error: Any) -> None:
        name = getattr(error, "name", "") or ""
        message = str(getattr(error, "message", "") or error)
        text = f"{name}: {message}" if name and not message.startswith(name) else message
        self.page_errors.append(text)
        self._observe(f"pageerror: {text}")

    def _on_requestfailed(self, request: Any) -> None:
        text = f"requestfailed: {request.url} {request.failure}"
        self.failed_requests.append(text)
        self._observe(text)

    def _on_request(self, request: Any) -> None:
        self.requests_seen.append(RequestSeen(request.url, request.method, request.resource_type,
                                              dict(request.headers)))

    def console_errors(self, since: int = 0) -> list[str]:
        return [line for line in self.console[since:] if line.startswith("console.error: ")]

    def raise_page_errors(self) -> None:
        """Raise the first uncaught page error (e.g. a ReferenceError of a page script) as a RuntimeFailure."""
        if self.page_errors:
            first = self.page_errors[0]
            kind = first.split(":", 1)[0] if re.match(r"^[A-Za-z]*Error:", first) else ""
            raise RuntimeFailure("tfjs/chromium", "\n".join(self.page_errors), kind=kind,
                                 source="uncaught error in a page script (pageerror event)")

    def throttle(self, *, download_bytes_per_s: float, latency_ms: float = 20.0) -> None:
        """Emulate a slower network with Chromium's own DevTools throttling (``Network.emulateNetworkConditions``)."""
        cdp = self.page.context.new_cdp_session(self.page)
        cdp.send("Network.enable")
        cdp.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": latency_ms, "downloadThroughput": download_bytes_per_s,
            "uploadThroughput": download_bytes_per_s})

    @property
    def url(self) -> str:
        return self.server.url

    def goto(self, path: str = "/index.html", *, timeout_s: float = 30.0) -> None:
        self.page.goto(self.server.url + path if path.startswith("/") else path,
                       timeout=timeout_s * 1000, wait_until="load")

    def revisit(self, backend: str | None = "cpu", path: str = "/index.html") -> int:
        """Open the page again in the same context (a returning user: storage and HTTP cache kept).

        Returns the index of the server's request log at that moment, to tell later requests apart.
        """
        mark = len(self.server.requests)
        self.goto(path)
        if backend is not None:
            self.use_backend(backend)
        return mark

    def evaluate(self, script: str, arg: Any = None, *, timeout_s: float = 60.0) -> Any:
        """Run an (async) JS function ``script`` with ``arg`` in the page and return its value.

        ``script`` is a function expression, e.g. ``"async (x) => tf.tensor(x).sum().array()"``.
        An exception thrown by page code raises :class:`RuntimeFailure` with the browser's text.
        """
        from playwright.sync_api import Error as PlaywrightError

        wrapped = (f"async (arg) => {{ const f = ({script}); let timer; "
                   f"const limit = new Promise((_, rej) => {{ timer = setTimeout(() => rej(new Error('{_TIMEOUT_MARK}')), {int(timeout_s * 1000)}); }}); "
                   f"try {{ return await Promise.race([Promise.resolve().then(() => f(arg)), limit]); }} finally {{ clearTimeout(timer); }} }}")
        console_mark = len(self.console)
        try:
            return self.page.evaluate(wrapped, arg)
        except PlaywrightError as exc:
            message = _first_lines(exc.message)
            if _TIMEOUT_MARK in message:
                what = " ".join(script.split())[:160]
                raise WaitTimeout(f"page script did not settle within {timeout_s}s: {what}",
                                  evidence="\n".join(self.console[-20:] + self.page_errors[-5:]
                                                     + self.failed_requests[-5:]),
                                  hint="an awaited promise never resolved; see the console lines") from None
            kind = message.split(":", 1)[0] if re.match(r"^[A-Za-z]*Error:", message) else ""
            # Chromium often says why in the console only (CORS, file:// access, 404s): keep those lines.
            during = self.console_errors(console_mark)
            if during:
                message += "\n" + "\n".join(during)
            raise RuntimeFailure("tfjs/chromium", message, kind=kind,
                                 source="exception thrown by page code (page.evaluate)"
                                        + (" and console errors during the call" if during else "")) from None

    def use_backend(self, backend: str) -> str:
        """Select a tf.js backend and return the one actually in use."""
        if backend not in BACKENDS:
            raise HarnessError(f"unknown tf.js backend {backend!r}", hint=f"choose one of {BACKENDS}")
        return str(self.evaluate(
            "async (b) => { if (b === 'wasm') tf.wasm.setWasmPaths('/lib/tfjs-backend-wasm/');"
            " const ok = await tf.setBackend(b); await tf.ready();"
            " if (!ok) throw new Error('tf.setBackend(' + b + ') returned false'); return tf.getBackend(); }",
            backend))


class TfjsTarget(Target):
    """Headless Chromium with tf.js pages on loopback."""

    name = "tfjs"

    def __init__(self, *, timeout_s: float = 60.0) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self._playwright: Any = None
        self._browser: Any = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not CHROMIUM.exists():
            return f"{CHROMIUM} is missing (Debian package `chromium`; run the README set-up)"
        if not (NODE_TFJS / "tfjs" / "dist" / "tf.min.js").is_file():
            return "node_modules/@tensorflow/tfjs is missing (run the README set-up: `npm ci`)"
        missing = [d for d, v in library_versions("playwright", "tensorflowjs").items() if v == "missing"]
        return f"Python packages not installed: {', '.join(missing)}" if missing else None

    def activate_impl(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS), timeout=60_000)
        except Exception as exc:
            self._playwright.stop()
            self._playwright = None
            raise SetupError("Chromium did not start", evidence=str(exc)[-2000:],
                             hint="check `chromium --version`; the README set-up installs it") from exc

    def deactivate_impl(self) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._browser = None
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    def versions(self) -> dict[str, str]:
        found = library_versions("tensorflowjs", "playwright", "tensorflow")
        found["@tensorflow/tfjs"] = _tfjs_npm_version()
        found["chromium"] = self._browser.version if self._browser is not None else "not started"
        return found

    # pages and servers ---------------------------------------------------------------------
    def serve(self, mounts: Mapping[str, Path] | None = None, *, headers: Mapping[str, str] | HeaderRule | None = None,
              files: Mapping[str, bytes] | None = None, guard: Guard | None = None,
              routes: Mapping[str, Route] | None = None) -> LoopbackServer:
        """A loopback server (use it in ``with`` / ``run.enter``) serving ``mounts`` and ``files``.

        Use it for a second origin (CORS), a model server with its own cache headers, or an API.
        """
        return LoopbackServer(mounts or {}, headers=headers, files=files, guard=guard, routes=routes)

    @contextmanager
    def page(self, mounts: Mapping[str, Path] | None = None, *, backend: str | None = "cpu",
             html: str | None = None, headers: Mapping[str, str] | HeaderRule | None = None,
             observe: Callable[[str], Any] | None = None, goto: bool = True,
             files: Mapping[str, bytes] | None = None, routes: Mapping[str, Route] | None = None,
             guard: Guard | None = None) -> Iterator[TfjsPage]:
        """A fresh context and page on a new loopback server serving the tf.js page.

        ``mounts`` are extra URL prefixes (e.g. ``{"/model/": converted_dir}``); ``html``
        replaces the default page (which loads tf.js and the wasm backend); ``backend`` is set
        after load (None leaves tf.js's default); ``files`` are extra exact paths, ``routes``
        POST handlers and ``guard`` an access rule of the page's own origin.  Every call gets a new browser context, so no
        IndexedDB, localStorage, cookie or HTTP-cache state crosses from one page to the next.
        """
        self.require_active()
        page_files = {"/index.html": (html if html is not None else (PAGE_DIR / "index.html").read_text()).encode(),
                      "/favicon.ico": b"", **(files or {})}
        with LoopbackServer({**lib_mounts(), **(mounts or {})}, headers=headers, files=page_files,
                            routes=routes, guard=guard) as server:
            context = self._browser.new_context()
            try:
                context.set_default_timeout(self.timeout_s * 1000)
                page = TfjsPage(context.new_page(), server, observe)
                if goto:
                    page.goto("/index.html")
                    if backend is not None:
                        page.use_backend(backend)
                yield page
            finally:
                context.close()


# ---------------------------------------------------------------------------- helpers for scenarios

#: Load a layers model from ``url`` and predict ``x``; returns the output as nested arrays.
PREDICT_LAYERS_JS = ("async ({url, x}) => { const m = await tf.loadLayersModel(url);"
                     " return m.predict(tf.tensor(x)).array(); }")
#: The same for a graph model.
PREDICT_GRAPH_JS = ("async ({url, x}) => { const m = await tf.loadGraphModel(url);"
                    " return m.predict(tf.tensor(x)).array(); }")


def model_bytes(model_dir: Path) -> dict[str, int]:
    """Bytes of a converted model: ``model.json``, the weight shards, and their count."""
    shards = [p for p in model_dir.iterdir() if p.suffix == ".bin"]
    return {"json_bytes": (model_dir / "model.json").stat().st_size,
            "weight_bytes": sum(p.stat().st_size for p in shards), "shards": len(shards)}


def decode_weights(model_json: Mapping[str, Any], shards: Mapping[str, bytes]) -> dict[str, "Any"]:
    """Decode tf.js weight shards with numpy, following ``weightsManifest`` (as tf.io does).

    ``shards`` maps each path listed in the manifest to its bytes.  Handles float32/int32 and
    the converter's uint8/uint16 affine quantization (``min``/``scale``) and float16.
    """
    import numpy as np

    weights: dict[str, Any] = {}
    for group in model_json["weightsManifest"]:
        blob = b"".join(shards[p] for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quant = spec.get("quantization")
            dtype = np.dtype(quant["dtype"] if quant else spec["dtype"])
            raw = np.frombuffer(blob, dtype=dtype, count=count, offset=offset)
            offset += count * dtype.itemsize
            if quant and "scale" in quant:
                values = raw.astype("float32") * np.float32(quant["scale"]) + np.float32(quant["min"])
            else:
                values = raw.astype(spec["dtype"] if spec["dtype"] != "float32" else "float32")
            weights[spec["name"]] = values.reshape(spec["shape"])
    return weights
