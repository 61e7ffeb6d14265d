"""Spare serving containers: a server started ahead of time, handed to one variant, then removed.

In a warm catalog a server variant spends most of its time waiting for its container's server to
start (Python and TensorFlow import inside the container, about 2 s of the 3 s a variant takes);
loading the model itself takes a few hundredths of a second.  A :class:`SparePool` keeps one
**spare** per target instance (per pytest-xdist worker): a container of the serving image started
in the background with an empty model config (``model_config_list {}``), so its start overlaps
the previous variant's work.  A variant that serves with the default flags takes the spare; its
model is laid out under the spare's ``/models`` mount (hard links) and added with TF Serving's
``ModelService/HandleReloadConfigRequest``, the same model manager path the server takes for a
config file.  The next spare starts at once.

Isolation.  A spare is used by **one** variant and removed when that variant ends; no container
ever serves two variants.  (Reusing one server across variants would leak state: both TF Serving
and the compatible server keep the version states of a model removed from the config, so
``GET /v1/models/model`` of the next variant would list the previous variant's versions, and a
version whose load failed is never loaded again.)  Before the reload the spare must answer
``GET /v1/models/<name>`` with 404 (it holds no model); otherwise the hand-over is refused.

Who gets a spare (:func:`spare_eligible`): the compatible server in a container, default image and
TF version, no extra flags, environment, mounted files, extra models or command, ``wait="available"``
for the served model itself.  Everything else (batching, config files, env vars, a model the
server must fail to find, a symptom seen at start-up) gets a fresh container as before.  A model
whose load fails in the spare is never reported from the spare: the spare is removed and the
variant gets a fresh container, so a load failure always comes from a server's own start-up, as
it did before.  Spares are opt-in, ``PITFALLS_SERVING_SPARES=1``: on this project's 2-core machine
they did not make the warm catalog faster (see :func:`spares_enabled`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.environments.serving_image import ServingImage
    from harness.targets.tfserving.container import ServingContainer

SPARE_CONFIG = "/spare/models.config"
EMPTY_CONFIG = "model_config_list {}\n"


def spares_enabled() -> bool:
    """``PITFALLS_SERVING_SPARES=1`` (opt-in: on a quiet 2-core machine the warm catalog took 157.4 s
    with spares and 151.7 s without, the spare's start competing for the CPU with the variant it
    should overlap; a machine with cores to spare may gain)."""
    return os.environ.get("PITFALLS_SERVING_SPARES", "0").strip().lower() in ("1", "true", "yes", "on")


def spare_eligible(*, implementation: str, model_dir: Path | None, models: Mapping[str, Path] | None,
                   files: Mapping[Path, str] | None, env: Mapping[str, str] | None, args: Sequence[str],
                   command: Sequence[str] | None, wait: str, ready_model: str | None, model_name: str,
                   tf_version: str, default_tf_version: str) -> bool:
    """Whether a ``serve(...)`` call may take a spare: the default flags and one model, awaited as available."""
    from harness.environments.serving_image import COMPAT_IMPLEMENTATION

    return (implementation == COMPAT_IMPLEMENTATION and model_dir is not None and not models and not files
            and not env and not args and command is None and wait == "available"
            and ready_model in (None, model_name) and tf_version == default_tf_version)


def link_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` with hard links where the file system allows (copies elsewhere)."""
    from harness.targets.tfserving.kit import link_or_copy

    shutil.copytree(source, target, copy_function=link_or_copy)


