"""Forked servers: one serving container per worker, a fresh server process in it per variant.

In a warm catalog a server variant spends about 2 s of its 3 s in its fresh container's Python and
TensorFlow imports.  A :class:`ForkedServers` keeps **one** container of the compatible server's
image per target instance (per pytest-xdist worker), started with
``TFS_COMPAT_FORK_SERVER=<control port>``: its first process imports TensorFlow and the server
once and then forks a **new server process for each variant**
(``containers/tfserving-compat/tfs_compat/forkserver.py``), with the image's default flags plus the
variant's own, on the container's ports 8500/8501.  When the variant ends its server is killed and
reaped; the next variant's server is forked from the same pristine parent.

Isolation.  No two variants share a server process: each server starts from ``cli.main`` with no
object an earlier server made (the parent never runs a server, it only imports), so model states,
load failures, version labels and batch queues cannot leak from one variant to the next.  The
model directory is not copied: the container mounts this owner's work directory
(:func:`harness.environments.ownership.run_work_dir`, never the host's temporary directory) read-only
at :data:`WORK_MOUNT` and the variant's ``/models/<name>`` is a symbolic link into it, so the server
sees the directory live (versions a scenario adds later appear, as with a bind mount).

Control.  The control port (published on 127.0.0.1 only) answers only requests that carry the
container's secret: a random token made here for each fork container and given to it in its
environment (``TFS_COMPAT_FORK_TOKEN``, removed from the environment before any server starts);
the server compares it with ``hmac.compare_digest`` and refuses anything else without acting, so
another local user who finds the port can neither start, inspect nor stop a server.  What differs
from a fresh container, and is why some calls still get one (:func:`fork_eligible`):

* the environment is the image's (a variant that sets ``env`` gets a fresh container: TensorFlow
  reads some variables at import, which here happened before the variant);
* no mounted files, extra models, ``command`` or other TF version (those need their own container),
  and the model directory inside the work directory;
* the server's log is its own stdout and stderr in the container (read over the control port), and
  starts with what TensorFlow's import printed, which a fresh start prints after the server's
  first line;
* the server is not process 1 of the container, and ends with SIGKILL when the variant ends.

Opt-out: ``PITFALLS_SERVING_FORK=0`` gives every variant a fresh container again.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.environments.build import tail
from harness.errors import HarnessError, SetupError, WaitTimeout

if TYPE_CHECKING:
    from harness.environments.serving_image import ServingImage
    from harness.targets.tfserving.client import Server
    from harness.targets.tfserving.container import ServingContainer

FORK_ENV = "TFS_COMPAT_FORK_SERVER"
TOKEN_ENV = "TFS_COMPAT_FORK_TOKEN"
CONTROL_PORT = 8600
WORK_MOUNT = "/pitfalls-work"
CONTROL_TIMEOUT_S = 30.0
SERVING_PORTS = ("8500/tcp", "8501/tcp")


def forking_enabled() -> bool:
    """On unless ``PITFALLS_SERVING_FORK=0`` (or false/no/off)."""
    return os.environ.get("PITFALLS_SERVING_FORK", "1").strip().lower() not in ("0", "false", "no", "off")


def work_root() -> Path:
    """The host directory the fork container mounts read-only: this owner's work directory."""
    from harness.environments.ownership import run_work_dir

    return run_work_dir().resolve()


def fork_eligible(*, implementation: str, model_dir: Path | None, models: Mapping[str, Path] | None,
                  files: Mapping[Path, str] | None, env: Mapping[str, str] | None, command: Sequence[str] | None,
                  ready_model: str | None, model_name: str, tf_version: str, default_tf_version: str) -> bool:
    """Whether a ``serve(...)`` call may run as a forked server (see the module's list)."""
    from harness.environments.serving_image import COMPAT_IMPLEMENTATION

    if not (implementation == COMPAT_IMPLEMENTATION and model_dir is not None and not models and not files
            and not env and command is None and ready_model in (None, model_name) and model_name == "model"
            and tf_version == default_tf_version):
        return False
    return Path(model_dir).resolve().is_relative_to(work_root())


class ForkContainer:
    """The container whose first process forks the servers; talks to it over the control port."""

    def __init__(self, image: "ServingImage") -> None:
        from harness.targets.tfserving.container import ServingContainer

        self.image = image
        self.token = secrets.token_hex(32)
        self.container: ServingContainer = ServingContainer(
            image, env={FORK_ENV: str(CONTROL_PORT), TOKEN_ENV: self.token}, files={work_root(): WORK_MOUNT},
            extra_ports=[CONTROL_PORT], wait=False)
        self.busy = False
        self._entered = False

    def start(self, timeout: float = 180.0) -> "ForkContainer":
        """Run the container and wait until its parent process has done the imports."""
        try:
            self.container.__enter__()
            self._entered = True
            deadline = time.monotonic() + timeout
            while True:
                try:
                    self.control("ping", timeout=2.0)
                    return self
                except (OSError, ValueError):
                    pass
                reason = self.container.exit_reason()
                if reason or time.monotonic() > deadline:
                    raise SetupError(f"the fork server in {self.container.name} did not answer "
                                     f"({reason or f'after {timeout:.0f}s'})",
                                     evidence=self.container.logs(40),
                                     hint="PITFALLS_SERVING_FORK=0 starts a fresh container per variant instead")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def control(self, op: str, *, timeout: float = CONTROL_TIMEOUT_S, **fields: Any) -> dict[str, Any]:
        """One request on the control port; a refused request raises :class:`HarnessError`."""
        address = ("127.0.0.1", self.container.host_port(CONTROL_PORT))
        with socket.create_connection(address, timeout=timeout) as connection:
            connection.sendall(json.dumps({"op": op, "token": self.token, **fields}).encode() + b"\n")
            line = connection.makefile("rb").readline()
        reply = json.loads(line)  # an empty line (the proxy had no server behind it yet) is a ValueError
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise HarnessError(f"the fork server refused {op!r}", evidence=str(reply)[:2000],
                               hint="this is a harness bug; PITFALLS_SERVING_FORK=0 avoids the fork server")
        return reply

    def close(self) -> None:
        if self._entered:
            self._entered = False
            self.container.__exit__(None, None, None)


