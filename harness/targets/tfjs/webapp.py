"""tf.js web apps: the ``model.json`` files of a project directory and the code that loads them.

Found by content: a JSON file with a ``weightsManifest`` or ``modelTopology`` is a tf.js model; a
``.js``/``.mjs``/``.ts``/``.html`` file that calls ``tf.loadLayersModel``/``tf.loadGraphModel`` is
loading code.  Static: each ``model.json`` (format, weight manifest paths inside the app, shard files
present, shard bytes against the weights' shapes and dtypes, a graph model's ops against the op list
of the installed tf.js converter) and the loading code scanned for the catalog's mistakes (a loader
that does not match the format, a ``file://`` URL, ``predict`` on a model that was not awaited, no
backend chosen).  The code is read as text, never run on the host.

Verified: each model, with only the files its manifest names copied into the run's work directory,
is loaded in headless Chromium from loopback by tf.js's own loader on each backend
:func:`~harness.targets.tfjs.backends.check_backends` picks, predicted three times on zeros of its
signature; console errors, failed requests, the loader's and predict's errors are reported in the
browser's words, and tensors that leak across predictions (``tf.memory().numTensors`` growing).
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.configcheck.files import ProjectFiles, line_of
from harness.configcheck.rules import ConfigRule
from harness.errors import UsageError

if TYPE_CHECKING:
    from harness.check.report import Finding

KIND = "tfjs"
DTYPE_BYTES = {"float32": 4, "int32": 4, "bool": 1, "uint8": 1, "float16": 2, "int16": 2, "int8": 1,
               "complex64": 8, "string": 0}
CODE_SUFFIXES = (".js", ".mjs", ".cjs", ".ts", ".html", ".htm", ".jsx", ".tsx")

S_PROCEDURE = "browser/model-loading/procedure"
S_API = "browser/model-loading/selection-usage-of-apis"
S_LOCAL = "browser/model-loading/loading-from-local-storage"
S_ASYNC = "browser/model-loading/asynchronous-loading"
S_BACKEND = "browser/environment/procedure"
S_OPS = "browser/general-questions/limitations-of-frameworks"

RULES: dict[str, ConfigRule] = {r.id: r for r in (
    ConfigRule("tfjs/no-format", S_API, "warning",
               "Keep the converter's model.json as written: its `format` (graph-model / layers-model) says which "
               "loader reads it.", "tfjs-converter writes \"format\": \"graph-model\" or \"layers-model\""),
    ConfigRule("tfjs/shard-missing", S_PROCEDURE, "blocker",
               "Deploy every shard the weightsManifest names beside model.json (paths are relative to it).",
               "the browser: \"Failed to load resource: the server responded with a status of 404 (Not Found)\", "
               "then tf.js: \"byte length of Float32Array should be a multiple of 4\""),
    ConfigRule("tfjs/shard-size-mismatch", S_PROCEDURE, "blocker",
               "Re-deploy the shards the converter wrote with this model.json (the bytes do not match the weights).",
               "tfjs-core io: weights are sliced from the concatenated shards by shape and dtype"),
    ConfigRule("tfjs/unsupported-op", S_OPS, "blocker",
               "Replace the op with ones tf.js implements (or register a custom op in the page).",
               "tfjs-converter operations/op_list: an op not listed fails with \"Tensorflow Op is not supported\""),
    ConfigRule("tfjs/loader-format-mismatch", S_API, "blocker",
               "Load a graph model with tf.loadGraphModel and a layers model with tf.loadLayersModel.",
               "tfjs-layers: \"Improper config format\" for a graph model given to tf.loadLayersModel"),
    ConfigRule("tfjs/file-url", S_LOCAL, "blocker",
               "Serve the model over http(s) from the app's origin (or use indexeddb:// / localstorage://).",
               "Chromium: \"Not allowed to load local resource: file://...\"; tf.js: \"Failed to fetch\""),
    ConfigRule("tfjs/unawaited-load", S_ASYNC, "blocker",
               "await the loader (const model = await tf.loadLayersModel(url)) before calling predict.",
               "the browser: \"model.predict is not a function\" (a Promise has no predict)"),
    ConfigRule("tfjs/no-backend-chosen", S_BACKEND, "info",
               "Choose the backend (await tf.setBackend('webgl'|'wasm'|'cpu'); await tf.ready()) so results and "
               "speed do not depend on what the browser offers.", "tfjs-core picks the highest-priority backend "
               "that initialises"),
    ConfigRule("tfjs/load-error", S_PROCEDURE, "blocker",
               "Read the browser's text: tf.js could not load the model.", "the loader's exception in Chromium"),
    ConfigRule("tfjs/predict-error", S_OPS, "blocker",
               "Read the browser's text: the model loaded but predict failed on this backend.",
               "predict's exception in Chromium"),
    ConfigRule("tfjs/request-failed", S_PROCEDURE, "blocker",
               "Deploy the files the model asks for.", "Chromium's failed requests / HTTP status"),
    ConfigRule("tfjs/tensor-leak", S_PROCEDURE, "warning",
               "Dispose the tensors of each prediction (tf.tidy or tensor.dispose()).",
               "tf.memory().numTensors growing across repeated predictions"),
    ConfigRule("tfjs/page-error", S_ASYNC, "blocker",
               "Read the browser's text: the app's own page threw it (an uncaught error or a rejected promise).",
               "the app's page in Chromium: the uncaught error or unhandled rejection (pageerror event)"),
    ConfigRule("tfjs/kernel-missing", S_OPS, "blocker",
               "Run the model on a backend that registers every kernel it runs (or keep the app on one that does).",
               "tf.getKernelsForBackend(<backend>) in the page against the kernels the model's predictions ran; "
               "the engine: \"Kernel '<name>' not registered for backend '<backend>'\""),
)}


@dataclass
class TfjsModel:
    file: str  # bundle-relative model.json
    data: dict[str, Any]

    @property
    def format(self) -> str:
        fmt = str(self.data.get("format") or "")
        if fmt:
            return fmt
        topology = self.data.get("modelTopology") or {}
        return "graph-model" if isinstance(topology, dict) and "node" in topology else \
            "layers-model" if isinstance(topology, dict) and ("model_config" in topology or "class_name" in topology) \
            else ""

    def shard_paths(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """(bundle-relative shard path, the weights of its group) for every path of the manifest."""
        out = []
        base = posixpath.dirname(self.file)
        for group in self.data.get("weightsManifest") or []:
            for path in group.get("paths") or []:
                out.append((posixpath.normpath(posixpath.join(base, str(path))), list(group.get("weights") or [])))
        return out


@dataclass
class LoadCall:
    file: str
    line: int
    loader: str  # loadLayersModel / loadGraphModel
    url: str | None  # the literal argument, when there is one
    awaited: bool
    variable: str | None


@dataclass
class WebApp:
    files: ProjectFiles
    models: list[TfjsModel] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    calls: list[LoadCall] = field(default_factory=list)
    kind: str = KIND
    runs: list[PageRun] = field(default_factory=list)  # the app's pages run by verify()

    @property
    def pieces(self) -> dict[str, list[str]]:
        return {"tf.js models": [m.file for m in self.models], "loading code": self.code}

    def static_findings(self) -> list[Finding]:
        return static_findings(self)

    def verify(self, progress: Any = None) -> list[Finding]:
        return verify(self, progress)


LOAD_CALL = re.compile(r"(?P<await>await\s+)?(?:\w+\.)?(?P<loader>loadLayersModel|loadGraphModel)\s*\(\s*"
                       r"(?:(?P<q>['\"`])(?P<url>[^'\"`]*)(?P=q))?")
ASSIGNED = re.compile(r"(?:const|let|var)\s+(?P<var>\w+)\s*=\s*$")


def find_bundle(files: ProjectFiles) -> WebApp | None:
    app = WebApp(files)
    for name in files.with_suffix(".json"):
        text = files.read_text(name)
        if text is None or not re.search(r'"(weightsManifest|modelTopology)"', text):
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"{name} looks like a tf.js model.json but is not JSON ({exc}); re-run the converter") from None
        if isinstance(data, dict):
            model = TfjsModel(name, data)
            for shard, _ in model.shard_paths():
                files.inside(shard)  # EscapingPath: a manifest path that leads out of the app
            app.models.append(model)
    for name in files.with_suffix(*CODE_SUFFIXES):
        text = files.read_text(name)
        if text is None or not re.search(r"load(Layers|Graph)Model", text):
            continue
        app.code.append(name)
        for match in LOAD_CALL.finditer(text):
            before = text[max(0, match.start() - 80):match.start()].split("\n")[-1]
            assigned = ASSIGNED.search(before)
            after = text[match.end():match.end() + 300]
            then = re.match(r"[^;\n]*\)\s*\.then\s*\(", after) is not None
            app.calls.append(LoadCall(name, line_of(text, match.start()), match["loader"], match["url"],
                                      bool(match["await"]) or then or "await" in before,
                                      assigned["var"] if assigned else None))
    return app if app.models or app.calls else None


def converter_ops() -> frozenset[str]:
    """The TensorFlow op names the installed tf.js converter's graph executor implements."""
    from harness.paths import NODE_MODULES

    names: set[str] = set()
    for path in sorted((NODE_MODULES / "@tensorflow" / "tfjs-converter" / "dist" / "operations" / "op_list").glob("*.js")):
        names.update(re.findall(r"'tfOpName': '([A-Za-z0-9_]+)'", path.read_text(encoding="utf-8")))
    return frozenset(names)


