"""A static HTTP server on 127.0.0.1 with headers a scenario controls.

Used by the browser target (the page, the model files, the tf.js bundles; a second origin for
CORS scenarios; cache headers for model-update scenarios; a POST route for a server-side model).
It runs in a thread, binds an ephemeral loopback port, logs every request it served (path,
status, body bytes, request headers), and is a context manager that always shuts down.
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
# guard(path, request_headers) -> None to serve, or an HTTP status (e.g. 403) to refuse
Guard = Callable[[str, Mapping[str, str]], "int | None"]
# route(request_body, request_headers) -> (status, body, content type)
Route = Callable[[bytes, Mapping[str, str]], "tuple[int, bytes, str]"]
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("application/json", ".json")
mimetypes.add_type("text/javascript", ".js")


@dataclass
class ServedRequest:
    method: str
    path: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers sent
    bytes: int = 0  # response body bytes sent
    request_headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """Serve directories under URL prefixes: ``LoopbackServer({"/": page_dir, "/lib/": libs})``.

    ``files`` maps exact URL paths to bytes (they win over mounts), ``headers`` adds response
    headers (a mapping or a rule of the path), ``guard`` may refuse a request with a status, and
    ``routes`` answer POST requests (a server-side API).
    """

    def __init__(self, mounts: Mapping[str, Path], *, headers: Mapping[str, str] | HeaderRule | None = None,
                 files: Mapping[str, bytes] | None = None, guard: Guard | None = None,
                 routes: Mapping[str, Route] | None = None) -> None:
        self.mounts = {(p if p.endswith("/") else p + "/"): Path(d) for p, d in mounts.items()}
        self.files = dict(files or {})
        self.routes = dict(routes or {})
        self._headers = headers
        self._guard = guard
        self.requests: list[ServedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # configuration a scenario may change while the server runs ------------------------------
    def set_headers(self, headers: Mapping[str, str] | HeaderRule | None) -> None:
        self._headers = headers

    def put_file(self, url_path: str, content: bytes) -> None:
        self.files[url_path] = content

    def mount(self, prefix: str, directory: Path) -> None:
        self.mounts[prefix if prefix.endswith("/") else prefix + "/"] = Path(directory)

    def unmount(self, prefix: str) -> None:
        """Stop serving a prefix (mounted directory and files under it): later requests get 404."""
        prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.mounts.pop(prefix, None)
        for path in [p for p in self.files if p.startswith(prefix)]:
            del self.files[path]

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
        return f"http://127.0.0.1:{self._httpd.server_port}"  # bound to loopback in __enter__

    @property
    def origin(self) -> str:
        return self.url

    def _log(self, request: ServedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def __enter__(self) -> "LoopbackServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return

            def _reply(self, status: int, body: bytes, ctype: str, extra: Mapping[str, str],
                       head_only: bool = False) -> None:
                path = unquote(urlsplit(self.path).path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                sent = 0 if head_only else len(body)
                server._log(ServedRequest(self.command, path, status, dict(extra), sent, dict(self.headers.items())))
                if not head_only:
                    self.wfile.write(body)

            def _send(self, head_only: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                extra = server.headers_for(path)
                refused = server._guard(path, dict(self.headers.items())) if server._guard else None
                if refused is not None:
                    self._reply(refused, b"refused", "text/plain", extra, head_only)
                    return
                found = server.resolve(path)
                if found is None:
                    self._reply(404, b"not found", "text/plain", extra, head_only)
                    return
                body = found if isinstance(found, bytes) else found.read_bytes()
                self._reply(200, body, mimetypes.guess_type(path)[0] or "application/octet-stream", extra, head_only)

            def do_GET(self) -> None:  # noqa: N802
                self._send(False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._send(True)

            def do_POST(self) -> None:  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                route = server.routes.get(path)
                if route is None:
                    self._reply(404, b"not found", "text/plain", server.headers_for(path))
                    return
                status, answer, ctype = route(body, dict(self.headers.items()))
                self._reply(status, answer, ctype, server.headers_for(path))

            def do_OPTIONS(self) -> None:  # noqa: N802
                path = unquote(urlsplit(self.path).path)
                self._reply(204, b"", "text/plain", server.headers_for(path))

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
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def bytes_served(self, path_prefix: str) -> int:
        """Response body bytes sent for paths under ``path_prefix`` (what crossed the wire)."""
        return sum(r.bytes for r in self.served(path_prefix))
