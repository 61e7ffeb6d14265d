"""A static HTTP server on 127.0.0.1 with headers a scenario controls.

Used by the browser target (the page, the model files, the tf.js bundles; a second origin for
CORS scenarios; cache headers for model-update scenarios).  It runs in a thread, binds an
ephemeral loopback port, logs every request it served, and is a context manager that always
shuts down.
"""

from __future__ import annotations

import mimetypes
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Callable, Mapping
from urllib.parse import unquote, urlsplit

HeaderRule = Callable[[str], Mapping[str, str]]
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("application/json", ".json")
mimetypes.add_type("text/javascript", ".js")


@dataclass
class ServedRequest:
    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """Serve directories under URL prefixes: ``LoopbackServer({"/": page_dir, "/lib/": libs})``."""

    def __init__(self, mounts: Mapping[str, Path], *, headers: Mapping[str, str] | HeaderRule | None = None,
                 files: Mapping[str, bytes] | None = None) -> None:
        self.mounts = {(p if p.endswith("/") else p + "/"): Path(d) for p, d in mounts.items()}
        self.files = dict(files or {})
        self._headers = headers
        self.requests: list[ServedRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # configuration a scenario may change while the server runs ------------------------------
    def set_headers(self, headers: Mapping[str, str] | HeaderRule | None) -> None:
        self._headers = headers

    def put_file(self, url_path: str, content: bytes) -> None:
        self.files[url_path] = content

    def headers_for(self, path: str) -> dict[str, str]:
        rule = self._headers
        if rule is None:
            return {}
        return dict(rule(path) if callable(rule) else rule)

    # serving -----------------------------------------------------------------------------
    def resolve(self, url_path: str) -> bytes | Path | None:
        if url_path in self.files:
            return self.files[url_path]
        for prefix in sorted(self.mounts, key=len, reverse=True):
            if url_path.startswith(prefix):
                root = self.mounts[prefix].resolve()
                candidate = (root / url_path[len(prefix):]).resolve()
                if candidate.is_relative_to(root) and candidate.is_file():
                    return candidate
        return None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("LoopbackServer is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _send(self, head_only: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                found = server.resolve(path)
                extra = server.headers_for(path)
                if found is None:
                    body = b"not found"
                    self.send_response(404)
                    ctype = "text/plain"
                else:
                    body = found if isinstance(found, bytes) else found.read_bytes()
                    self.send_response(200)
                    ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                server.requests.append(ServedRequest(self.command, path, 404 if found is None else 200, extra))
                if not head_only:
                    self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                self._send(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._send(True)

            def do_OPTIONS(self) -> None:  # noqa: N802
                self.send_response(204)
                for name, value in server.headers_for(unquote(urlsplit(self.path).path)).items():
                    self.send_header(name, value)
                self.end_headers()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="pitfalls-http", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def served(self, path_prefix: str) -> list[ServedRequest]:
        return [r for r in self.requests if r.path.startswith(path_prefix)]
