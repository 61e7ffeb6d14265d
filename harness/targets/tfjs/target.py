"""TensorFlow.js in Debian's headless Chromium, driven by Playwright.

One browser per set of Chromium flags per test process (the backends' flags come from
:mod:`harness.targets.tfjs.backends`: cpu, wasm and webgl share one browser, a backend that needs
other flags gets its own, launched on its first page; all closed at the end of the session), a
fresh browser context per page (no IndexedDB, localStorage or HTTP-cache state leaks between
scenarios), and loopback HTTP servers for the page, the model files and the tf.js bundles from
the npm lockfile.  Page errors, console messages and failed requests are recorded
(:mod:`harness.targets.tfjs.page`); an exception thrown by page code comes back as a
:class:`RuntimeFailure` with the browser's text.

The deploy interface: :meth:`TfjsTarget.prepare` runs the real converter
(:mod:`harness.targets.tfjs.convert`) to a graph model by default, or a layers model with
``options={"format": "layers"}``; :meth:`TfjsTarget.load` opens a page that loads the model from
loopback and keeps it (``options={"backend": name}``, a name of the backend table).

The public face of the tf.js target is this module (:class:`TfjsTarget`, and the page it opens,
:class:`TfjsPage` with the :class:`RequestSeen` records of its requests, re-exported here), the
backend table, the converter and the scenarios' helpers (:mod:`harness.targets.tfjs.kit`).
"""

from __future__ import annotations

import base64
import json
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from harness.artifacts import ArtifactCache, library_versions
from harness.counts import count
from harness.errors import HarnessError, NotApplicable, SetupError, UsageError
from harness.loopback import Guard, HeaderRule, LoopbackServer, Route
from harness.paths import NODE_MODULES
from harness.targets.base import (Deployment, EarlyStarts, ModelSource, Prepared, Signature, Target, TensorSpec,
                                  inputs_key)
from harness.targets.tfjs.backends import (CORE, DEFAULT_BACKEND, TfjsBackend, backend_named, backend_names,
                                           browser_flags, lib_mounts, npm_packages)
from harness.export import saved_model_of
from harness.targets.tfjs.convert import GRAPH_ARGS, LAYERS_ARGS, artifact_sizes, run_converter
from harness.targets.tfjs.page import (AWAIT_SLOT_JS, INTERMEDIATES_JS, LOAD_MODEL_JS, SIGNATURE_JS, START_PREDICTS_JS,
                                      TIMED_PREDICT_JS, RequestSeen, TfjsPage, index_html)

if TYPE_CHECKING:
    import numpy as np
    from playwright.sync_api import Browser, BrowserContext, Playwright

CHROMIUM = Path("/usr/bin/chromium")
NODE_TFJS = NODE_MODULES / "@tensorflow"
FORMATS = ("graph", "layers")
OPTIONS = ("format", "backend", "converter_args")  # prepare and load share one options mapping (deploy)
MODEL_PREFIX = "/model/"


def _npm_versions() -> dict[str, str]:
    """The installed version of every npm package the page serves (tf.js and the backends' bundles)."""
    from harness.versions import installed_version

    return {package: installed_version(package) or "missing" for package in npm_packages()}


