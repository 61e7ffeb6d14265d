"""Fork server: import TensorFlow once, then run each server as a fresh forked process.

**Not part of TF Serving**: a start-up speed-up for the harness (``harness.targets.tfserving.forked``).
A server started in a fresh container spends about 2 s of its 3 s importing Python and
TensorFlow; here the container's first process does those imports once and then forks one server
process per request.  Each server is a new process: ``cli.main`` runs in it from the start (flags,
logging, core, model load, gRPC and REST on the container's ports 8500/8501), with no object
created by an earlier server, because the parent never runs one.  The parent only imports.

Enabled by the environment variable ``TFS_COMPAT_FORK_SERVER=<control port>``, with the control
secret in ``TFS_COMPAT_FORK_TOKEN`` (both removed from the environment before any server starts,
so no server sees them; without a token of at least 32 characters the fork server does not start).  The server flags the image's
entrypoint passes become every server's first flags; a request adds its own after them, as
``docker run IMAGE <args>`` does.

Control: one JSON object per TCP connection on the control port, one JSON reply; one server at
a time.  Every request carries ``"token": "<the secret>"``; a request without the right one
(compared with ``hmac.compare_digest``) gets ``{"ok": false, "error": "forbidden"}`` and nothing
is done: no server is started, inspected or stopped.

* ``{"op": "ping"}``: ``{"ok": true}`` once the imports are done;
* ``{"op": "start", "args": [...], "links": {"/models/<name>": "<path>"}}``: make each link (a
  path directly under ``/models``) a symbolic link (the harness mounts its run's work directory
  read-only and links the model directory there, so the server sees it live), then fork a server whose stdout and stderr go to
  a fresh log file; the log starts with what the imports printed (TensorFlow's start-up lines),
  which a fresh start prints a little later, after the first lines of the server's own;
* ``{"op": "status"}``: ``{"running": bool, "exit_code": int or null}``;
* ``{"op": "log"}``: ``{"text": "<the server's log so far>"}``;
* ``{"op": "stop"}``: SIGKILL the server, reap it, remove the links: ``{"exit_code": ...}``.

Replies never carry a server text: this module composes none (``tests/test_fidelity_table.py``).
"""

from __future__ import annotations

import hmac
import json
import os
import signal
import socket
import sys
import traceback
from typing import Any, Optional

ENV = "TFS_COMPAT_FORK_SERVER"
TOKEN_ENV = "TFS_COMPAT_FORK_TOKEN"
MIN_TOKEN_LENGTH = 32
LINK_DIR = "/models"
LOG_DIR = "/tmp/tfs-compat-fork"
PREAMBLE = "imports.log"


