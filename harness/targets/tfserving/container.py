"""The serving container: a serving image run as a context manager (testcontainers style).

:class:`ServingContainer` publishes ports on 127.0.0.1 only, awaits readiness with
:class:`harness.waiting.HttpReady` and :class:`harness.waiting.ModelAvailable`, and always removes
the container on exit.  Each container is labelled ``pitfalls=1``, ``pitfalls.owner=<random owner
id>`` and ``pitfalls.pid=<owner pid>`` (for humans; :mod:`harness.environments.ownership`); the
owner's watchdog (:mod:`harness.environments.reaper`, started with the first container) removes
them if the owner is killed before its ``__exit__`` runs, and :func:`remove_leftover_containers`
removes those of owners proven gone (their lock is free), never by pid.

Confinement: every container runs as an unprivileged user (:func:`~harness.environments.ownership.container_user`),
with all capabilities dropped, ``no-new-privileges``, a memory limit (:data:`MEMORY_LIMIT`) and a
pids limit (:data:`PIDS_LIMIT`); it mounts only the directories it is given, read-only, never the
host's temporary directory itself or ``/``; its ports are published on 127.0.0.1 at ports the engine
picks.  The docker SDK is imported inside functions only.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harness.environments.build import tail
from harness.environments.engine import docker_client
from harness.environments.ownership import (OWNER_ID_LABEL, container_user, current_owner, open_to_container,
                                            owner_state)
from harness.environments.reaper import CONTAINER_LABEL, ensure_reaper
from harness.environments.serving_image import ServingImage, implementation_of
from harness.errors import HarnessError, RuntimeFailure, SetupError, WaitTimeout
from harness.waiting import HttpReady, ModelAvailable

if TYPE_CHECKING:  # pragma: no cover - typing only
    import docker
    from docker.models.containers import Container

GRPC_PORT = 8500
REST_PORT = 8501
#: limits of every container the harness starts: a model server of the catalog needs well under 1 GiB
#: and a few dozen threads (TensorFlow's pools); a runaway one stops here, not in the host's OOM killer
MEMORY_LIMIT = "3g"
PIDS_LIMIT = 1024

LOAD_FAILED = re.compile(
    r"Loading servable: \{name: (?P<name>\S+) version: \d+\} failed: (?P<code>[A-Z_]+): "
    # the message, and the lines after it that carry no log prefix of their own (TF Serving's
    # "Specified file path does not appear to contain a SavedModel bundle ...\nSpecified file path: ..."),
    # up to the server's own exit line ("Failed to start server. Error: ..." repeats the load error as
    # the start status: whether it is in the log yet when the log is read depends on timing alone)
    r"(?P<message>.*(?:\n(?!\d{4}-\d\d-\d\d[ T]|[IWEF]\d{4} |\[|\s*$|Failed to start server\. )[^\n]*)*)",
    re.MULTILINE)


def load_failure_in_log(log: str, model_name: str) -> tuple[str, str] | None:
    """``(error code, message)`` of the first failed load of ``model_name`` in a server log.

    Both tensorflow/serving and the compatible server log
    ``Loading servable: {name: N version: V} failed: CODE: message`` when a version fails to
    load (a message of several lines continues on lines without a log prefix); the server does not open its REST port while it retries the first load, so the log is
    where the runtime's own error text shows first.
    """
    for match in LOAD_FAILED.finditer(log):
        if match["name"] == model_name:
            return match["code"], match["message"].rstrip()
    return None


def readiness_abort(exited: Callable[[], str | None], logs: Callable[[], str], ready_model: str,
                    implementation: str, fail_on_load_error: bool, log_label: str) -> Callable[[], str | None]:
    """The ``abort`` of a readiness wait, for every server mode (container, forked, host subprocess).

    Asked before each poll: raise the server's own load error of ``ready_model`` (a
    :class:`RuntimeFailure` with its text, when ``fail_on_load_error``), else return why the server
    has exited (``exited()``), or None while it runs.  The exit is asked first and the log read
    after it: a server that logs its load error and exits between the two reads would otherwise be
    seen exited with a log read too early."""

    def abort() -> str | None:
        gone = exited()
        if fail_on_load_error:
            failure = load_failure_in_log(logs(), ready_model)
            if failure is not None:
                raise RuntimeFailure(implementation, failure[1], kind=failure[0],
                                     source=f"{log_label}: 'Loading servable ... failed'")
        return gone

    return abort


def _host_port(container: Container, port: int) -> int:
    for _ in range(50):
        bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
        if bindings:
            return int(bindings[0]["HostPort"])
        time.sleep(0.1)
        container.reload()
    raise HarnessError(f"port {port} of container {container.name} was not published",
                       evidence=json.dumps(container.attrs["NetworkSettings"].get("Ports")))


_OPEN: set[str] = set()
"""Names of the containers a :class:`ServingContainer` of this process has open (entered, not yet removed)."""


class ServingContainer:
    """A serving container as a context manager (testcontainers style).

    The constructor only records the options; ``__enter__`` runs the container (label
    ``pitfalls=1``, ports 8500/8501 published on 127.0.0.1 at random host ports, model
    directories mounted read-only) and waits until ``ready_model`` has an AVAILABLE version;
    ``__exit__`` always removes it.  ``model_dir`` is the host directory holding numbered
    version subdirectories; it is mounted at ``/models/<model_name>``.  ``models`` mounts more
    such directories (name -> host dir), ``files`` more read-only paths (host -> container
    path), e.g. a model config file for ``--model_config_file``.  ``args`` are passed to the
    entrypoint after the default flags; ``command`` replaces entrypoint and flags altogether;
    ``extra_ports`` are published on 127.0.0.1 too (:meth:`host_port` finds them).
    Set ``wait=False`` to skip the readiness wait.  With ``fail_on_load_error`` (the default)
    a failed load of ``ready_model`` ends the wait at once with :class:`RuntimeFailure`
    carrying the server's own error text (from ``GET /v1/models/<name>`` or, while the server
    retries its first load with the REST port still closed, from its log).
    """

    def __init__(self, image: ServingImage | str, *, model_name: str = "model",
                 model_dir: Path | str | None = None, models: Mapping[str, Path | str] | None = None,
                 files: Mapping[Path | str, str] | None = None,
                 env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 command: Sequence[str] | None = None, wait: bool = True, extra_ports: Sequence[int] = (),
                 ready_model: str | None = None, ready_timeout: float = 120.0,
                 poll_interval: float = 0.1, fail_on_load_error: bool = True,
                 log_tail_lines: int = 40, ready_clock: Callable[[], float] = time.monotonic) -> None:
        self.image = image if isinstance(image, ServingImage) else \
            ServingImage(image, implementation_of(image), "", 0.0)
        self.model_name = model_name
        self.mounts: dict[str, str] = {}
        if model_dir is not None:
            self.mounts[str(Path(model_dir).resolve())] = f"/models/{model_name}"
        for name, path in (models or {}).items():
            self.mounts[str(Path(path).resolve())] = f"/models/{name}"
        for path, target in (files or {}).items():
            self.mounts[str(Path(path).resolve())] = target
        self.env = {"MODEL_NAME": model_name, **(env or {})}
        self.args = list(args)
        self.extra_ports = list(extra_ports)
        self.command = list(command) if command is not None else None
        self.wait = wait
        self.ready_model = ready_model or model_name
        self.ready_timeout = ready_timeout
        self.poll_interval = poll_interval
        self.ready_clock = ready_clock  # the readiness wait's clock (tests give a made-up one)
        self.fail_on_load_error = fail_on_load_error
        self.log_tail_lines = log_tail_lines
        self.name = f"pitfalls-serving-{uuid.uuid4().hex[:10]}"
        self.start_to_ready_seconds: float | None = None
        self._client: docker.DockerClient | None = None
        self._container: Container | None = None
        self._rest_port: int | None = None
        self._grpc_port: int | None = None
        self._extra_host_ports: dict[int, int] = {}
        self._final_logs: str | None = None

    # addresses ---------------------------------------------------------------------------
    @property
    def rest_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the REST API (port 8501 in the container)."""
        return f"http://127.0.0.1:{self._require_port(self._rest_port)}"

    @property
    def grpc_target(self) -> str:
        """``127.0.0.1:<port>`` of the gRPC API (port 8500 in the container)."""
        return f"127.0.0.1:{self._require_port(self._grpc_port)}"

    @property
    def container_id(self) -> str:
        if self._container is None:
            raise HarnessError("the container is not running", hint="use it inside `with`")
        return str(self._container.id)

    def host_port(self, port: int) -> int:
        """The host port (on 127.0.0.1) that container port ``port`` is published at."""
        if port == REST_PORT:
            return self._require_port(self._rest_port)
        if port == GRPC_PORT:
            return self._require_port(self._grpc_port)
        return self._require_port(self._extra_host_ports.get(port))

    def model_url(self, model: str | None = None) -> str:
        return f"{self.rest_url}/v1/models/{model or self.model_name}"

    def _require_port(self, port: int | None) -> int:
        if port is None:
            raise HarnessError("the container has no published port yet",
                               hint="use the address inside the `with ServingContainer(...)` block")
        return port

    # logs --------------------------------------------------------------------------------
    def logs(self, tail_lines: int | None = None) -> str:
        """The container's stdout+stderr (kept after removal)."""
        if self._container is not None:
            import docker.errors

            try:
                raw: bytes = self._container.logs(stdout=True, stderr=True,
                                                  tail=tail_lines if tail_lines else "all")
                return raw.decode(errors="replace")
            except docker.errors.APIError:  # removed meanwhile: fall back to the kept logs
                pass
        text = self._final_logs or ""
        return tail(text, tail_lines) if tail_lines else text

    # lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> ServingContainer:
        self._client = docker_client()
        try:
            self._run()
            if self.wait:
                started = time.monotonic()
                self._wait_ready()
                self.start_to_ready_seconds = round(time.monotonic() - started, 2)
        except BaseException:  # also KeyboardInterrupt: never leave a container behind
            self._remove()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._remove()

    def _run(self) -> None:
        assert self._client is not None
        for host in self.mounts:
            refuse_broad_mount(Path(host))
            open_to_container(Path(host))
        volumes = {host: {"bind": target, "mode": "ro"} for host, target in self.mounts.items()}
        options: dict[str, Any] = {
            "name": self.name,
            "labels": {CONTAINER_LABEL: "1", **current_owner().labels()},
            "user": "{}:{}".format(*container_user()),
            "mem_limit": MEMORY_LIMIT, "memswap_limit": MEMORY_LIMIT, "pids_limit": PIDS_LIMIT,
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
            "ports": {f"{port}/tcp": ("127.0.0.1", None) for port in (GRPC_PORT, REST_PORT, *self.extra_ports)},
            "volumes": volumes, "environment": self.env}
        if self.command is not None:
            options.update(entrypoint=self.command[:1], command=self.command[1:])
        elif self.args:
            options.update(command=self.args)
        # The watchdog first: from the create on, a kill of this process must not leak it.
        ensure_reaper()
        # create + start, never containers.run: run would try to pull a missing image.
        import docker.errors

        _OPEN.add(self.name)
        try:
            self._container = self._client.containers.create(self.image.tag, **options)
        except docker.errors.ImageNotFound as exc:
            raise SetupError(f"image {self.image.tag} is not in the local engine",
                             evidence=str(exc),
                             hint="build it with harness.environments.serving_image.ensure_serving_image(); "
                                  "images are never pulled") from exc
        self._container.start()
        self._container.reload()
        self._rest_port = _host_port(self._container, REST_PORT)
        self._grpc_port = _host_port(self._container, GRPC_PORT)
        self._extra_host_ports = {port: _host_port(self._container, port) for port in self.extra_ports}

    def exit_reason(self) -> str | None:
        """``container exited with code N`` once the container has stopped, else None."""
        import docker.errors

        if self._container is None:
            return "the container is gone"
        try:
            self._container.reload()
        except docker.errors.NotFound:
            return "the container is gone (removed from outside)"
        state = self._container.attrs.get("State", {})
        if state.get("Status") in ("exited", "dead"):
            return f"container exited with code {state.get('ExitCode')}"
        return None

    def _wait_ready(self) -> None:
        waiter = HttpReady(
            self.model_url(self.ready_model),
            ModelAvailable(self.image.implementation, self.fail_on_load_error),
            timeout=self.ready_timeout, poll_interval=self.poll_interval, clock=self.ready_clock, abort=readiness_abort(self.exit_reason, self.logs, self.ready_model, self.image.implementation,
                                  self.fail_on_load_error, "container log"),
            logs=self.logs, log_tail_lines=self.log_tail_lines, log_label="container log",
            hint=f"check that MODEL_NAME ({self.env.get('MODEL_NAME')}) names a directory "
                 f"mounted under /models with numbered version subdirectories "
                 f"(mounts: {self.mounts}), and read the log above")
        try:
            waiter.wait()
        except WaitTimeout as exc:
            raise WaitTimeout(f"{self.image.tag}: model {self.ready_model!r} never became "
                              f"AVAILABLE ({exc.message})", evidence=exc.evidence,
                              hint=exc.hint) from exc

    def _remove(self) -> None:
        container, self._container = self._container, None
        _OPEN.discard(self.name)
        if container is None:
            return
        import docker.errors

        try:
            self._final_logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
        except docker.errors.APIError:
            self._final_logs = self._final_logs or ""
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


