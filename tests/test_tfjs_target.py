"""The browser target and its loopback servers: evidence capture, isolation, headers, clean-up, timeouts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from harness.errors import RuntimeFailure, WaitTimeout
from harness.loopback import LoopbackServer
from harness.plugin import TargetPool
from harness.targets.tfjs.target import TfjsTarget

BLANK = "<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>"


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET",
         data: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    try:
        with urlopen(Request(url, headers=headers or {}, method=method, data=data), timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def _descendants(pid: int) -> dict[int, str]:
    """Live processes below ``pid`` (pid -> command line), read from /proc."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            state = stat.rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found[child] = cmdlines.get(child, "")
                frontier.append(child)
    return found


# ---------------------------------------------------------------------------- loopback server (no browser)

def test_loopback_headers_guard_routes_and_unmount(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"a": 1}')
    (tmp_path / "w.bin").write_bytes(b"\0" * 12)
    rule = lambda path: {"Cache-Control": "no-cache"} if path.endswith(".json") else {"Cache-Control": "max-age=60"}  # noqa: E731
    guard = lambda path, headers: 403 if path.startswith("/private/") and "Referer" not in headers else None  # noqa: E731
    echo = lambda body, headers: (200, body[::-1], "text/plain")  # noqa: E731
    with LoopbackServer({"/m/": tmp_path, "/private/": tmp_path}, headers=rule, guard=guard,
                        routes={"/api/echo": echo}, files={"/x.txt": b"hello"}) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, headers, body = _get(server.url + "/m/model.json")
        assert (status, headers["Cache-Control"], headers["Content-Type"], body) == (200, "no-cache", "application/json", b'{"a": 1}')
        assert _get(server.url + "/m/w.bin")[1]["Cache-Control"] == "max-age=60"
        assert _get(server.url + "/x.txt")[2] == b"hello"
        assert _get(server.url + "/m/../../etc/passwd")[0] == 404
        assert _get(server.url + "/private/model.json")[0] == 403
        assert _get(server.url + "/private/model.json", {"Referer": server.url + "/"})[0] == 200
        assert _get(server.url + "/api/echo", method="POST", data=b"abc")[2] == b"cba"
        server.set_headers({"Access-Control-Allow-Origin": "*"})
        status, headers, _ = _get(server.url + "/m/model.json", method="OPTIONS")
        assert (status, headers["Access-Control-Allow-Origin"]) == (204, "*")
        assert server.bytes_served("/m/") == len(b'{"a": 1}') + 12 + len(b"not found")  # the 404 body too
        server.unmount("/m/")
        assert _get(server.url + "/m/model.json")[0] == 404
        served = server.served("/m/")
        assert [r.status for r in served][-1] == 404 and served[0].headers == {"Cache-Control": "no-cache"}
        assert served[0].request_headers.get("Host", "").startswith("127.0.0.1:")
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url


# ---------------------------------------------------------------------------- the browser

@pytest.fixture()
def target(pitfalls_targets: TargetPool) -> TfjsTarget:
    """The session's one browser (Playwright's sync API allows one per thread), as scenarios get it."""
    reason = TfjsTarget.unavailable_reason()
    if reason:
        pytest.skip(f"tfjs target not available here: {reason}")
    found = pitfalls_targets.get("tfjs")
    assert isinstance(found, TfjsTarget)
    return found


def test_page_errors_console_and_failed_requests_are_captured(target: TfjsTarget) -> None:
    html = ("<!doctype html><html><head><script>console.error('boom from console');</script>"
            "<script>undefinedFunction();</script><img src='/missing.png'></head><body></body></html>")
    seen: list[str] = []
    with target.page(html=html, backend=None, observe=seen.append) as page:
        assert page.page_errors == ["ReferenceError: undefinedFunction is not defined"]
        assert "console.error: boom from console" in page.console
        assert any("404 (Not Found)" in line for line in page.console)
        with pytest.raises(RuntimeFailure) as info:
            page.raise_page_errors()
        assert (info.value.runtime, info.value.kind) == ("tfjs/chromium", "ReferenceError")
        assert any(u.url.endswith("/missing.png") for u in page.requests_seen)
        with target.serve(files={"/m.json": b"{}"}) as other:  # another origin, no CORS header
            with pytest.raises(RuntimeFailure) as fetch_info:
                page.evaluate("async (u) => (await fetch(u)).json()", other.url + "/m.json")
        assert "Failed to fetch" in fetch_info.value.message
        assert "blocked by CORS policy" in fetch_info.value.message  # the console's reason rides along
        assert any(line.startswith("requestfailed: ") for line in page.failed_requests)
    assert any(text.startswith("pageerror: ReferenceError") for text in seen)


