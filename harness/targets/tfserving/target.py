"""The ``tfserving`` target: a SavedModel served over TF Serving's REST and gRPC APIs.

Two ways to run the server, one interface (:class:`~harness.targets.tfserving.client.Server`):

* **container** (the default wherever a Docker engine answers): ``harness.environments.serving_image`` builds the
  serving image locally (never pulled) and :class:`harness.targets.tfserving.container.ServingContainer` runs it with
  ports on 127.0.0.1.  The image runs the real ``tensorflow/serving`` when that image is present
  locally, else our **TF Serving-compatible server** (``containers/tfserving-compat``), which
  executes SavedModels with TensorFlow's own runtime.  A compatible server that a fresh container
  would start alike (one model, the image's environment) is instead forked as a new process in
  one container per worker (:mod:`harness.targets.tfserving.forked`; ``PITFALLS_SERVING_FORK=0``
  turns that off).
* **subprocess** (:mod:`harness.targets.tfserving.host`): the TF Serving-compatible server as a
  plain process of the host venv on 127.0.0.1, used when no engine runs
  (``PITFALLS_SERVING=subprocess`` forces it).  Scenarios that need container features (mounted
  config files, other TF versions) skip there with the reason.

The deploy interface: :meth:`TfservingTarget.prepare` turns a ``.keras`` file (``model.export``),
an ``.h5`` file (tf_keras, ``save_format="tf"``) or a SavedModel directory (as is) into a
SavedModel with a ``serving_default`` signature; :meth:`TfservingTarget.load` serves it as
version 1 and returns a :class:`ServedModel` that reads its signature from the server's metadata
and predicts with the REST columnar format.  Every result records which implementation and mode ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.artifacts import library_versions
from harness.counts import count
from harness.errors import HarnessError, NotApplicable, RuntimeFailure, UsageError, WaitTimeout
from harness.targets.base import Deployment, EarlyStarts, ModelSource, Prepared, Signature, Target, inputs_key
from harness.targets.tfserving.client import Server, signature_defs, signature_of, wait_listening
from harness.targets.tfserving.host import COMPAT_DIR, serve_on_host
from harness.targets.tfserving.layout import model_base_path
from harness.targets.tfserving.forked import ForkedServers, fork_eligible, forking_enabled

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache

MODES = ("auto", "container", "subprocess")
#: What ``serve`` waits for before it yields the server (see :meth:`TfservingTarget.serve`).
ServeWait = Literal["available", "listening", "started"]
# the TF inside the serving image; a version-matrix cell sets $PITFALLS_SERVING_TF to its own TF
DEFAULT_TF_VERSION = os.environ.get("PITFALLS_SERVING_TF") or "2.19.0"


class TfservingTarget(Target):
    """TF Serving's API, in a container (or a host subprocess where no engine runs)."""

    name = "tfserving"

    def __init__(self, mode: str | None = None) -> None:
        super().__init__()
        self.requested_mode = mode or os.environ.get("PITFALLS_SERVING", "auto")
        if self.requested_mode not in MODES:
            raise HarnessError(f"PITFALLS_SERVING={self.requested_mode!r} is not a serving mode",
                               hint=f"use one of {MODES}")
        from harness.environments.serving_image import COMPAT_IMPLEMENTATION, REAL_IMPLEMENTATION

        self.implementation = os.environ.get("PITFALLS_SERVING_IMPLEMENTATION") or COMPAT_IMPLEMENTATION
        if self.implementation not in (COMPAT_IMPLEMENTATION, REAL_IMPLEMENTATION):
            raise HarnessError(f"PITFALLS_SERVING_IMPLEMENTATION={self.implementation!r} is not a serving implementation",
                               hint=f"use {COMPAT_IMPLEMENTATION!r} (the default) or {REAL_IMPLEMENTATION!r}")
        self.mode = "subprocess"
        self.engine_reason: str | None = None
        self.deployments: list[ServedModel] = []
        self.forked: ForkedServers | None = None
        self.served_fresh = 0
        self.served_forked = 0
        #: the models serve_early served (by artifact and variant)
        self._early: EarlyStarts[ServedModel] = EarlyStarts()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = [d for d, v in library_versions("tensorflow", "tensorflow-serving-api").items() if v == "missing"]
        if missing:
            return f"Python packages not installed: {', '.join(missing)} (run the README set-up)"
        if not (COMPAT_DIR / "tfs_compat" / "__main__.py").is_file():
            return f"the TF Serving-compatible server is missing at {COMPAT_DIR}"
        return None

    def activate_impl(self) -> None:
        from harness.environments.engine import engine_unavailable_reason
        from harness.environments.serving_image import REAL_IMPLEMENTATION

        self.engine_reason = engine_unavailable_reason() if self.requested_mode != "subprocess" else "not asked for"
        if self.requested_mode == "container" and self.engine_reason:
            raise HarnessError(f"PITFALLS_SERVING=container but no Docker engine answers: {self.engine_reason}",
                               hint="run scripts/setup-docker.sh as root")
        self.mode = "subprocess" if self.engine_reason else "container"
        if self.implementation == REAL_IMPLEMENTATION and self.mode != "container":
            raise HarnessError(f"PITFALLS_SERVING_IMPLEMENTATION={self.implementation} needs a container, "
                               f"but none can run here ({self.engine_reason})",
                               hint="run scripts/setup-docker.sh as root and `docker load` the image "
                                    "(see containers/serving-real/README.md)")

    def deactivate_impl(self) -> None:
        try:
            self._early.close()
            while self.deployments:
                self.deployments.pop().close()
            if self.forked is not None:
                self.forked.close()
                self.forked = None
        finally:
            if self.mode == "container":
                from harness.targets.tfserving.container import remove_leftover_containers

                remove_leftover_containers()

    def warm_up(self) -> None:
        """Start the fork container of the default image (the serving image built if need be), whose
        TensorFlow import is most of a first server's start, so that the first :meth:`load` only forks."""
        from harness.environments.serving_image import COMPAT_IMPLEMENTATION, ensure_serving_image

        if self.mode != "container" or not forking_enabled() or self.implementation != COMPAT_IMPLEMENTATION:
            return
        image = ensure_serving_image(DEFAULT_TF_VERSION, implementation=self.implementation)
        if self.forked is None:
            self.forked = ForkedServers()
        self.forked.available(image)  # starts it; a failure is kept in forked.broken and said by serve()

    def versions(self) -> dict[str, str]:
        found = library_versions("tensorflow", "tensorflow-serving-api", "docker")
        found["serving_mode"] = self.mode
        found["serving_implementation"] = self.implementation
        found["serving_processes"] = self.serving_processes()
        return found

    def serving_processes(self) -> str:
        """How this instance starts its servers (see :mod:`harness.targets.tfserving.forked`)."""
        from harness.environments.serving_image import COMPAT_IMPLEMENTATION

        if self.mode != "container":
            return "a host process per server"
        if self.forked is not None and self.forked.broken:
            return f"a container per server (the fork server failed: {self.forked.broken})"
        if forking_enabled() and self.implementation == COMPAT_IMPLEMENTATION:
            return "forked in one container per worker where eligible, else a container per server"
        return "a container per server"

    def require_container(self, why: str) -> None:
        """Skip (with the reason) when this scenario needs a container but none can run here."""
        if self.mode != "container":
            raise NotApplicable(f"{why} needs a Docker engine, and none answers here ({self.engine_reason})")

    # serving -----------------------------------------------------------------------------
    @contextmanager
    def serve(self, *, model_name: str = "model", model_dir: Path | None = None,
              models: Mapping[str, Path] | None = None, files: Mapping[Path, str] | None = None,
              env: Mapping[str, str] | None = None, args: Sequence[str] = (), wait: ServeWait = "available",
              ready_model: str | None = None, ready_timeout: float = 180.0, tf_version: str = DEFAULT_TF_VERSION,
              fail_on_load_error: bool = True, command: Sequence[str] | None = None,
              variant: str | None = None) -> Iterator[Server]:
        """Start a server for ``model_dir`` (a directory of numbered version subdirectories).

        ``wait`` is ``"available"`` (a version of ``ready_model`` is AVAILABLE), ``"listening"``
        (the REST port answers, whatever it says) or ``"started"`` (the process or container runs;
        TF Serving opens its ports only after the initial model load, so this is how a server that
        never loads is observed, through :meth:`Server.raise_from_log`).

        In a container ``model_dir`` is mounted at ``/models/<model_name>``, ``models`` at
        ``/models/<name>``, ``files`` at the given container paths; ``command`` replaces the image's
        entrypoint and flags (the engine's own error, e.g. an executable not found, is raised as
        :class:`RuntimeFailure` of runtime ``docker``).  A call :func:`~harness.targets.tfserving.forked.fork_eligible`
        accepts runs as a forked server process in this worker's fork container instead, with
        ``model_dir`` linked at ``/models/<model_name>``.  The server is stopped (and its container
        removed) when the block ends, whatever happens.

        ``variant`` (a name of :data:`~harness.targets.tfserving.variants.VARIANTS`, default ``rest``)
        adds its server flags before ``args``, needs a container when it mounts files (the caller
        passes them in ``files`` at the variant's paths) and keeps the server out of the fork
        container when it says so.
        """
        from harness.targets.tfserving.variants import DEFAULT_VARIANT, variant_named

        self.require_active()
        from harness.counts import count

        count("servers started")
        chosen = variant_named(variant or DEFAULT_VARIANT)
        if chosen.needs_container:
            self.require_container(f"the serving variant {chosen.name} ({chosen.summary})")
        args = (*chosen.args, *args)
        if wait not in ("available", "listening", "started"):
            raise HarnessError(f"serve(wait={wait!r}) is not a wait mode",
                               hint="use 'available', 'listening' or 'started'")
        if self.mode == "container":
            from harness.environments.serving_image import ensure_serving_image
            from harness.targets.tfserving.container import ServingContainer, published_ports

            image = ensure_serving_image(tf_version, implementation=self.implementation)
            if chosen.fork and forking_enabled() and fork_eligible(
                    implementation=self.implementation, model_dir=model_dir, models=models, files=files, env=env,
                    command=command, ready_model=ready_model, model_name=model_name, tf_version=tf_version,
                    default_tf_version=DEFAULT_TF_VERSION):
                assert model_dir is not None
                if self.forked is None:
                    self.forked = ForkedServers()
                if self.forked.available(image):  # else (a second server at once, or no fork server) a fresh one
                    self.served_forked += 1
                    with self.forked.serve(image, model_name=model_name, model_dir=model_dir, args=args, wait=wait,
                                           ready_model=ready_model, ready_timeout=ready_timeout,
                                           fail_on_load_error=fail_on_load_error) as server:
                        yield server
                    return
            self.served_fresh += 1
            count("serving containers started")
            container = ServingContainer(image, model_name=model_name, model_dir=model_dir, models=models,
                                         files={path: target for path, target in (files or {}).items()}, env=env, args=args, command=command,
                                         wait=wait == "available", ready_model=ready_model,
                                         ready_timeout=ready_timeout, fail_on_load_error=fail_on_load_error)
            with _engine_errors_raised(container.name), container as c:
                server = Server(c.rest_url, c.grpc_target, f"{image.implementation} (container {image.tag})",
                                "container", model_name, c.logs, published_ports(c.container_id))
                if wait == "listening":
                    wait_listening(server, ready_timeout)
                yield server
            return
        if models or files or command or tf_version != DEFAULT_TF_VERSION:
            raise NotApplicable("this scenario mounts files or needs another TF version: it needs a Docker "
                                f"engine, and none answers here ({self.engine_reason})")
        with serve_on_host(model_name, model_dir, env or {}, args, wait, ready_model, ready_timeout,
                           fail_on_load_error) as server:
            yield server

    # deploy interface --------------------------------------------------------------------
    def prepare_impl(self, source: ModelSource, cache: "ArtifactCache", options: dict[str, Any]) -> Prepared:
        """A SavedModel with a ``serving_default`` signature (:func:`harness.export.saved_model_of`:
        gated, cached unless given as one)."""
        from harness.export import saved_model_of

        if not options:
            self._early.raise_prepare_failure(source)  # met by serve_early: the same error, not run twice
        if source.format == "saved_model":
            return Prepared(self.name, source, source.path, saved_model_sizes(source.path), {"export": "as given"})
        recipe = "keras.Model.export" if source.format == "keras" else "tf_keras save_format=tf"
        artifact = saved_model_of(cache, source)
        return Prepared(self.name, source, artifact, saved_model_sizes(artifact), {"export": recipe})

    def serve_early(self, source: ModelSource, cache: "ArtifactCache", variants: Sequence[str],
                    ready: Callable[[], bool]) -> None:
        """Before the check has its inputs (while its model loads for the reference): export ``source``
        and serve it once per REST variant of ``variants`` (as :meth:`load` with only ``variant`` as
        option would), until ``ready()``.  That load of the same artifact takes the served model;
        what failed is raised again there (an export's failure by :meth:`prepare` of the same file)."""
        def serve(prepared: Prepared, variant: str) -> ServedModel:
            served = self.load_impl(prepared, {"variant": variant})
            assert isinstance(served, ServedModel)
            return served

        self._early.start(self, source, cache, variants, ready, serve, "models served early")

    def load_impl(self, prepared: Prepared, options: dict[str, Any]) -> Deployment:
        """Serve ``prepared.artifact`` as version 1 of ``options["model_name"]`` (default ``model``)."""
        import shutil
        import tempfile

        from harness.environments.ownership import run_work_dir
        from harness.targets.tfserving.variants import DEFAULT_VARIANT, variant_named

        unknown = sorted(set(options) - {"model_name", "tf_version", "variant"})
        if unknown:
            raise UsageError(f"unknown tfserving load option(s) {', '.join(unknown)}: use model_name, tf_version, variant")
        model_name = str(options.get("model_name", "model"))
        variant = variant_named(str(options.get("variant", DEFAULT_VARIANT)))
        if variant.protocol != "rest" or variant.needs_container:
            raise UsageError(f"tfserving load option variant={variant.name!r}: load serves REST variants that mount "
                             "no file; use target.serve(variant=...) for the others")
        early = self._early.take(prepared.artifact, variant.name) if set(options) <= {"variant"} else None
        if early is not None and not early.closed:
            return early

        # inside this owner's work directory: the only one a container of this run may mount
        workdir = Path(tempfile.mkdtemp(prefix="pitfalls-tfserving-", dir=run_work_dir()))
        stack = ExitStack()
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        try:
            base = model_base_path(workdir, {1: prepared.artifact}, name=model_name, hard_links=True)
            server = stack.enter_context(self.serve(model_name=model_name, model_dir=base, variant=variant.name,
                                                    tf_version=str(options.get("tf_version", DEFAULT_TF_VERSION))))
        except BaseException:
            stack.close()
            raise
        deployment = ServedModel(prepared, server, stack)
        self.deployments = [d for d in self.deployments if not d.closed] + [deployment]  # closed with the target
        return deployment