def _weights_bytes(weights: list[dict[str, Any]]) -> int | None:
    total = 0
    for weight in weights:
        dtype = str((weight.get("quantization") or {}).get("dtype") or weight.get("dtype") or "float32")
        size = DTYPE_BYTES.get(dtype)
        if not size:
            return None  # strings and unknown dtypes: the size is not fixed by the shape
        total += math.prod(int(d) for d in weight.get("shape") or []) * size
    return total


def _resolve_call(app: WebApp, call: LoadCall) -> TfjsModel | None:
    if call.url:
        tail = call.url.split("?")[0].split("#")[0].lstrip("./").lstrip("/")
        hits = [m for m in app.models if tail and (m.file == tail or m.file.endswith("/" + tail))]
        if hits:
            return hits[0]
        return None
    return app.models[0] if len(app.models) == 1 else None


def static_findings(app: WebApp) -> list[Finding]:
    found: list[Finding] = []
    ops = None
    for model in app.models:
        if not model.format:
            found.append(RULES["tfjs/no-format"].finding(f"{model.file} names no format and its topology is neither a "
                                                         "graph nor a layers model", file=model.file))
        groups: dict[int, tuple[list[str], list[dict[str, Any]]]] = {}
        for index, group in enumerate(model.data.get("weightsManifest") or []):
            base = posixpath.dirname(model.file)
            paths = [posixpath.normpath(posixpath.join(base, str(p))) for p in group.get("paths") or []]
            groups[index] = (paths, list(group.get("weights") or []))
        for paths, weights in groups.values():
            missing = [p for p in paths if not app.files.exists(p)]
            for path in missing:
                found.append(RULES["tfjs/shard-missing"].finding(
                    f"{model.file} names the weight shard {path}, which is not in the app", file=model.file))
            expected = _weights_bytes(weights)
            if not missing and expected is not None:
                actual = sum(app.files.size(p) or 0 for p in paths)
                if actual != expected:
                    found.append(RULES["tfjs/shard-size-mismatch"].finding(
                        f"{', '.join(paths)}: {actual} bytes; the weights' shapes and dtypes need {expected}",
                        file=model.file))
        if model.format == "graph-model":
            ops = ops if ops is not None else converter_ops()
            topology = model.data.get("modelTopology") or {}
            used = {str(n.get("op")) for n in topology.get("node", [])}
            for function in (topology.get("library") or {}).get("function", []):
                used |= {str(n.get("op")) for n in function.get("nodeDef", [])}
            for op in sorted(used - ops - {"None"}):
                found.append(RULES["tfjs/unsupported-op"].finding(
                    f"{model.file}: op {op} is not in the installed tf.js converter's op list", file=model.file))
    for call in app.calls:
        where: dict[str, Any] = {"file": call.file, "line": call.line}
        if call.url and (call.url.startswith("file:") or re.match(r"^([A-Za-z]:\\|/home/|/Users/)", call.url)):
            found.append(RULES["tfjs/file-url"].finding(f"tf.{call.loader}({call.url!r}) loads from the local file "
                                                        "system", **where))
        loaded = _resolve_call(app, call)
        wanted = "graph-model" if call.loader == "loadGraphModel" else "layers-model"
        if loaded is not None and loaded.format and loaded.format != wanted:
            found.append(RULES["tfjs/loader-format-mismatch"].finding(
                f"tf.{call.loader} loads {loaded.file}, a {loaded.format}", **where))
        if not call.awaited and call.variable:
            text = app.files.read_text(call.file) or ""
            if re.search(rf"\b{re.escape(call.variable)}\s*\.\s*(predict|execute|executeAsync)\s*\(", text):
                found.append(RULES["tfjs/unawaited-load"].finding(
                    f"{call.variable} = tf.{call.loader}(...) is a Promise (no await), and {call.variable}.predict is "
                    "called on it", **where))
    if app.calls and not any(re.search(r"setBackend\s*\(", app.files.read_text(f) or "") for f in app.code):
        first = app.calls[0]
        found.append(RULES["tfjs/no-backend-chosen"].finding("the loading code never calls tf.setBackend",
                                                             file=first.file, line=first.line))
    return found


