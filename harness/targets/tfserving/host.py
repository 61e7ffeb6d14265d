"""The host-subprocess server mode: the TF Serving-compatible server as a process of the venv.

Used where no Docker engine answers (``PITFALLS_SERVING=subprocess`` forces it).  The server
listens on free ports of 127.0.0.1, writes its log to a temporary file and is stopped with its
process group when the block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.paths import CONTAINERS_DIR
from harness.targets.tfserving.client import Server, wait_listening

COMPAT_DIR = CONTAINERS_DIR / "tfserving-compat"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def watched_popen(cmd: Sequence[str], **kwargs: Any) -> "subprocess.Popen[Any]":
    """``Popen`` in a new session, registered with the reaper so that a SIGKILL of this process
    (CI timeout, OOM killer) does not leave the child running; stop it with :func:`stop_process_group`."""
    from harness.environments.reaper import watch_process_group

    proc = subprocess.Popen(list(cmd), start_new_session=True, **kwargs)
    watch_process_group(proc.pid)
    return proc


def stop_process_group(proc: "subprocess.Popen[Any]") -> None:
    """SIGTERM a child's process group, SIGKILL after 10 s; the reaper forgets it."""
    from harness.environments.reaper import forget_process_group

    try:
        _stop(proc)
    finally:
        forget_process_group(proc.pid)


def _stop(proc: "subprocess.Popen[Any]") -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def serve_on_host(model_name: str, model_dir: Path | None, env: Mapping[str, str], args: Sequence[str],
                  wait: str, ready_model: str | None, ready_timeout: float,
                  fail_on_load_error: bool) -> Iterator[Server]:
    """Run ``python -m tfs_compat`` for ``model_dir`` and yield it once ``wait`` holds."""
    from harness.environments.serving_image import COMPAT_IMPLEMENTATION
    from harness.waiting import HttpReady, ModelAvailable

    rest, grpc = free_port(), free_port()
    name = env.get("MODEL_NAME", model_name)
    base = str(model_dir) if model_dir is not None else f"/models/{name}"
    cmd = [sys.executable, "-m", "tfs_compat", f"--port={grpc}", f"--rest_api_port={rest}",
           "--listen_host=127.0.0.1", f"--model_name={name}", f"--model_base_path={base}", *args]
    log = tempfile.TemporaryFile(mode="w+")
    child_env = {**os.environ, "PYTHONPATH": str(COMPAT_DIR), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = watched_popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env)

    def logs(tail_lines: int | None = None) -> str:
        log.flush()
        log.seek(0)
        lines = log.read().splitlines()
        return "\n".join(lines[-tail_lines:] if tail_lines else lines)

    server = Server(f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc}", f"{COMPAT_IMPLEMENTATION} (host subprocess)",
                    "subprocess", model_name, logs)
    try:
        if wait == "available":
            from harness.errors import WaitTimeout

            from harness.targets.tfserving.container import readiness_abort

            def exited() -> str | None:
                code = proc.poll()
                return None if code is None else f"server process exited with code {code}"

            try:
                HttpReady(f"{server.rest_url}/v1/models/{ready_model or name}",
                          ModelAvailable(COMPAT_IMPLEMENTATION, fail_on_load_error), timeout=ready_timeout,
                          poll_interval=0.1,
                          abort=readiness_abort(exited, logs, ready_model or name, server.implementation,
                                                fail_on_load_error, "server log")).wait()
            except WaitTimeout as exc:
                raise WaitTimeout(exc.message, evidence=f"{exc.evidence}\n--- server log ---\n{logs(40)}",
                                  hint="read the server log above") from None
        elif wait == "listening":
            wait_listening(server, ready_timeout)
        yield server
    finally:
        stop_process_group(proc)
        log.close()