class ForkedServer:
    """One forked server process: its log, its status, and the readiness waits of a fresh container."""

    def __init__(self, owner: ForkContainer) -> None:
        self.owner = owner
        self.final_log: str | None = None

    def logs(self, tail_lines: int | None = None) -> str:
        text = self.final_log if self.final_log is not None else str(self.owner.control("log")["text"])
        return tail(text, tail_lines) if tail_lines else text

    def exited(self) -> str | None:
        status = self.owner.control("status")
        return None if status["running"] else f"the server process exited with code {status['exit_code']}"

    def wait_available(self, ready_model: str, timeout: float, fail_on_load_error: bool) -> None:
        from harness.targets.tfserving.container import readiness_abort
        from harness.waiting import HttpReady, ModelAvailable

        implementation = self.owner.image.implementation

        container = self.owner.container
        try:
            HttpReady(container.model_url(ready_model), ModelAvailable(implementation, fail_on_load_error),
                      timeout=timeout, poll_interval=0.1,
                      abort=readiness_abort(self.exited, self.logs, ready_model, implementation, fail_on_load_error,
                                            "container log"), logs=self.logs, log_label="server log",
                      hint=f"model {ready_model!r} is served from {WORK_MOUNT} through /models/{ready_model}; "
                           "read the log above").wait()
        except WaitTimeout as exc:
            raise WaitTimeout(f"{self.owner.image.tag} (forked server): model {ready_model!r} never became "
                              f"AVAILABLE ({exc.message})", evidence=exc.evidence, hint=exc.hint) from exc

    def stop(self) -> None:
        try:
            self.final_log = str(self.owner.control("log")["text"])
        finally:
            self.owner.control("stop")


class ForkedServers:
    """The fork containers of one target instance (one per image), started on first use."""

    def __init__(self) -> None:
        self._containers: dict[str, ForkContainer] = {}
        self.broken: str | None = None
        """Why forking stopped for this instance (a fork container that failed to start)."""

    def available(self, image: "ServingImage") -> bool:
        """Whether a forked server can run now: the fork container for ``image`` is up (started here
        on first use) and runs no server yet.  A fork container that fails to start ends forking for
        this instance (:attr:`broken` says why): every later variant gets a fresh container."""
        if self.broken is not None:
            return False
        owner = self._containers.get(image.tag)
        if owner is not None and not owner.busy and owner.container.exit_reason():
            self._containers.pop(image.tag)  # stopped or removed from outside: start another
            owner.close()
            owner = None
        if owner is None:
            from harness.counts import count

            count("serving containers started")
            try:
                owner = ForkContainer(image).start()
            except HarnessError as exc:
                self.broken = f"{exc.message}: {tail(exc.evidence or '', 5)}"
                return False
            except Exception as exc:  # noqa: BLE001 - the engine's refusal: a fresh container reports it
                self.broken = f"{type(exc).__name__}: {exc}"
                return False
            self._containers[image.tag] = owner
        return not owner.busy

    @contextmanager
    def serve(self, image: "ServingImage", *, model_name: str, model_dir: Path, args: Sequence[str], wait: str,
              ready_model: str | None, ready_timeout: float, fail_on_load_error: bool) -> Iterator["Server"]:
        """A forked server for ``model_dir`` as ``/models/<model_name>``, killed when the block ends."""
        from harness.targets.tfserving.client import Server, wait_listening
        from harness.targets.tfserving.container import published_ports

        owner = self._containers.get(image.tag)
        if owner is None or owner.busy:
            raise HarnessError("no idle fork container for this worker",
                               hint="ask available() first; this is a harness bug")
        from harness.environments.ownership import open_in_work_dir

        link = f"{WORK_MOUNT}/{Path(model_dir).resolve().relative_to(work_root())}"
        open_in_work_dir(Path(model_dir))  # the server walks down to it from the mount
        owner.busy = True
        try:
            owner.control("start", args=list(args), links={f"/models/{model_name}": link})
            forked = ForkedServer(owner)
            try:
                container = owner.container
                published = {port: bindings for port, bindings in published_ports(container.container_id).items()
                             if port in SERVING_PORTS}
                server = Server(container.rest_url, container.grpc_target,
                                f"{image.implementation} (container {image.tag})", "container", model_name,
                                forked.logs, published)
                if wait == "available":
                    forked.wait_available(ready_model or model_name, ready_timeout, fail_on_load_error)
                elif wait == "listening":
                    wait_listening(server, ready_timeout)
                yield server
            finally:
                try:
                    forked.stop()
                except BaseException:  # its server may still run: this container serves no one else
                    self._containers.pop(image.tag, None)
                    owner.close()
                    raise
        finally:
            owner.busy = False

    def close(self) -> None:
        containers, self._containers = list(self._containers.values()), {}
        for owner in containers:
            owner.close()