def saved_model_sizes(saved_model_dir: Path) -> dict[str, int]:
    """Bytes of the graph (``saved_model.pb``/``.pbtxt``) and of the ``variables/`` checkpoint."""
    graph = next((saved_model_dir / n for n in ("saved_model.pb", "saved_model.pbtxt")
                  if (saved_model_dir / n).is_file()), None)
    variables = saved_model_dir / "variables"
    return {"saved_model.pb": graph.stat().st_size if graph else 0,
            "variables": sum(f.stat().st_size for f in variables.rglob("*") if f.is_file()) if variables.is_dir() else 0}


class ServedModel(Deployment):
    """A prepared SavedModel served as version 1 of a model; the signature is the server's."""

    def __init__(self, prepared: Prepared, server: Server, stack: ExitStack) -> None:
        super().__init__(prepared)
        self.server = server
        self._stack = stack
        self.predict_seconds: float | None = None  # the last predict's request, as its own thread timed it
        self._pool: ThreadPoolExecutor | None = None
        self._queued: dict[str, list[Future[tuple[dict[str, np.ndarray], float]]]] = {}

    def signature_impl(self) -> Signature:
        """``serving_default`` as ``GET /v1/models/<name>/metadata`` reports it."""
        defs = signature_defs(self.server)
        if "serving_default" not in defs:
            raise UsageError(f"the served model has no serving_default signature (it has: "
                             f"{', '.join(sorted(defs)) or 'none'}): export it with model.export(dir), or "
                             "name it in tf.saved_model.save(obj, dir, signatures={'serving_default': fn})")
        return signature_of(defs["serving_default"])

    def start_predict(self, inputs: "Mapping[str, np.ndarray]") -> None:
        """Send the request of ``inputs`` now, in a thread of its own (side by side with the others
        started so); :meth:`predict` of the same inputs collects its reply (or raises its error)."""
        if self.closed:
            raise HarnessError("start_predict() on a closed tfserving deployment")
        self.signature()  # asked here, once, not by the threads at once
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=REQUESTS_AT_ONCE, thread_name_prefix="pitfalls-request")
        self._queued.setdefault(inputs_key(inputs), []).append(self._pool.submit(self._timed_predict, dict(inputs)))
        count("requests sent side by side")

    def _timed_predict(self, inputs: "Mapping[str, np.ndarray]") -> "tuple[dict[str, np.ndarray], float]":
        started = time.perf_counter()
        outputs = self._predict(inputs)
        return outputs, time.perf_counter() - started

    def predict(self, inputs: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
        """POST the columnar format ``{"inputs": {name: list}}``; outputs by the signature's names (the
        reply of the same inputs' request when :meth:`start_predict` sent it already)."""
        queued = self._queued.get(inputs_key(inputs))
        if queued:
            request = queued.pop(0)
            try:
                outputs, self.predict_seconds = request.result(timeout=REQUEST_WAIT_S)
            except FutureTimeout:
                raise WaitTimeout(f"a predict request sent side by side to {self.server.rest_url} did not answer "
                                  f"within {REQUEST_WAIT_S:.0f}s", evidence=self.server.logs(40),
                                  hint="the server is overloaded or stuck; see its log") from None
            return outputs
        outputs, self.predict_seconds = self._timed_predict(inputs)
        return outputs

    def _predict(self, inputs: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
        import numpy as np

        signature = self.signature()
        reply = self.server.predict({"inputs": {name: np.asarray(value).tolist() for name, value in inputs.items()}})
        outputs = reply["outputs"]
        if not isinstance(outputs, dict):  # one output: TF Serving's columnar reply leaves out its name
            if len(signature.outputs) != 1:
                raise HarnessError(f"an unnamed columnar reply from a signature with {len(signature.outputs)} "
                                   "outputs", evidence=str(reply)[:2000])
            outputs = {signature.outputs[0].name: outputs}
        dtypes = {t.name: t.dtype for t in signature.outputs}
        return {name: np.asarray(value, dtype=dtypes.get(name) if dtypes.get(name) != "object" else None)
                for name, value in outputs.items()}

    def close_impl(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._stack.close()


#: predict requests one served model gets side by side (:meth:`ServedModel.start_predict`)
REQUESTS_AT_ONCE = 4
#: how long :meth:`ServedModel.predict` waits for a request sent side by side (each has its own HTTP timeout)
REQUEST_WAIT_S = 300.0


@contextmanager
def _engine_errors_raised(container_name: str) -> Iterator[None]:
    """The engine's refusal to run a container becomes the ``docker`` runtime's error.

    A container that was created but could not start is not known to ``ServingContainer``;
    it is removed here by name.
    """
    import docker.errors

    try:
        yield
    except docker.errors.APIError as exc:
        from harness.environments.engine import docker_client

        client = docker_client()
        try:
            for leftover in client.containers.list(all=True, filters={"name": container_name}, ignore_removed=True):
                leftover.remove(force=True, v=True)
        finally:
            client.close()
        raise RuntimeFailure("docker", str(exc.explanation or exc), kind=type(exc).__name__,
                             source="Docker engine API reply") from exc