LEAK_JS = "() => tf.memory().numTensors"


def verify(app: WebApp, progress: Any = None) -> list[Finding]:
    """Load each model with tf.js's loader in Chromium on each checked backend and predict three times."""
    import shutil
    import time

    from harness.configcheck.files import copies_directory
    from harness.errors import NotApplicable, RuntimeFailure
    from harness.targets.tfjs.backends import check_backends
    from harness.targets.tfjs.page import LOAD_MODEL_JS, PREDICT_NAMED_JS, SIGNATURE_JS
    from harness.targets.tfjs.target import TfjsTarget

    reason = TfjsTarget.unavailable_reason()
    if reason:
        raise NotApplicable(f"tf.js in Chromium cannot run here: {reason}")
    if not app.models and not app_pages(app):
        raise NotApplicable("no model.json to load and no page loading tf.js")
    findings: list[Finding] = []
    with copies_directory() as work, TfjsTarget() as target:
        page_findings, app.runs = run_pages(app, target, work, progress)
        for index, model in enumerate(app.models):
            if model.format not in ("graph-model", "layers-model"):
                continue
            copy = work / f"model{index}"
            copy.mkdir()
            base = posixpath.dirname(model.file)
            shutil.copyfile(app.files.inside(model.file), copy / "model.json")
            for shard, _ in model.shard_paths():
                if app.files.exists(shard):
                    target_path = copy / posixpath.relpath(shard, base or ".")
                    target_path.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(app.files.inside(shard), target_path)
            fmt = "graph" if model.format == "graph-model" else "layers"
            for backend in check_backends():
                source = f"tf.js {fmt} loader in Chromium ({backend.name} backend), served from loopback"
                at: dict[str, Any] = {"file": model.file}
                with target.page({"/app/": copy}, backend=backend.name) as page:
                    started = time.perf_counter()
                    try:
                        page.evaluate(LOAD_MODEL_JS, {"url": "/app/model.json", "format": fmt})
                    except RuntimeFailure as exc:
                        findings.append(_browser_finding("tfjs/load-error", exc.message, source, at))
                        findings += _failed_requests(page, source, at)
                        continue
                    load_s = time.perf_counter() - started
                    signature = page.evaluate(SIGNATURE_JS)
                    payload, names = {}, []
                    for spec in signature["inputs"]:
                        shape = [1 if (d is None or d < 0) else int(d) for d in (spec["shape"] or [1])]
                        payload[spec["name"]] = {"data": [0] * math.prod(shape), "shape": shape,
                                                 "dtype": spec["dtype"] or "float32"}
                        names.append(spec["name"])
                    outputs = [o["name"] for o in signature["outputs"]]
                    counts = []
                    try:
                        for _ in range(3):
                            page.evaluate(PREDICT_NAMED_JS, {"inputs": payload, "inputNames": names,
                                                             "outputNames": outputs})
                            counts.append(int(page.evaluate(LEAK_JS)))
                    except RuntimeFailure as exc:
                        findings.append(_browser_finding("tfjs/predict-error", exc.message, source, at))
                        continue
                    if counts[-1] > counts[0]:
                        findings.append(RULES["tfjs/tensor-leak"].finding(
                            f"tf.memory().numTensors after each of three predictions: {counts}",
                            verified="runtime", source=source, **at))
                    findings += _failed_requests(page, source, at)
                    for line in page.console_errors():
                        findings.append(_browser_finding("tfjs/load-error", line, source + ": console error", at))
                    if progress:
                        progress(f"tfjs: {model.file} on {backend.name}: loaded in {load_s:.2f}s, "
                                 f"numTensors {counts}")
    return _merge_backends(findings + page_findings)


