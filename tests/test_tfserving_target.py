"""Tests of the tfserving helpers (kit, client) that need no serving container."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.scenario import Run, Scenario, Succeeds
from harness.targets.tfserving import kit
from harness.targets.tfserving.client import http_request
from harness.targets.tfserving.target import TfservingTarget


def test_ssha_entry_is_rfc2307_salted_sha1() -> None:
    user, _, stored = kit.ssha_entry("client", "pw").partition(":")
    assert user == "client" and stored.startswith("{SSHA}")
    raw = base64.b64decode(stored[len("{SSHA}"):])
    digest, salt = raw[:20], raw[20:]
    assert hashlib.sha1(b"pw" + salt).digest() == digest


LOG = """\
2026-11-22 18:25:30.100000: I tfs_compat/core.py:290] Loading servable version {name: small version: 1}
2026-11-22 18:25:30.150000: I tfs_compat/core.py:330] Successfully loaded servable version {name: small version: 1}
2026-11-22 18:25:30.200000: I tfs_compat/core.py:290] Loading servable version {name: large version: 1}
2026-11-22 18:25:31.450000: I tfs_compat/core.py:330] Successfully loaded servable version {name: large version: 1}
"""


def test_load_seconds_from_log() -> None:
    assert kit.load_seconds_from_log(LOG, "small") == pytest.approx(0.05)
    assert kit.load_seconds_from_log(LOG, "large") == pytest.approx(1.25)
    with pytest.raises(HarnessError, match="no 'Loading servable version"):
        kit.load_seconds_from_log(LOG, "other")


@pytest.fixture()
def upstream() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            body = ('{"predictions": [[1.0]], "saw_authorization": %s}'
                    % ("true" if self.headers.get("Authorization") else "false")).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_basic_auth_proxy_rejects_then_forwards(upstream: str) -> None:
    if not Path(kit.NGINX).is_file():
        pytest.skip("nginx is not installed (run.sh installs nginx-light)")
    good = {"Authorization": "Basic " + base64.b64encode(b"client:pw").decode()}
    with kit.basic_auth_proxy(upstream, {"client": "pw"}) as url:
        anonymous = http_request("POST", url + "/v1/models/m:predict", {"instances": [[1]]})
        allowed = http_request("POST", url + "/v1/models/m:predict", {"instances": [[1]]}, headers=good)
    assert anonymous.status == 401 and "401 Authorization Required" in anonymous.text
    assert allowed.status == 200 and allowed.body == {"predictions": [[1.0]], "saw_authorization": False}
    with pytest.raises(OSError):  # nginx is gone once the block ends
        http_request("POST", url + "/", {}, timeout=2)


def _run(tmp_path: Path) -> Run[TfservingTarget]:
    """A real run context (never activated: enter_together only registers callbacks with it)."""
    from harness.artifacts import ArtifactCache

    scenario = Scenario(title="enter_together", targets=("tfserving",), faulty=lambda run: None,
                        fixed=lambda run: None, symptom=Succeeds())
    return Run(scenario=scenario, variant="fixed", target=TfservingTarget("subprocess"), workdir=tmp_path,
               cache=ArtifactCache(tmp_path / "cache"))


def test_enter_together_stops_the_started_ones_when_one_fails(tmp_path: Path) -> None:
    events: list[str] = []

    @contextmanager
    def fake(name: str, fail: bool) -> Iterator[str]:
        if fail:
            raise RuntimeError(f"{name} failed")
        events.append(f"start {name}")
        try:
            yield name
        finally:
            events.append(f"stop {name}")

    run = _run(tmp_path)
    assert kit.enter_together(run, fake("a", False), fake("b", False)) == ["a", "b"]  # type: ignore[arg-type]  # str stands in for Server
    run.close()
    assert sorted(events) == ["start a", "start b", "stop a", "stop b"]
    run, events[:] = _run(tmp_path), []
    with pytest.raises(RuntimeError, match="b failed"):
        kit.enter_together(run, fake("a", False), fake("b", True))  # type: ignore[arg-type]  # str stands in for Server
    assert events == ["start a"]  # the one that started is registered, so closing the run stops it
    run.close()
    assert events == ["start a", "stop a"]


def test_serving_implementation_is_chosen_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """PITFALLS_SERVING_IMPLEMENTATION picks the stand-in (default) or the real image; the results
    record which ran; a real server without a container engine is refused, not silently replaced."""
    from harness.errors import HarnessError
    from harness.targets.tfserving.target import TfservingTarget

    monkeypatch.delenv("PITFALLS_SERVING_IMPLEMENTATION", raising=False)
    assert TfservingTarget(mode="subprocess").implementation == "tfserving-compatible"
    monkeypatch.setenv("PITFALLS_SERVING_IMPLEMENTATION", "tfserving-2000")
    with pytest.raises(HarnessError, match="is not a serving implementation"):
        TfservingTarget()
    monkeypatch.setenv("PITFALLS_SERVING_IMPLEMENTATION", "tensorflow/serving")
    target = TfservingTarget(mode="subprocess")
    with pytest.raises(HarnessError, match="needs a container"):
        target.activate()
    assert TfservingTarget(mode="subprocess").versions()["serving_implementation"] == "tensorflow/serving"