class Spare:
    """One container of the serving image, started with an empty model config, for one variant."""

    def __init__(self, image: "ServingImage") -> None:
        from harness.targets.tfserving.container import ServingContainer

        self.root = Path(tempfile.mkdtemp(prefix="pitfalls-spare-"))
        self.root.chmod(0o755)  # mounted into the container, read by its user
        self.models = self.root / "models"
        self.models.mkdir()
        self.models.chmod(0o755)
        (self.root / "models.config").write_text(EMPTY_CONFIG)
        (self.root / "models.config").chmod(0o644)
        self.image = image
        self.container: ServingContainer = ServingContainer(
            image, files={self.models: "/models", self.root / "models.config": SPARE_CONFIG},
            args=[f"--model_config_file={SPARE_CONFIG}"], wait=False)
        self.used = False
        self._entered = False

    def start(self, timeout: float = 180.0) -> "Spare":
        """Run the container and wait until its REST port answers (the server has started)."""
        from harness.waiting import HttpReady

        try:
            self.container.__enter__()
        except BaseException:
            self.close()
            raise
        self._entered = True

        def exited() -> str | None:
            assert self.container._container is not None
            self.container._container.reload()
            state = self.container._container.attrs.get("State", {})
            return (f"container exited with code {state.get('ExitCode')}"
                    if state.get("Status") in ("exited", "dead") else None)

        try:
            HttpReady(f"{self.container.rest_url}/v1/models/model", lambda status, body: True, timeout=timeout,
                      poll_interval=0.05, abort=exited, logs=self.container.logs, log_label="spare container log").wait()
        except BaseException:  # also a WaitTimeout: never leave a spare behind
            self.close()
            raise
        return self

    def hand_over(self, model_name: str, model_dir: Path, timeout: float) -> bool:
        """Serve ``model_dir`` as ``model_name``; True once a version is AVAILABLE.

        False (the spare is then useless, close it) when the load fails or the server exits: the
        caller starts a fresh container, whose own start-up reports the failure.
        """
        import grpc
        from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

        from harness.targets.tfserving.client import http_request
        from harness.targets.tfserving.container import load_failure_in_log
        from harness.waiting import ModelAvailable

        if self.used:
            raise HarnessError("a spare serving container was handed over twice",
                               hint="a spare serves one variant; this is a harness bug")
        self.used = True
        before = http_request("GET", f"{self.container.rest_url}/v1/models/{model_name}", timeout=10)
        if before.status != 404:
            raise HarnessError(f"the spare serving container already knows model {model_name!r}",
                               evidence=f"HTTP {before.status}: {before.text[:2000]}",
                               hint="a spare must hold no model; this is a harness bug")
        link_tree(model_dir, self.models / model_name)
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add()
        entry.name, entry.base_path, entry.model_platform = model_name, f"/models/{model_name}", "tensorflow"
        deadline = time.monotonic() + timeout
        with grpc.insecure_channel(self.container.grpc_target) as channel:
            future = model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest.future(
                request, timeout=timeout)
            while not future.done():
                if load_failure_in_log(self.container.logs(), model_name) is not None or time.monotonic() > deadline:
                    future.cancel()
                    return False
                time.sleep(0.02)
            try:
                reply = future.result()
            except grpc.RpcError:
                return False
        if reply.status.error_code != 0:
            return False
        status = http_request("GET", f"{self.container.rest_url}/v1/models/{model_name}", timeout=10)
        try:
            return ModelAvailable(self.image.implementation, fail_on_error=False)(status.status, status.text)
        except Exception:  # noqa: BLE001 - any doubt about the spare's state: a fresh container instead
            return False

    def close(self) -> None:
        try:
            if self._entered:
                self._entered = False
                self.container.__exit__(None, None, None)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class SparePool:
    """At most one spare per image, started in a background thread; each spare is taken once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pitfalls-spare")
        self._pending: dict[str, Future[Spare]] = {}
        self.started = 0
        self.taken = 0

    def _start(self, image: "ServingImage") -> None:
        spare = Spare(image)
        self._pending[image.tag] = self._pool.submit(spare.start)
        self.started += 1

    def take(self, image: "ServingImage") -> Spare | None:
        """The spare for ``image`` once it is up (None if there is none yet, or it failed to start);
        the next spare starts in the background either way."""
        with self._lock:
            pending = self._pending.pop(image.tag, None)
            self._start(image)
        if pending is None:
            return None
        try:
            spare = pending.result()
        except Exception:  # noqa: BLE001 - a spare that failed to start: the variant starts its own
            return None
        self.taken += 1
        return spare

    def close(self) -> None:
        """Remove every spare not handed over (waits for those still starting)."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for future in pending:
            try:
                future.result().close()
            except Exception:  # noqa: BLE001 - it failed to start; Spare.start removed it
                pass
        self._pool.shutdown(wait=True)