def _merge_backends(findings: list[Finding]) -> list[Finding]:
    """One finding per (rule, file, text), its source naming every backend that showed it."""
    from dataclasses import replace

    merged: dict[tuple[str, str, str], tuple[Finding, list[str]]] = {}
    for f in findings:
        match = re.search(r"\((\w+) backend\)", f.source)
        backends = merged.setdefault((f.step, f.file, f.text), (f, []))[1]
        if match and match.group(1) not in backends:
            backends.append(match.group(1))
    return [replace(f, source=re.sub(r"\(\w+ backend\)", f"({', '.join(b)} backend{'s' if len(b) > 1 else ''})",
                                     f.source, count=1)) for f, b in merged.values()]


def _failed_requests(page: Any, source: str, at: dict[str, Any]) -> list[Finding]:
    """Requests the browser reports failed, and the app's files the loopback server answered with an error."""
    texts = list(page.failed_requests)
    texts += [f"GET {r.path}: HTTP {r.status}" for r in page.server.requests if r.status >= 400
              and r.path.startswith("/app/")]
    return [_browser_finding("tfjs/request-failed", text, source, at) for text in texts]


#: the browser's texts (as the catalog's lessons reproduce them) -> the lesson, for texts harness.check.rules
#: does not know; first match wins
BROWSER_LESSONS = ((r"Not allowed to load local resource|file://", S_LOCAL),
                   (r"Improper config format", S_API),
                   (r"is not a function", S_ASYNC),
                   (r"404|multiple of 4|Failed to fetch", S_PROCEDURE),
                   (r"not registered for backend", S_OPS),
                   (r"has not yet been initialized", S_BACKEND))


def _browser_finding(rule_id: str, text: str, source: str, at: dict[str, Any]) -> Finding:
    """A verified finding in the browser's words, with the lesson the text matches (else the rule's)."""
    from harness.check.rules import rule_for

    known = rule_for("tfjs", text)
    lesson = known.scenario if known else next((s for pattern, s in BROWSER_LESSONS if re.search(pattern, text)), None)
    return RULES[rule_id].runtime_finding(text, source=source, lesson=lesson, fix=known.fix if known else "", **at)


# The app's own pages, run in Chromium --------------------------------------------------------------