def _check_options(options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown tfjs option(s) {', '.join(unknown)}: the tfjs target takes {', '.join(OPTIONS)}")
    if options.get("format", "graph") not in FORMATS:
        raise UsageError(f"tfjs option format={options['format']!r} is not one of {', '.join(FORMATS)}")
    backend = options.get("backend", DEFAULT_BACKEND)
    if backend not in backend_names():
        raise UsageError(f"tfjs option backend={backend!r} is not one of {', '.join(backend_names())}")


def _require_bundle(backend: TfjsBackend) -> None:
    """Skip (NotApplicable) a backend whose bundle is not installed, e.g. in a matrix cell's older node_modules."""
    bundle = backend.bundle
    if bundle is not None and bundle.missing():
        raise NotApplicable(f"the tf.js {backend.name} backend is not installed here: {', '.join(bundle.missing())} "
                            f"is missing (add {bundle.package} to package.json and run `npm ci`)")


def _tfjs_dtype(array: "np.ndarray") -> str:
    """The tf.js dtype a numpy input becomes (tf.js has float32, int32, bool and string tensors)."""
    kind = array.dtype.kind
    if kind == "f":
        return "float32"
    if kind in "iu":
        return "int32"
    if kind == "b":
        return "bool"
    if kind == "U":
        return "string"
    raise UsageError(f"an input of numpy dtype {array.dtype} has no tf.js tensor type: pass float, int, bool or str arrays")


def _tensor_specs(found: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(str(t["name"]), str(t["dtype"] or "unknown"),
                            tuple(None if d is None or d < 0 else int(d) for d in (t["shape"] or ())))
                 for t in found)


def _artifact_format(model_dir: Path) -> str:
    """"graph" or "layers", as the converter wrote it in model.json's ``format`` field."""
    written = json.loads((model_dir / "model.json").read_text()).get("format", "layers-model")
    return "graph" if written == "graph-model" else "layers"


class TfjsDeployment(Deployment):
    """A converted model loaded once in its own page (fresh browser context) and kept there.

    :meth:`start_predicts` queues predictions in the page ahead of time, not awaited: several backends'
    pages then predict at once (:meth:`TfjsTarget.side_by_side`), each page one thing after the other.
    A later :meth:`predict` of the same inputs collects the queued result instead of predicting again.
    """

    def __init__(self, target: "TfjsTarget", prepared: Prepared, backend: str) -> None:
        super().__init__(prepared)
        self.backend = backend
        self.predict_seconds: float | None = None  # the last predict as timed inside the page
        self._stack = ExitStack()
        self._slots = 0
        self._queued: dict[str, list[tuple[str, int]]] = {}  # the inputs' key -> (slot, console mark) of each queued
        try:
            self.page: TfjsPage = self._stack.enter_context(
                target.page({MODEL_PREFIX: prepared.artifact}, backend=backend))
            self.format = _artifact_format(prepared.artifact)
            self.page.evaluate(LOAD_MODEL_JS, {"url": MODEL_PREFIX + "model.json", "format": self.format})
        except BaseException:
            self._stack.close()
            raise

    def _slot(self) -> tuple[str, int]:
        """A new slot name for work started in the page, and the console's length now."""
        self._slots += 1
        return f"w{self._slots}", len(self.page.console)

    def start_predicts(self, feeds: "Sequence[Mapping[str, np.ndarray]]") -> None:
        """Queue a prediction of each of ``feeds`` in the page, one after the other and after the work
        queued before, in one call; :meth:`predict` of the same inputs collects each."""
        signature = self.signature()
        queued = []
        for inputs in feeds:
            slot = self._slot()
            queued.append({"slot": slot[0], "arg": {"inputs": self._payload(inputs), "inputNames": signature.input_names(),
                                                    "outputNames": signature.output_names()}})
            self._queued.setdefault(inputs_key(inputs), []).append(slot)
        self.page.evaluate(START_PREDICTS_JS, queued)
        count("predictions started ahead", len(queued))

    def signature_impl(self) -> Signature:
        """The loaded model's inputs and outputs as tf.js reports them in the page."""
        found = self.page.evaluate(SIGNATURE_JS)
        return Signature(_tensor_specs(found["inputs"]), _tensor_specs(found["outputs"]))

    def _payload(self, inputs: "Mapping[str, np.ndarray]") -> dict[str, Any]:
        """``inputs`` as the page scripts take them (checked against the signature's input names)."""
        import numpy as np

        if self.closed:
            raise HarnessError("predict() on a closed tfjs deployment")
        expected = self.signature().input_names()
        if sorted(inputs) != sorted(expected):
            raise UsageError(f"inputs {sorted(inputs)} do not match the model's inputs {expected} "
                             "(see signature())")
        payload = {}
        for name, value in inputs.items():
            array = np.asarray(value)
            dtype = _tfjs_dtype(array)
            payload[name] = {"shape": list(array.shape), "dtype": dtype}
            if dtype in ("float32", "int32"):  # the bytes, as tf.tensor gets them from a typed array: a list of
                # numbers costs Playwright an object per element (seconds for an image batch)
                little = "<f4" if dtype == "float32" else "<i4"
                payload[name]["b64"] = base64.b64encode(np.ascontiguousarray(array, dtype=little).tobytes()).decode()
            else:
                payload[name]["data"] = array.ravel().tolist()
        return payload

    def predict(self, inputs: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
        import numpy as np

        if self.closed:
            raise HarnessError("predict() on a closed tfjs deployment")
        signature = self.signature()
        expected, names = signature.input_names(), signature.output_names()
        queued = self._queued.get(inputs_key(inputs))
        if queued:  # started ahead (side by side with the other pages): its outcome, as it came
            slot, console_mark = queued.pop(0)
            timed = self.page.evaluate(AWAIT_SLOT_JS, slot, timeout_s=300.0, console_since=console_mark,
                                       what=f"a prediction started ahead on the tf.js {self.backend} backend")
        else:
            timed = self.page.evaluate(TIMED_PREDICT_JS, {"inputs": self._payload(inputs), "inputNames": expected,
                                                          "outputNames": names})
        self.predict_seconds = float(timed["seconds"])
        return {name: np.asarray(out["data"], dtype=out["dtype"]).reshape(out["shape"])
                for name, out in zip(names, timed["outputs"])}

    def graph_nodes(self) -> list[tuple[str, str]]:
        """(node name, op) of the graph model's nodes that compute something (no Const, no Placeholder),
        in the order of its ``model.json``."""
        if self.format != "graph":
            raise NotApplicable(f"intermediate tensors are read from a graph model; this is a {self.format} model")
        topology = json.loads((self.prepared.artifact / "model.json").read_text())["modelTopology"]
        return [(str(n["name"]), str(n["op"])) for n in topology.get("node", [])
                if n.get("op") not in ("Const", "Placeholder", "NoOp")]

    def intermediates(self, inputs: "Mapping[str, np.ndarray]", node_names: list[str]) -> "dict[str, np.ndarray]":
        """The tensors of the graph nodes ``node_names`` on ``inputs``, computed on this page's backend
        (tf.js ``executeAsync`` with those nodes as outputs); nodes of other dtypes are left out."""
        import numpy as np

        got = self.page.evaluate(INTERMEDIATES_JS, {"inputs": self._payload(inputs), "nodeNames": node_names},
                                 timeout_s=300.0)
        return {name: np.asarray(out["data"], dtype=out["dtype"]).reshape(out["shape"]) for name, out in got.items()}

    def close_impl(self) -> None:
        self._stack.close()


class TfjsTarget(Target):
    """Headless Chromium with tf.js pages on loopback."""

    name = "tfjs"

    def __init__(self, *, timeout_s: float = 60.0) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self._playwright: Playwright | None = None
        self._browsers: dict[tuple[str, ...], Browser] = {}  # Chromium flags -> the browser launched with them
        #: (artifact, backend) -> the page started ahead by side_by_side (or what its start raised)
        self._ahead: dict[tuple[Path, str], TfjsDeployment | Exception] = {}
        #: the pages open_early opened (by artifact and backend), with the model loaded
        self._early: EarlyStarts[TfjsDeployment] = EarlyStarts()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if not CHROMIUM.exists():
            return f"{CHROMIUM} is missing (Debian package `chromium`; run the README set-up)"
        if CORE.missing():
            return f"{CORE.package} is missing: {', '.join(CORE.missing())} (run the README set-up: `npm ci`)"
        missing = [d for d, v in library_versions("playwright", "tensorflowjs").items() if v == "missing"]
        return f"Python packages not installed: {', '.join(missing)}" if missing else None

    def activate_impl(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        try:
            self.browser(browser_flags(backend_named(DEFAULT_BACKEND)))  # fail here if Chromium cannot start
        except BaseException:
            self.deactivate_impl()
            raise

    def browser(self, flags: tuple[str, ...]) -> "Browser":
        """The browser launched with ``flags`` (launched on first use, then kept for the session)."""
        if self._playwright is None:
            raise HarnessError("the tfjs target is not active: no Playwright to launch a browser with")
        if flags not in self._browsers:
            count("browser launches")
            try:
                self._browsers[flags] = self._playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=list(flags), timeout=60_000)
            except Exception as exc:
                raise SetupError("Chromium did not start", evidence=f"flags: {' '.join(flags)}\n{str(exc)[-2000:]}",
                                 hint="check `chromium --version`; the README set-up installs it") from exc
        return self._browsers[flags]

    def deactivate_impl(self) -> None:
        try:
            self._early.close()
            for browser in self._browsers.values():
                browser.close()
        finally:
            self._browsers.clear()
            if self._playwright is not None:
                self._playwright.stop()
                self._playwright = None

    @contextmanager
    def browser_context(self, **options: Any) -> "Iterator[BrowserContext]":
        """A fresh Playwright browser context on this target's Chromium, closed on exit: for a page
        that is not a tf.js page (e.g. the HTML report).  One Playwright runs per process (its sync
        API refuses a second while the first is live), so tests borrow this one."""
        self.require_active()
        context = self.browser(browser_flags(backend_named(DEFAULT_BACKEND))).new_context(**options)
        try:
            yield context
        finally:
            context.close()

    def versions(self) -> dict[str, str]:
        found = library_versions("tensorflowjs", "playwright", "tensorflow")
        found.update(_npm_versions())
        first = next(iter(self._browsers.values()), None)
        found["chromium"] = first.version if first is not None else "not started"
        return found

    # deploy interface ----------------------------------------------------------------------
    def prepare_impl(self, source: ModelSource, cache: ArtifactCache, options: dict[str, Any]) -> Prepared:
        """Convert ``source`` with ``tensorflowjs_converter`` (cached).

        ``format="graph"`` (default): a SavedModel (a ``.keras`` file exported with
        ``model.export``, an ``.h5`` file saved by tf_keras as a SavedModel) -> tfjs_graph_model.
        ``format="layers"``: an ``.h5`` file (``--input_format=keras``) or a tf.keras SavedModel
        (``--input_format=keras_saved_model``) -> tfjs_layers_model; the converter says itself
        what it cannot read (e.g. a Keras 3 ``.keras`` zip).  ``converter_args`` are appended.
        """
        _check_options(options)
        fmt = str(options.get("format", "graph"))
        extra = [str(a) for a in options.get("converter_args", ())]
        if fmt == "graph" and not extra:
            self._early.raise_prepare_failure(source)  # met by open_early: the same error, not run twice
        notes: dict[str, Any] = {"format": fmt}
        if fmt == "layers":
            args = ["--input_format=keras_saved_model" if source.format == "saved_model" else LAYERS_ARGS[0], *extra]
            converted = run_converter(cache, args, source.path)
        else:
            saved = saved_model_of(cache, source)  # the one export step (gated, cached)
            if saved != source.path:
                notes["saved_model"] = str(saved)
            args = [*GRAPH_ARGS, *extra]
            converted = run_converter(cache, args, saved)
        notes["converter_args"] = args
        return Prepared(self.name, source, converted, artifact_sizes(converted), notes)

    def load_impl(self, prepared: Prepared, options: dict[str, Any]) -> TfjsDeployment:
        """A page on the running browser that loaded the model (``tf.loadGraphModel`` /
        ``tf.loadLayersModel`` from loopback) on ``backend`` (default cpu); closed with ``close()``."""
        _check_options(options)
        backend = str(options.get("backend", DEFAULT_BACKEND))
        ahead = self._ahead.pop((prepared.artifact, backend), None) or self._early.take(prepared.artifact, backend)
        if isinstance(ahead, Exception):
            raise ahead  # its page failed while started ahead: the same error, on its own backend
        if ahead is not None and options.get("format", "graph") == ahead.format:
            return ahead
        if ahead is not None:
            ahead.close()
        return TfjsDeployment(self, prepared, backend)

    def open_early(self, source: ModelSource, cache: ArtifactCache, backends: Sequence[str],
                   ready: Callable[[], bool]) -> None:
        """Before the check has its inputs (while its model loads for the reference): convert
        ``source`` to a graph model and open a page on each of ``backends`` that loads it, one after
        the other, until ``ready()`` (the check's paths can start: :meth:`side_by_side` opens the
        rest as it queues their predictions).  A :meth:`load` or :meth:`side_by_side` of that
        artifact and backend takes the page; what failed is raised again there (a conversion's
        failure by :meth:`prepare` of the same file)."""
        self._early.start(self, source, cache, backends, ready,
                          lambda prepared, backend: TfjsDeployment(self, prepared, backend), "pages opened early")

    @contextmanager
    def side_by_side(self, prepared: Prepared,
                     plans: "Sequence[tuple[str, Callable[[TfjsDeployment], Sequence[Mapping[str, np.ndarray]]]]]",
                     ) -> Iterator[None]:
        """Load ``prepared`` on several backends at once, each in its own page, and queue in each page
        the predictions its plan lists (``plans``: backend -> the feeds, given the loaded deployment).

        Playwright's sync API stays in this thread: each page is opened, loads the model and gets its
        predictions queued in one call (they run there one after the other, without being awaited),
        then the next page opens while it computes; no page is waited for before all are.  Inside the
        block, :meth:`load` of a planned backend returns its page and its predictions collect the
        queued results.  A failure of one page (start, load, feeds) is kept and raised by its own
        :meth:`load`: that backend's finding only.  Pages not loaded in the block are closed at its end.
        """
        started: dict[str, TfjsDeployment | Exception] = {}
        try:
            for backend, feeds in plans:  # each page computes while the next one opens
                deployment: TfjsDeployment | None = None
                try:
                    deployment = self._early.take(prepared.artifact, backend) or TfjsDeployment(self, prepared, backend)
                    started[backend] = deployment
                    deployment.start_predicts(feeds(deployment))
                except Exception as exc:  # noqa: BLE001 - raised again by this backend's load()
                    if deployment is not None:
                        deployment.close()
                    started[backend] = exc
            count("pages loading side by side", sum(isinstance(d, TfjsDeployment) for d in started.values()))
            self._ahead.update({(prepared.artifact, backend): d for backend, d in started.items()})
            yield
        finally:
            for backend, outcome in started.items():
                self._ahead.pop((prepared.artifact, backend), None)
                if isinstance(outcome, TfjsDeployment):
                    outcome.close()

    # pages and servers ---------------------------------------------------------------------
    def serve(self, mounts: Mapping[str, Path] | None = None, *, headers: Mapping[str, str] | HeaderRule | None = None,
              files: Mapping[str, bytes] | None = None, guard: Guard | None = None,
              routes: Mapping[str, Route] | None = None) -> LoopbackServer:
        """A loopback server (use it in ``with`` / ``run.enter``) serving ``mounts`` and ``files``.

        Use it for a second origin (CORS), a model server with its own cache headers, or an API.
        """
        return LoopbackServer(mounts or {}, headers=headers, files=files, guard=guard, routes=routes)

    @contextmanager
    def page(self, mounts: Mapping[str, Path] | None = None, *, backend: str | None = DEFAULT_BACKEND,
             html: str | None = None, headers: Mapping[str, str] | HeaderRule | None = None,
             observe: Callable[[str], Any] | None = None, goto: bool = True,
             files: Mapping[str, bytes] | None = None, routes: Mapping[str, Route] | None = None,
             guard: Guard | None = None, browser_of: str | None = None) -> Iterator[TfjsPage]:
        """A fresh context and page on a new loopback server serving the tf.js page.

        ``mounts`` are extra URL prefixes (e.g. ``{"/model/": converted_dir}``); ``html``
        replaces the default page (which loads tf.js and the bundles of the backends of its
        browser); ``backend`` is set after load (None leaves tf.js's default); the page opens in
        the browser of ``browser_of`` (a backend name; default ``backend``'s, or cpu's when
        ``backend`` is None); ``files`` are extra exact paths, ``routes`` POST handlers and ``guard``
        an access rule of the page's own origin.  Every call gets a new browser context, so no
        IndexedDB, localStorage, cookie or HTTP-cache state crosses from one page to the next.
        """
        self.require_active()
        home = backend_named(browser_of or backend or DEFAULT_BACKEND)
        if backend is not None:
            _require_bundle(backend_named(backend))  # an unknown or missing backend fails before a browser starts
        flags = browser_flags(home)
        page_files = {"/index.html": (html if html is not None else index_html(home)).encode(),
                      "/favicon.ico": b"", **(files or {})}
        with LoopbackServer({**lib_mounts(), **(mounts or {})}, headers=headers, files=page_files,
                            routes=routes, guard=guard) as server:
            context = self.browser(flags).new_context()
            try:
                context.set_default_timeout(self.timeout_s * 1000)
                page = TfjsPage(context.new_page(), server, observe, flags)
                if goto:
                    page.goto("/index.html")
                    if backend is not None:
                        page.use_backend(backend)
                yield page
            finally:
                context.close()


__all__ = ["RequestSeen", "TfjsDeployment", "TfjsPage", "TfjsTarget"]