def refuse_broad_mount(host: Path) -> None:
    """A container mounts one directory of a run, never ``/``, the host's temporary directory or
    the user's home as a whole (they hold other users' and processes' files)."""
    import tempfile

    resolved = host.resolve()
    broad = {Path("/"), Path(tempfile.gettempdir()).resolve(), Path("/tmp"), Path.home().resolve()}
    if resolved in broad:
        raise SetupError(f"refusing to mount {resolved} into a serving container",
                         hint="mount the run's own directory (harness.environments.ownership.run_work_dir()) "
                              "or a model directory inside it")


def remove_leftover_containers(*, all_owners: bool = False) -> list[str]:
    """Remove containers labelled ``pitfalls=1`` that are left over; return their names.

    A container is left over when its owner (label ``pitfalls.owner``) is proven gone (its lock
    file is free: :func:`harness.environments.ownership.owner_state`), or is this process and no
    :class:`ServingContainer` of this process has it open (a worker's fork container outlives the
    target that asked, when several targets share one process, as in the harness's own tests).
    An owner that is alive, or that cannot be checked from here (no lock file: another user's or
    machine's run on the same engine, or a container of an older harness that had no owner id),
    keeps its containers, whatever its pid: a pid seen from here says nothing about another pid
    namespace.  ``all_owners=True`` removes every such container.
    """
    import docker.errors

    from harness.environments.ownership import remove_leftover_work_dirs

    client = docker_client()
    removed: list[str] = []
    # ignore_removed: docker-py inspects each listed container, and another worker (or the reaper) may
    # remove one in between (seen in CI: "404 ... No such container" out of list())
    for container in client.containers.list(all=True, filters={"label": f"{CONTAINER_LABEL}=1"},
                                             ignore_removed=True):
        state = owner_state(container.labels.get(OWNER_ID_LABEL, ""))
        leftover = state == "gone" or (state == "self" and container.name not in _OPEN)
        if not (all_owners or leftover):
            continue
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            continue
        removed.append(str(container.name))
    remove_leftover_work_dirs()
    return removed


def published_ports(container_id: str) -> dict[str, list[str]]:
    """Container port -> ``host_ip:host_port`` bindings, as the engine reports them now."""
    client = docker_client()
    try:
        ports = client.api.inspect_container(container_id)["NetworkSettings"].get("Ports") or {}
    finally:
        client.close()
    return {port: [f"{b['HostIp']}:{b['HostPort']}" for b in bindings or []] for port, bindings in ports.items()}