#: a request for the tf.js bundle itself: a CDN URL of @tensorflow/tfjs or a local tf.js / tf.min.js
TFJS_SCRIPT = re.compile(r"(/@tensorflow/tfjs(@[^/]*)?(/dist/tf(\.min)?\.js)?$)|(^|/)tf(\.min)?\.js$")
#: the predictions the page must make before its tensor counts are read; :func:`wait_for_predictions` waits for
#: them (an app that predicts less is reported with what it did, and why the wait ended)
PAGE_PREDICTIONS = 3
PAGE_FILES_BYTES = 256 << 20
#: Chromium flags of the browser the app's pages run in, besides the backend's: WebRTC may send UDP only
#: through a proxy that carries UDP (the context's proxy, :class:`RefusingProxy`, carries none: no UDP at all)
#: and TCP only through the context's proxy; no host name is resolved (the app is served from 127.0.0.1, an
#: address, and the proxy is one too), so a page cannot leak through DNS look-ups either.
PAGE_BROWSER_FLAGS = ("--webrtc-ip-handling-policy=disable_non_proxied_udp",
                      "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
#: the most a request head read by :class:`RefusingProxy` may be (the rest is not read)
PROXY_HEAD_BYTES = 8192

#: Appended to the tf.js bundle the app's page loads (the served copy only; the app's files are not
#: changed): the checked backend replaces any tf.setBackend the app asks for (what it asked is kept),
#: and every prediction of a loaded model records tf.memory().numTensors before it, its duration and
#: the kernels it ran.
PAGE_PROBE_JS = r"""
;(() => {
  const probe = window.__pitfalls = {asked: [], predictions: [], kernels: new Set(), depth: 0, backend: null,
                                     error: null};
  const prefix = PREFIX;
  SETUP
  const engine = tf.engine();
  const realSetBackend = engine.setBackend.bind(engine);
  engine.setBackend = (name) => { probe.asked.push(String(name)); return realSetBackend(BACKEND); };
  probe.ready = realSetBackend(BACKEND).then((ok) => { probe.backend = ok ? tf.getBackend() : null; },
                                                 (e) => { probe.error = String(e); });
  const realRunKernel = engine.runKernel.bind(engine);
  engine.runKernel = (name, ...rest) => { if (probe.depth > 0) probe.kernels.add(name); return realRunKernel(name, ...rest); };
  const wrap = (proto, method) => {
    const real = proto && proto[method];
    if (typeof real !== 'function') return;
    proto[method] = function (...args) {
      if (probe.depth > 0) return real.apply(this, args);
      const record = {method, before: tf.memory().numTensors, ms: null};
      probe.predictions.push(record);
      const started = performance.now();
      probe.depth += 1;
      let out;
      try { out = real.apply(this, args); } catch (e) { probe.depth -= 1; record.ms = performance.now() - started; throw e; }
      if (out && typeof out.then === 'function') {
        return out.finally(() => { probe.depth -= 1; record.ms = performance.now() - started; });
      }
      probe.depth -= 1;
      record.ms = performance.now() - started;
      return out;
    };
  };
  wrap(tf.GraphModel && tf.GraphModel.prototype, 'predict');
  wrap(tf.GraphModel && tf.GraphModel.prototype, 'execute');
  wrap(tf.GraphModel && tf.GraphModel.prototype, 'executeAsync');
  wrap(tf.LayersModel && tf.LayersModel.prototype, 'predict');
})();
"""
#: what the probe saw, read after the predictions (or the wait) ended; registries of the backends loaded
PAGE_READ_JS = """async (names) => {
  const probe = window.__pitfalls;
  if (!probe) return null;
  await probe.ready;
  const nav = performance.getEntriesByType('navigation')[0];
  const models = performance.getEntriesByType('resource')
    .filter((r) => /\\.(json|bin)(\\?|$)/.test(r.name)).map((r) => ({url: r.name, end: r.responseEnd}));
  const registries = {};
  for (const name of names) {
    const kernels = tf.getKernelsForBackend(name).map((k) => k.kernelName);
    if (kernels.length) registries[name] = kernels;
  }
  return {asked: probe.asked, backend: probe.backend, error: probe.error,
          predictions: probe.predictions.map((p) => ({before: p.before, ms: p.ms, method: p.method})),
          kernels: Array.from(probe.kernels).sort(), registries,
          loadMs: nav ? nav.loadEventEnd : null, modelFiles: models};
}"""


@dataclass
class PageRun:
    """One run of one of the app's pages on one backend: what the report keeps besides the findings."""

    page: str  # app-relative
    backend: str
    asked: list[str] = field(default_factory=list)  # the backends the app's code asked tf.setBackend for
    page_load_s: float | None = None
    model_files_s: float | None = None  # when the last model.json / shard finished arriving
    first_predict_s: float | None = None
    num_tensors: list[int] = field(default_factory=list)  # tf.memory().numTensors before each prediction
    kernels: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # requests to other origins, refused (see run_pages)
    waited: str = ""  # how the wait for the page's predictions ended (PredictionsWaited.text)

    def to_json(self) -> dict[str, Any]:
        return {"page": self.page, "backend": self.backend, "asked": self.asked,
                "page_load_s": self.page_load_s, "model_files_s": self.model_files_s,
                "first_predict_s": self.first_predict_s, "num_tensors": self.num_tensors,
                "kernels": self.kernels, "blocked": self.blocked, "predictions_waited": self.waited}


def app_pages(app: WebApp) -> list[str]:
    """The app's HTML pages that load tf.js or one of its loading scripts."""
    pages = []
    scripts = {posixpath.basename(c) for c in app.code}
    for name in app.files.with_suffix(".html", ".htm"):
        text = app.files.read_text(name) or ""
        srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*['\"]([^'\"]+)['\"]", text, re.I)
        if name in app.code or any(TFJS_SCRIPT.search(s.split("?")[0]) or posixpath.basename(s) in scripts
                                   for s in srcs):
            pages.append(name)
    return pages


def leaked(counts: list[int]) -> bool:
    """numTensors before each prediction grows at every one: each prediction leaves tensors behind."""
    return len(counts) >= PAGE_PREDICTIONS and all(b > a for a, b in zip(counts, counts[1:]))


def missing_kernels(kernels: list[str], registries: dict[str, list[str]]) -> dict[str, list[str]]:
    """backend -> the kernels the predictions ran that the backend does not register."""
    return {backend: sorted(set(kernels) - set(registered)) for backend, registered in sorted(registries.items())
            if set(kernels) - set(registered)}


def _tfjs_bundle(backend: Any, app_copy: Any, path: str | None) -> bytes:
    """The tf.js script the page asked for, with the backend's bundle and the probe appended: the app's own
    copy when it ships one at ``path``, else the installed one."""
    from harness.targets.tfjs.backends import CORE

    own = app_copy / path.lstrip("/") if path else None
    core = own.read_bytes() if own is not None and own.is_file() else (CORE.dist / CORE.scripts[0]).read_bytes()
    parts = [core]
    if backend.bundle is not None:
        parts += [(backend.bundle.dist / s).read_bytes() for s in backend.bundle.scripts]
    probe = (PAGE_PROBE_JS.replace("PREFIX", json.dumps(backend.prefix)).replace("BACKEND", json.dumps(backend.tfjs_name))
             .replace("SETUP", backend.setup_js + backend.env_js()))  # a variant: tf.js's flags, then its backend
    return b"\n;\n".join(parts) + probe.encode()


def _copy_app(app: WebApp, work: Path) -> Path:
    """The app's files (each resolved inside it; at most :data:`PAGE_FILES_BYTES`) copied for the browser."""
    import shutil

    site = work / "site"
    total = 0
    for name in app.files.files:
        source = app.files.inside(name)
        total += source.stat().st_size
        if total > PAGE_FILES_BYTES:
            raise UsageError(f"{app.files.root}: the app's files pass {PAGE_FILES_BYTES >> 20} MiB; give the web "
                             "app's own directory")
        target = site / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return site


def run_pages(app: WebApp, target: Any, work: Path, progress: Any = None) -> tuple[list[Finding], list[PageRun]]:
    """Open each of the app's own pages, served from loopback, in Chromium on each checked backend.

    The page is untrusted code: it runs only in the browser, in a fresh context from a copy of the app's
    files.  Its every request to another origin is refused by the context's request handler (and listed);
    below that, the context's proxy is a :class:`RefusingProxy` that everything but the app's own origin
    goes through (WebSockets, Workers', iframes' and beacons' connections, other loopback ports: refused
    there, and listed), and the browser runs with :data:`PAGE_BROWSER_FLAGS` (WebRTC sends no UDP, no host
    name is resolved).  The tf.js script it asks for (a CDN URL or a local copy) is answered with tf.js (the
    app's own copy if it ships one, else the installed bundle), the backend's bundle and :data:`PAGE_PROBE_JS`.
    """
    from harness.errors import RuntimeFailure, WaitTimeout
    from harness.loopback import LoopbackServer
    from harness.targets.tfjs.backends import TABLE, browser_flags, check_backends, lib_mounts
    from harness.targets.tfjs.page import TfjsPage

    pages = app_pages(app)
    if not pages:
        return [], []
    site = _copy_app(app, work)
    findings: list[Finding] = []
    runs: list[PageRun] = []
    for name in pages:
        at: dict[str, Any] = {"file": name}
        for backend in check_backends():
            run = PageRun(name, backend.name)
            source = f"the app's page {name} in Chromium ({backend.name} backend), served from loopback"
            flags = (*browser_flags(backend), *PAGE_BROWSER_FLAGS)
            with LoopbackServer({**lib_mounts(), "/": site}) as server, RefusingProxy() as proxy:
                handle = _router(backend, server.url, site, run)
                context = target.browser(flags).new_context(proxy=proxy.settings(server.url))
                try:
                    context.route("**/*", handle)
                    page = TfjsPage(context.new_page(), server, None, flags)
                    page.goto("/" + name)
                    run.waited = wait_for_predictions(lambda: _page_state(page)).text
                    try:
                        seen = page.evaluate(PAGE_READ_JS, [b.name for b in TABLE], timeout_s=30.0)
                    except (RuntimeFailure, WaitTimeout) as exc:
                        seen = None
                        findings.append(_browser_finding("tfjs/page-error", str(exc), source, at))
                    findings += _page_evidence(page, seen, run, source, at)
                finally:
                    context.close()
                run.blocked += proxy.refused
            runs.append(run)
            if progress:
                progress(f"tfjs: {name} on {backend.name}: page loaded in {run.page_load_s}s, first predict "
                         f"{run.first_predict_s}s, numTensors before each prediction {run.num_tensors}; {run.waited}")
    return findings, runs


#: the wait for the page's predictions ends at :data:`PAGE_PREDICTIONS`, or when the page has been quiet this
#: long (loaded, no prediction running, none started or ended and no resource fetched since: an app that
#: predicts on user input; requests to other origins, all refused, do not count), or at this ceiling (a page
#: still busy: under load, or fetching from its origin without end; reported with what it did)
PAGE_QUIET_S = 10.0
PAGE_WAIT_CEILING_S = 120.0
PAGE_POLL_S = 0.25
#: what the waiter polls: the probe's predictions (finished, running) and the page's activity
PAGE_STATE_JS = """() => {
  const probe = window.__pitfalls;
  const predictions = probe ? probe.predictions : [];
  return {done: predictions.filter((p) => p.ms !== null).length, running: predictions.filter((p) => p.ms === null).length,
          resources: performance.getEntriesByType('resource').filter((r) => r.name.startsWith(location.origin + '/')).length,
          loaded: document.readyState === 'complete'};
}"""


@dataclass(frozen=True)
class PredictionsWaited:
    """How the wait for the page's predictions ended: how many it saw finished, and why it stopped."""

    done: int
    why: str  # "predictions" | "quiet" | "ceiling"
    seconds: float

    @property
    def text(self) -> str:
        if self.why == "predictions":
            return f"{self.done} predictions seen"
        if self.why == "quiet":
            return (f"{self.done} of {PAGE_PREDICTIONS} predictions seen: the page was then quiet for {PAGE_QUIET_S:g} s "
                    "(loaded, no prediction running, nothing fetched from its origin): an app that predicts on user "
                    "input, or fewer times")
        return (f"{self.done} of {PAGE_PREDICTIONS} predictions seen when the wait's {PAGE_WAIT_CEILING_S:g} s ceiling "
                "ended it with the page still busy (a slow or loaded machine, or a page that never settles)")


def wait_for_predictions(state: Callable[[], dict[str, Any] | None], *, clock: Callable[[], float] | None = None,
                         sleep: Callable[[float], None] | None = None) -> PredictionsWaited:
    """Poll ``state()`` (:data:`PAGE_STATE_JS`'s answer, None when the page could not answer) until the page has
    made :data:`PAGE_PREDICTIONS` predictions, has been quiet for :data:`PAGE_QUIET_S`, or
    :data:`PAGE_WAIT_CEILING_S` passed; each condition ends the wait as soon as it holds.  ``clock`` and
    ``sleep`` are the machine's unless given (tests give made-up ones)."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    started = clock()
    changed, last = started, None
    done = 0
    while True:
        seen = state()
        now = clock()
        done = int(seen["done"]) if seen else done
        if done >= PAGE_PREDICTIONS:
            return PredictionsWaited(done, "predictions", now - started)
        activity = (seen["done"], seen["running"], seen["resources"], seen["loaded"]) if seen else None
        if activity != last:
            changed, last = now, activity
        elif seen and seen["loaded"] and not seen["running"] and now - changed >= PAGE_QUIET_S:
            return PredictionsWaited(done, "quiet", now - started)
        if now - started >= PAGE_WAIT_CEILING_S:
            return PredictionsWaited(done, "ceiling", now - started)
        sleep(PAGE_POLL_S)


def _page_state(page: Any) -> dict[str, Any] | None:
    """:data:`PAGE_STATE_JS` in the page; None while the page cannot answer (navigating, its thread busy)."""
    from harness.errors import RuntimeFailure, WaitTimeout

    try:
        state = page.evaluate(PAGE_STATE_JS, timeout_s=10.0)
    except (RuntimeFailure, WaitTimeout):
        return None
    return state if isinstance(state, dict) else None


def _router(backend: Any, origin: str, site: Path, run: PageRun) -> Callable[[Any], None]:
    """The browser context's request handler: the app's origin is served, a tf.js script is answered with
    :func:`_tfjs_bundle`, every other origin is refused (and listed in ``run.blocked``)."""
    from urllib.parse import urlparse

    def handle(route: Any) -> None:
        url = route.request.url
        path = urlparse(url).path
        local = url.startswith(origin + "/")
        if TFJS_SCRIPT.search(path if local else url.split("?")[0]):
            route.fulfill(status=200, content_type="text/javascript", body=_tfjs_bundle(backend, site, path if local else None))
        elif local:
            route.continue_()
        else:
            run.blocked.append(url)
            route.abort("blockedbyclient")
    return handle


class RefusingProxy:
    """The browser context's proxy: a listener on 127.0.0.1 that every connection of the page's browser context
    but the app's own origin goes to (Chromium's network stack, so WebSockets, Workers, iframes, beacons and
    other loopback ports included).  It reads the request's head (at most :data:`PROXY_HEAD_BYTES`), keeps its
    first line in :attr:`refused` (``CONNECT host:port`` for a WebSocket or TLS tunnel, ``GET http://...`` for
    plain HTTP) and closes the connection unanswered: nothing is ever forwarded."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._server: Any = None
        self._thread: Any = None

    def __enter__(self) -> "RefusingProxy":
        import socketserver
        import threading

        refused = self.refused

        class Refuse(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(5.0)
                head = b""
                try:
                    while b"\n" not in head and len(head) < PROXY_HEAD_BYTES:
                        chunk = self.request.recv(PROXY_HEAD_BYTES - len(head))
                        if not chunk:
                            break
                        head += chunk
                except OSError:
                    pass
                line = head.split(b"\n", 1)[0].decode("latin-1").strip()
                line = re.sub(r"\s+HTTP/\d(\.\d)?$", "", line)
                if line:
                    refused.append("".join(c if c.isprintable() else "?" for c in line[:500]))

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Refuse)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def settings(self, origin: str) -> dict[str, str]:
        """Playwright's ``proxy`` option of a context: everything through this proxy but ``origin`` (the app's
        ``http://127.0.0.1:PORT``; Playwright adds ``<-loopback>``, so other loopback ports are proxied too)."""
        return {"server": f"http://127.0.0.1:{self._server.server_address[1]}",
                "bypass": origin.removeprefix("http://")}


