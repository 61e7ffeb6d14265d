"""A tf.js page in Chromium: evidence capture, script evaluation, backends, and the page-side scripts.

:class:`TfjsPage` wraps one Playwright page of a fresh browser context served from a loopback
server.  It keeps everything the browser reports (console lines, uncaught page errors, failed
requests, every request made) and turns an exception thrown by page code into a
:class:`RuntimeFailure` carrying the browser's own text.

The ``*_JS`` constants are the page-side scripts a deployment uses to keep a model loaded in the
page (load it once, report its signature, predict by input name); the ones scenarios use to load
and predict in one go live with the scenarios' helpers (:mod:`harness.targets.tfjs.kit`).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any, Callable

from harness.errors import HarnessError, RuntimeFailure, UsageError, WaitTimeout
from harness.loopback import LoopbackServer
from harness.targets.tfjs.backends import TfjsBackend, backend_named, browser_flags, page_scripts

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Page, Request
    from playwright.sync_api import Error as PlaywrightError

PAGE_DIR = Path(__file__).resolve().parent / "page"
_TIMEOUT_MARK = "pitfalls-evaluate-timeout"

#: Load a model (``format`` "graph" or "layers") and keep it in the page for the calls below.
LOAD_MODEL_JS = """async ({url, format}) => {
  window.__pitfallsModel = {format, model: format === 'graph' ? await tf.loadGraphModel(url)
                                                              : await tf.loadLayersModel(url)};
  return true;
}"""
#: The kept model's inputs and outputs as tf.js reports them: name, dtype, shape (-1/null = dynamic).
#: A graph model converted from a SavedModel reports its signature (``model.modelSignature``: the
#: signature keys, as TensorFlow names them) and otherwise ``model.inputs``/``model.outputs``; a
#: layers model its Keras layer names with the dtypes and shapes of ``model.inputs``/``outputs``.
SIGNATURE_JS = """() => {
  const DTYPES = {DT_FLOAT: 'float32', DT_INT32: 'int32', DT_BOOL: 'bool', DT_STRING: 'string',
                  DT_INT64: 'int64', DT_DOUBLE: 'float64', DT_HALF: 'float16', DT_UINT8: 'uint8'};
  const fromSignature = (map) => Object.entries(map).map(([name, t]) => ({
    name, dtype: DTYPES[t.dtype] || t.dtype,
    shape: t.tensorShape && !t.tensorShape.unknownRank ? (t.tensorShape.dim || []).map((d) => Number(d.size)) : null}));
  const spec = (t, name) => ({name: name || t.name, dtype: t.dtype || null, shape: t.shape === undefined ? null : t.shape});
  const {format, model} = window.__pitfallsModel;
  if (format === 'graph') {
    const sig = model.modelSignature;
    if (sig && sig.inputs && sig.outputs) return {inputs: fromSignature(sig.inputs), outputs: fromSignature(sig.outputs)};
    return {inputs: model.inputs.map((t) => spec(t)), outputs: model.outputs.map((t) => spec(t))};
  }
  // A Sequential model sets inputNames/outputNames only when first run: name by the source layer.
  const layerName = (t, names, i) => (names && names[i]) || (t.sourceLayer && t.sourceLayer.name);
  return {inputs: model.inputs.map((t, i) => spec(t, layerName(t, model.inputNames, i))),
          outputs: model.outputs.map((t, i) => spec(t, layerName(t, model.outputNames, i)))};
}"""
#: The page's tensors from :meth:`TfjsDeployment._payload`'s inputs ({name: {shape, dtype, b64 | data}}):
#: float32/int32 arrive as the little-endian bytes of the array (base64, one string instead of a list
#: of numbers Playwright serialises one object per element), other dtypes as a list.
_FEEDS_FROM_PAYLOAD = """((inputs) => {
    const feeds = {};
    for (const [name, t] of Object.entries(inputs)) {
      const bytes = t.b64 === undefined ? null : Uint8Array.from(atob(t.b64), (c) => c.charCodeAt(0));
      const data = bytes === null ? t.data : (t.dtype === 'int32' ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer));
      feeds[name] = tf.tensor(data, t.shape, t.dtype);
    }
    return feeds;
  })"""
#: Predict with the kept model: inputs by name ({name: {data, shape, dtype}}); outputs as
#: {dtype, shape, data} in ``outputNames`` order.  A graph model runs ``executeAsync`` (control
#: flow included) with the named inputs; a layers model ``predict`` on its inputs in
#: ``inputNames`` order.
PREDICT_NAMED_JS = """async ({inputs, inputNames, outputNames}) => {
  const {format, model} = window.__pitfallsModel;
  const feeds = FEEDS_FROM_PAYLOAD(inputs);
  try {
    const ordered = inputNames.map((name) => feeds[name]);
    const got = format === 'graph' ? await model.executeAsync(feeds, outputNames)
                                   : model.predict(ordered.length === 1 ? ordered[0] : ordered);
    const list = Array.isArray(got) ? got : [got];
    const out = [];
    for (const t of list) { out.push({dtype: t.dtype, shape: t.shape, data: Array.from(await t.data())}); t.dispose(); }
    return out;
  } finally {
    Object.values(feeds).forEach((t) => t.dispose());
  }
}""".replace("FEEDS_FROM_PAYLOAD", _FEEDS_FROM_PAYLOAD)

#: PREDICT_NAMED_JS timed inside the page: {outputs, seconds} (from the inputs' tensors made to the
#: outputs read back, with ``performance.now()``; Playwright's transfer is not in it).
TIMED_PREDICT_JS = """async (arg) => {
  const started = performance.now();
  const outputs = await (PREDICT)(arg);
  return {outputs, seconds: (performance.now() - started) / 1000};
}""".replace("PREDICT", PREDICT_NAMED_JS)
#: Start TIMED_PREDICT_JS on each of ``queued`` ({slot, arg}; its outcome kept in ``slot``, see
#: AWAIT_SLOT_JS), one after the other and after the predictions started before (the first and warm
#: predictions keep their order), each in a task of its own, without awaiting them: one call for all
#: (a call made while the page computes waits for it), answered before the work begins.  Several
#: pages then predict at once while Playwright's one thread goes from page to page.
START_PREDICTS_JS = """(queued) => {
  window.__pitfallsSlots = window.__pitfallsSlots || {};
  window.__pitfallsChain = window.__pitfallsChain || Promise.resolve();
  for (const {slot, arg} of queued) {
    window.__pitfallsChain = window.__pitfallsSlots[slot] = window.__pitfallsChain
      .then(() => new Promise((resolve) => setTimeout(resolve, 0)))
      .then(() => (TIMED)(arg)).then((value) => ({ok: true, value}), (error) => ({ok: false, error}));
  }
  return true;
}""".replace("TIMED", TIMED_PREDICT_JS)
#: The outcome of the work started in ``slot``: its value, or what it threw, thrown again (the same
#: error object, so the same text).
AWAIT_SLOT_JS = """async (slot) => {
  const got = await window.__pitfallsSlots[slot];
  delete window.__pitfallsSlots[slot];
  if (!got.ok) throw got.error;
  return got.value;
}"""

#: The kept graph model's intermediate tensors: ``executeAsync`` with the node names asked for as its
#: outputs (tf.js keeps and returns any node's tensor named so, e.g.
#: ``StatefulPartitionedCall/model_1/dense_1/Relu``); inputs as for PREDICT_NAMED_JS; returns
#: {name: {dtype, shape, data}} (a node whose tensor is not a number is left out).
INTERMEDIATES_JS = """async ({inputs, nodeNames}) => {
  const {format, model} = window.__pitfallsModel;
  if (format !== 'graph') throw new Error('intermediate tensors are read from a graph model, this is a ' + format + ' model');
  const feeds = FEEDS_FROM_PAYLOAD(inputs);
  try {
    const got = await model.executeAsync(feeds, nodeNames);
    const list = Array.isArray(got) ? got : [got];
    const out = {};
    for (let i = 0; i < list.length; i++) {
      const t = list[i];
      if (t.dtype === 'float32' || t.dtype === 'int32') out[nodeNames[i]] = {dtype: t.dtype, shape: t.shape, data: Array.from(await t.data())};
      t.dispose();
    }
    return out;
  } finally {
    Object.values(feeds).forEach((t) => t.dispose());
  }
}""".replace("FEEDS_FROM_PAYLOAD", _FEEDS_FROM_PAYLOAD)


def index_html(backend: TfjsBackend) -> str:
    """The default page (``page/index.html``) with the script tags of ``backend``'s browser (escaped)."""
    tags = "\n".join(f'<script src="{html.escape(src)}"></script>' for src in page_scripts(backend))
    return Template((PAGE_DIR / "index.html").read_text(encoding="utf-8")).substitute(scripts=tags)