def test_evaluate_returns_values_and_raises_page_exceptions(target: TfjsTarget) -> None:
    with target.page() as page:
        assert page.evaluate("async (x) => tf.tensor(x).sum().array()", [1, 2, 3]) == 6
        assert page.evaluate("() => tf.getBackend()") == "cpu"
        with pytest.raises(RuntimeFailure, match=r"TypeError: .*is not a function") as info:
            page.evaluate("() => tf.notAFunction()")
        assert info.value.kind == "TypeError"


def test_evaluate_timeout_names_what_it_waited_for(target: TfjsTarget) -> None:
    with target.page(backend=None) as page:
        with pytest.raises(WaitTimeout) as info:
            page.evaluate("() => new Promise(() => { console.log('waiting forever'); })", timeout_s=0.5)
        message = str(info.value)
        assert "did not settle within 0.5s" in message
        assert "new Promise(() =>" in message  # the script it waited for
        assert "waiting forever" in message  # the console lines seen


def test_fresh_context_per_page_no_storage_leak(target: TfjsTarget) -> None:
    write = """async () => {
      localStorage.setItem('k', 'v');
      await new Promise((ok, ko) => { const r = indexedDB.open('pitfalls-db', 1);
        r.onupgradeneeded = () => r.result.createObjectStore('s');
        r.onsuccess = () => { r.result.close(); ok(); }; r.onerror = () => ko(r.error); });
      return true; }"""
    read = "async () => ({ls: localStorage.getItem('k'), dbs: (await indexedDB.databases()).map(d => d.name)})"
    # One origin for both pages, so only the browser context can keep the two apart.
    with target.serve(files={"/p.html": BLANK.encode()}) as site:
        with target.page(goto=False) as first:
            first.goto(site.url + "/p.html")
            first.evaluate(write)
            first.goto(site.url + "/p.html")  # same context: the data is there (the check can see it)
            assert first.evaluate(read) == {"ls": "v", "dbs": ["pitfalls-db"]}
        with target.page(goto=False) as second:
            second.goto(site.url + "/p.html")
            assert second.evaluate(read) == {"ls": None, "dbs": []}


def test_backends_and_throttling(target: TfjsTarget) -> None:
    with target.page(backend="wasm") as page:
        assert page.evaluate("() => tf.getBackend()") == "wasm"
        assert page.use_backend("webgl") == "webgl"
        payload = b"x" * 400_000
        page.server.put_file("/big.bin", payload)
        timing = "async (u) => { const t0 = performance.now(); await (await fetch(u, {cache: 'no-store'})).arrayBuffer(); return performance.now() - t0; }"
        unthrottled = page.evaluate(timing, "/big.bin")
        page.throttle(download_bytes_per_s=400_000, latency_ms=0)
        throttled = page.evaluate(timing, "/big.bin")
        # 400 kB at 400 kB/s cannot arrive in under a second once the throttle holds; a busy machine
        # only makes it slower, so the bound is a floor that load cannot break (no comparison with the
        # unthrottled time, which load can inflate). 500 ms leaves room for DevTools' own rounding.
        assert throttled > 500, f"throttled download took {throttled:.0f} ms (unthrottled {unthrottled:.0f} ms)"


CLEANUP_SCRIPT = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
from tests.test_tfjs_target import _descendants
from harness.targets.tfjs.target import TfjsTarget
target = TfjsTarget()
with target:
    with target.page() as page:
        page.evaluate("() => tf.tensor([1]).array()")
    during = _descendants(os.getpid())
after = _descendants(os.getpid())
print(json.dumps({"during": during, "after": after, "active": target.is_active}))
"""


def test_no_chromium_left_after_deactivate() -> None:
    # In a process of its own: this process may already hold the session's browser.
    if TfjsTarget.unavailable_reason():
        pytest.skip(str(TfjsTarget.unavailable_reason()))
    root = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.run([sys.executable, "-c", CLEANUP_SCRIPT, root], capture_output=True, text=True,
                          timeout=120, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any("chromium" in cmd for cmd in seen["during"].values()), seen["during"]
    assert seen["after"] == {}, json.dumps(seen["after"], indent=1)
    assert seen["active"] is False