def _refused(text: str) -> bool:
    """A browser line about a request the context refused (its handler, or the proxy it goes through)."""
    return any(error in text for error in REFUSALS)


#: Chromium's errors for a request refused by the context's handler or by :class:`RefusingProxy`
REFUSALS = ("ERR_BLOCKED_BY_CLIENT", "ERR_PROXY_CONNECTION_FAILED", "ERR_TUNNEL_CONNECTION_FAILED", "ERR_EMPTY_RESPONSE",
            "ERR_CONNECTION_CLOSED", "ERR_NAME_NOT_RESOLVED")


def _page_evidence(page: Any, seen: dict[str, Any] | None, run: PageRun, source: str,
                   at: dict[str, Any]) -> list[Finding]:
    found = [_browser_finding("tfjs/page-error", text, source, at) for text in page.page_errors]
    found += [_browser_finding("tfjs/page-error", line, source + ": console error", at)
              for line in page.console_errors() if not _refused(line)]  # our refusals: in blocked
    found += [_browser_finding("tfjs/request-failed", text, source, at) for text in page.failed_requests
              if not _refused(text)]
    found += [_browser_finding("tfjs/request-failed", f"GET {r.path}: HTTP {r.status}", source, at)
              for r in page.server.requests if r.status >= 400 and not r.path.startswith("/lib/")]
    if seen is None:
        return found
    run.asked = list(seen["asked"])
    run.page_load_s = round(seen["loadMs"] / 1000, 3) if seen.get("loadMs") else None
    ends = [m["end"] for m in seen["modelFiles"] if m["end"]]
    run.model_files_s = round(max(ends) / 1000, 3) if ends else None
    timed = [p for p in seen["predictions"] if p["ms"] is not None]
    run.first_predict_s = round(timed[0]["ms"] / 1000, 3) if timed else None
    run.num_tensors = [int(p["before"]) for p in seen["predictions"]]
    run.kernels = list(seen["kernels"])
    if seen.get("error"):
        found.append(_browser_finding("tfjs/page-error", f"tf.setBackend('{run.backend}'): {seen['error']}", source, at))
    if leaked(run.num_tensors):
        steps = sorted({b - a for a, b in zip(run.num_tensors, run.num_tensors[1:])})
        grows = f"{steps[0]}" if len(steps) == 1 else f"{steps[0]} to {steps[-1]}"
        found.append(RULES["tfjs/tensor-leak"].finding(
            f"tf.memory().numTensors grows by {grows} from each of the page's predictions to the next: each "
            "leaves tensors undisposed (the counts are the run's num_tensors)", verified="runtime", source=source,
            **at))
    for backend, kernels in missing_kernels(run.kernels, seen["registries"]).items():
        found.append(RULES["tfjs/kernel-missing"].finding(
            f"the page's predictions ran kernel(s) {', '.join(kernels)}, which the {backend} backend does not register "
            f"(tf.getKernelsForBackend('{backend}'))", verified="runtime", source=source, **at))
    return found

