"""A real nginx with HTTP basic auth on 127.0.0.1 in front of a model server (the auth scenarios' proxy)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, NotApplicable
from harness.targets.tfserving.host import free_port, stop_process_group, watched_popen

NGINX = Path("/usr/sbin/nginx")


def ssha_entry(user: str, password: str) -> str:
    """An htpasswd line in RFC 2307 ``{SSHA}`` form, which nginx's auth_basic accepts."""
    import base64
    import hashlib

    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}"


@contextmanager
def basic_auth_proxy(upstream: str, users: Mapping[str, str], *, realm: str = "model server",
                     timeout: float = 15.0) -> Iterator[str]:
    """A real nginx on 127.0.0.1 with HTTP basic auth, proxying to ``upstream``; yields its URL.

    The configuration and htpasswd file live in a fresh directory of this run's work directory
    (:func:`harness.environments.ownership.run_work_dir`) that is removed afterwards; the directory
    is 0700 and the htpasswd file 0600, both owned by the user nginx runs as: the harness's own user,
    or, when the harness is root, the unprivileged container user
    (:data:`harness.environments.ownership.CONFINED_UID`), so no other host user reads the credentials.
    nginx runs in the foreground as a child process and is stopped with its workers at the end.  Its
    port is one that was free a moment before; if another process took it in between, nginx's own
    ``bind() ... failed (98: Address already in use)`` makes this try another one.
    """
    import shutil

    from harness.environments.ownership import container_user, run_work_dir

    nginx = shutil.which("nginx") or str(NGINX)
    if not Path(nginx).is_file():
        raise NotApplicable("nginx is not installed (run.sh installs Debian's nginx-light)")
    prefix = Path(tempfile.mkdtemp(prefix="pitfalls-nginx-", dir=run_work_dir()))
    uid, gid = container_user()
    try:
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            os.chown(prefix, uid, gid)
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        htpasswd = prefix / "htpasswd"
        fd = os.open(htpasswd, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(ssha_entry(u, p) + "\n" for u, p in users.items()))
        os.chown(htpasswd, uid, gid)
        for attempt in range(5):
            port = free_port()
            with _nginx_on(nginx, prefix, port, upstream, realm, timeout, as_user) as url:
                if url is None:  # the port was taken between free_port() and nginx's bind
                    continue
                yield url
                return
        raise HarnessError("nginx found no free port on 127.0.0.1 in 5 tries",
                           evidence=(prefix / "error.log").read_text(errors="replace")[-2000:])
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def _nginx_on(nginx: str, prefix: Path, port: int, upstream: str, realm: str, timeout: float,
              as_user: Mapping[str, Any]) -> Iterator[str | None]:
    """nginx on ``127.0.0.1:port``; yields its URL, or None when the port was in use."""
    import socket

    (prefix / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_basic "{realm}";
            auth_basic_user_file {prefix}/htpasswd;
            proxy_set_header Authorization "";
            proxy_pass {upstream};
        }}
    }}
}}
""")
    (prefix / "error.log").unlink(missing_ok=True)
    proc = watched_popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
                          str(prefix / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **as_user)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                log = (prefix / "error.log").read_text(errors="replace") if (prefix / "error.log").exists() else ""
                if "Address already in use" in stderr + log:
                    yield None
                    return
                raise HarnessError(f"nginx exited with code {proc.returncode}", evidence=stderr + log)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise HarnessError(f"nginx did not listen on 127.0.0.1:{port} within {timeout:.0f}s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)
        if proc.stderr:
            proc.stderr.close()