def _import_everything() -> bytes:
    """Import what a server imports, with fds 1 and 2 captured; returns what was printed."""
    os.makedirs(LOG_DIR, exist_ok=True)
    capture = os.path.join(LOG_DIR, PREAMBLE)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(capture, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    try:
        import tensorflow  # noqa: F401 - the import this module exists to do once

        from . import cli, core, grpc_api, rest, server, servable, service  # noqa: F401
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    with open(capture, "rb") as imported:
        return imported.read()


class ForkServer:
    """The parent: holds the imports, forks one server at a time, answers the control port."""

    def __init__(self, base_args: list[str], preamble: bytes, token: str) -> None:
        self.base_args = base_args
        self.token = token
        self.preamble = preamble
        self.pid: Optional[int] = None
        self.exit_code: Optional[int] = None
        self.links: list[str] = []
        self.started = 0
        self.log_path = ""

    # one server ----------------------------------------------------------------------------
    def start(self, args: list[str], links: dict[str, str], inherited: list[socket.socket]) -> dict[str, Any]:
        if self.pid is not None:
            return {"ok": False, "error": "a server is running; stop it first"}
        for link in links:
            if os.path.dirname(os.path.normpath(link)) != LINK_DIR or os.path.basename(link) in ("", ".", ".."):
                return {"ok": False, "error": "a link must be a name directly under " + LINK_DIR + ": " + link}
        for link, target in links.items():
            if os.path.lexists(link):
                if not os.path.islink(link):
                    return {"ok": False, "error": "not a symbolic link: " + link}
                os.unlink(link)
            os.symlink(target, link)
            self.links.append(link)
        if self.log_path and os.path.exists(self.log_path):
            os.unlink(self.log_path)  # the previous server's: read by now
        self.started += 1
        self.exit_code = None
        self.log_path = os.path.join(LOG_DIR, "server-" + str(self.started) + ".log")
        # the log exists before the server does: a "log" request right after "start" finds it
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        os.write(fd, self.preamble)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._child(args, fd, inherited)
        os.close(fd)
        self.pid = pid
        return {"ok": True, "pid": pid}

    def _child(self, args: list[str], fd: int, inherited: list[socket.socket]) -> None:
        code = 1
        try:
            for sock in inherited:  # the control listener and connection belong to the parent
                sock.close()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            from .cli import main

            code = main(self.base_args + args)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001 - printed as `python -m tfs_compat` would print it
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def reap(self) -> None:
        if self.pid is None:
            return
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.exit_code = os.waitstatus_to_exitcode(status)
            self.pid = None

    def stop(self) -> dict[str, Any]:
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _, status = os.waitpid(self.pid, 0)
            self.exit_code = os.waitstatus_to_exitcode(status)
            self.pid = None
        for link in self.links:
            if os.path.islink(link):
                os.unlink(link)
        self.links = []
        return {"ok": True, "exit_code": self.exit_code}

    def log(self) -> dict[str, Any]:
        if not self.log_path:
            return {"ok": True, "text": ""}
        with open(self.log_path, "rb") as log:
            return {"ok": True, "text": log.read().decode(errors="replace")}

    # control -------------------------------------------------------------------------------
    def answer(self, request: dict[str, Any], inherited: list[socket.socket]) -> dict[str, Any]:
        token = request.get("token")
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.token.encode()):
            return {"ok": False, "error": "forbidden"}
        op = request.get("op")
        self.reap()
        if op == "ping":
            return {"ok": True}
        if op == "start":
            return self.start([str(a) for a in request.get("args", [])],
                              {str(k): str(v) for k, v in dict(request.get("links", {})).items()}, inherited)
        if op == "status":
            return {"ok": True, "running": self.pid is not None, "exit_code": self.exit_code}
        if op == "log":
            return self.log()
        if op == "stop":
            return self.stop()
        return {"ok": False, "error": "unknown op: " + str(op)}


def serve_forever(base_args: list[str], port: int, token: str) -> int:
    """The parent's loop; ends on SIGTERM (the container's stop) after killing its server."""
    if len(token) < MIN_TOKEN_LENGTH:
        print("fork server: " + TOKEN_ENV + " must hold a secret of at least " + str(MIN_TOKEN_LENGTH)
              + " characters", file=sys.stderr)
        return 2
    preamble = _import_everything()
    parent = ForkServer(base_args, preamble, token)
    listener = socket.create_server(("0.0.0.0", port), backlog=16)

    def on_term(signum: int, frame: object) -> None:
        parent.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    while True:
        connection, _ = listener.accept()
        with connection:
            try:
                request = json.loads(connection.makefile("rb").readline() or b"{}")
                reply = parent.answer(request if isinstance(request, dict) else {}, [listener, connection])
            except Exception:  # noqa: BLE001 - a bad request never ends the parent
                reply = {"ok": False, "error": traceback.format_exc(limit=3)}
            try:
                connection.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass


def fork_server_port() -> Optional[int]:
    """The control port asked for in the environment (removed from it), or None."""
    value = os.environ.pop(ENV, "")
    return int(value) if value.strip() else None


def fork_server_token() -> str:
    """The control secret from the environment (removed from it, so no server inherits it)."""
    return os.environ.pop(TOKEN_ENV, "")