def _first_lines(message: str) -> str:
    """The error text without the JS stack frames Playwright appends."""
    lines = [ln for ln in message.splitlines() if not ln.lstrip().startswith("at ")]
    text = "\n".join(lines).strip()
    return text.removeprefix("Page.evaluate: ")


def _error_kind(text: str) -> str:
    """``TypeError`` of ``"TypeError: ..."`` (a JS error name), else empty."""
    return text.split(":", 1)[0] if re.match(r"^[A-Za-z]*Error:", text) else ""


@dataclass(frozen=True)
class RequestSeen:
    """A request the page made, as the browser's network panel shows it."""

    url: str
    method: str
    resource_type: str
    headers: dict[str, str]


NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"
NETWORK_CHANGED_TRIES = 3


class TfjsPage:
    """A page in a fresh browser context, served from a loopback server.

    Everything the browser reports is kept as evidence: console messages, uncaught page errors,
    failed requests and every request the page made (URL and headers).
    """

    def __init__(self, page: "Page", server: LoopbackServer, observe: Callable[[str], Any] | None,
                 browser: tuple[str, ...] = ()) -> None:
        self.page = page
        self.server = server
        self.browser = browser  # the Chromium flags of the browser this page runs in
        self.console: list[str] = []
        self.page_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.requests_seen: list[RequestSeen] = []
        self._observe = observe or (lambda _text: None)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_pageerror)
        page.on("requestfailed", self._on_requestfailed)
        page.on("request", self._on_request)

    def _on_console(self, msg: "ConsoleMessage") -> None:
        text = f"console.{msg.type}: {msg.text}"
        self.console.append(text)
        if msg.type in ("error", "warning"):
            self._observe(text)

    def _on_pageerror(self, error: "PlaywrightError") -> None:
        name = error.name or ""
        message = str(error.message or error)
        text = f"{name}: {message}" if name and not message.startswith(name) else message
        self.page_errors.append(text)
        self._observe(f"pageerror: {text}")

    def _on_requestfailed(self, request: "Request") -> None:
        text = f"requestfailed: {request.url} {request.failure}"
        self.failed_requests.append(text)
        self._observe(text)

    def _on_request(self, request: "Request") -> None:
        self.requests_seen.append(RequestSeen(request.url, request.method, request.resource_type,
                                              dict(request.headers)))

    def console_errors(self, since: int = 0) -> list[str]:
        return [line for line in self.console[since:] if line.startswith("console.error: ")]

    def raise_page_errors(self) -> None:
        """Raise the first uncaught page error (e.g. a ReferenceError of a page script) as a RuntimeFailure."""
        if self.page_errors:
            raise RuntimeFailure("tfjs/chromium", "\n".join(self.page_errors), kind=_error_kind(self.page_errors[0]),
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
        """Open ``path`` and wait for its load event.

        Chromium aborts the requests in flight with ``net::ERR_NETWORK_CHANGED`` when a network
        interface of the machine appears or goes (a serving container's veth, started by another
        xdist worker); the page then loads without tf.js ("tf is not defined", seen in CI).  That is
        the machine's event, not the page's: the load is repeated, up to :data:`NETWORK_CHANGED_TRIES`
        times, and every failed request stays in the evidence.
        """
        url = self.server.url + path if path.startswith("/") else path
        for _ in range(NETWORK_CHANGED_TRIES):
            mark = len(self.failed_requests)
            self.page.goto(url, timeout=timeout_s * 1000, wait_until="load")
            if not any(NETWORK_CHANGED in text for text in self.failed_requests[mark:]):
                return

    def revisit(self, backend: str | None = "cpu", path: str = "/index.html") -> int:
        """Open the page again in the same context (a returning user: storage and HTTP cache kept).

        Returns the index of the server's request log at that moment, to tell later requests apart.
        """
        mark = len(self.server.requests)
        self.goto(path)
        if backend is not None:
            self.use_backend(backend)
        return mark

    def evaluate(self, script: str, arg: Any = None, *, timeout_s: float = 60.0, console_since: int | None = None,
                 what: str | None = None) -> Any:
        """Run an (async) JS function ``script`` with ``arg`` in the page and return its value.

        ``script`` is a function expression, e.g. ``"async (x) => tf.tensor(x).sum().array()"``.
        An exception thrown by page code raises :class:`RuntimeFailure` with the browser's text and
        the console errors since ``console_since`` (default: since the call; earlier for work the page
        started before, see :data:`START_PREDICTS_JS`); a script that does not settle within
        ``timeout_s`` raises :class:`WaitTimeout` naming ``what`` it waited for (default: the script).
        """
        from playwright.sync_api import Error as PlaywrightError

        wrapped = (f"async (arg) => {{ const f = ({script}); let timer; "
                   f"const limit = new Promise((_, rej) => {{ timer = setTimeout(() => rej(new Error('{_TIMEOUT_MARK}')), {int(timeout_s * 1000)}); }}); "
                   f"try {{ return await Promise.race([Promise.resolve().then(() => f(arg)), limit]); }} finally {{ clearTimeout(timer); }} }}")
        console_mark = len(self.console) if console_since is None else console_since
        try:
            return self.page.evaluate(wrapped, arg)
        except PlaywrightError as exc:
            message = _first_lines(exc.message)
            if _TIMEOUT_MARK in message:
                what = what or " ".join(script.split())[:160]
                raise WaitTimeout(f"page script did not settle within {timeout_s}s: {what}",
                                  evidence="\n".join(self.console[-20:] + self.page_errors[-5:]
                                                     + self.failed_requests[-5:]),
                                  hint="an awaited promise never resolved; see the console lines") from None
            kind = _error_kind(message)
            # Chromium often says why in the console only (CORS, file:// access, 404s): keep those lines.
            during = self.console_errors(console_mark)
            if during:
                message += "\n" + "\n".join(during)
            raise RuntimeFailure("tfjs/chromium", message, kind=kind,
                                 source="exception thrown by page code (page.evaluate)"
                                        + (" and console errors during the call" if during else "")) from None

    def use_backend(self, backend: str) -> str:
        """Select a tf.js backend (its ``setup_js`` first) and return the one actually in use.

        The backend must run in this page's browser: one launched with other flags (see
        :mod:`harness.targets.tfjs.backends`) needs a page of its own, ``target.page(backend=...)``.
        """
        try:
            chosen = backend_named(backend)
        except UsageError as exc:
            raise HarnessError(str(exc), hint="the backends are the entries of harness/targets/tfjs/backends.py") from None
        if self.browser and browser_flags(chosen) != self.browser:
            raise HarnessError(f"the tf.js backend {backend!r} runs in a browser with other flags than this page's",
                               evidence=f"this page: {' '.join(self.browser)}\n{backend}: {' '.join(browser_flags(chosen))}",
                               hint=f"open a page with target.page(backend={backend!r})")
        return str(self.evaluate(
            f"async ({{name, prefix}}) => {{ {chosen.setup_js}{chosen.env_js()} const ok = await tf.setBackend(name);"
            " await tf.ready(); if (!ok) throw new Error('tf.setBackend(' + name + ') returned false');"
            " return tf.getBackend(); }",
            {"name": chosen.tfjs_name, "prefix": chosen.prefix}))
