"""Tests of harness.waiting: each wait's success, its timeout evidence (what it saw last, the log
tail, the hint) and abort."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from crafted import FakeClock
from harness import waiting
from harness.errors import RuntimeFailure, WaitTimeout


class _Handler(http.server.BaseHTTPRequestHandler):
    reply: tuple[int, str] = (503, "{}")

    def do_GET(self) -> None:
        status, body = self.reply
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/models/m", handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_ready_times_out_with_the_last_status(
        loopback_server: tuple[str, type[_Handler]]) -> None:
    url, handler = loopback_server
    handler.reply = (404, '{"error": "Servable not found for request: Latest(m)"}')
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as caught:
        waiting.HttpReady(url, waiting.ModelAvailable(), timeout=1.0, poll_interval=0.25,
                          clock=clock, sleep=clock.sleep).wait()
    assert clock.sleeps == [0.25] * 4  # polled at 0, 0.25, 0.5, 0.75 and 1.0 s of made-up time, then gave up
    assert caught.value.message.endswith("was not ready after 1s")
    assert "HTTP 404" in caught.value.evidence
    assert "Servable not found" in caught.value.evidence


def test_http_ready_returns_when_a_version_is_available(
        loopback_server: tuple[str, type[_Handler]]) -> None:
    url, handler = loopback_server
    body = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                      "status": {"error_code": "OK", "error_message": ""}}]}
    handler.reply = (200, json.dumps(body))
    assert "AVAILABLE" in waiting.HttpReady(url, waiting.ModelAvailable(), timeout=5).wait()


def test_http_ready_abort_ends_the_wait_at_once(
        loopback_server: tuple[str, type[_Handler]]) -> None:
    url, _ = loopback_server
    with pytest.raises(WaitTimeout, match="container exited with code 3"):
        waiting.HttpReady(url, waiting.ModelAvailable(), timeout=60,
                         abort=lambda: "container exited with code 3").wait()


def test_model_available_raises_the_server_error_when_every_version_ended() -> None:
    body = {"model_version_status": [{"version": "1", "state": "END", "status": {
        "error_code": "NOT_FOUND", "error_message": "Op type not registered 'X'"}}]}
    with pytest.raises(RuntimeFailure, match="Op type not registered 'X'") as caught:
        waiting.ModelAvailable()(200, json.dumps(body))
    assert caught.value.kind == "NOT_FOUND"
    assert waiting.ModelAvailable(fail_on_error=False)(200, json.dumps(body)) is False
    assert waiting.ModelAvailable()(404, "not json") is False




def test_http_ready_evidence_holds_the_log_tail_and_hint(
        loopback_server: tuple[str, type[_Handler]]) -> None:
    url, handler = loopback_server
    handler.reply = (503, "warming up")
    log = "\n".join(f"line {i}" for i in range(100))
    with pytest.raises(WaitTimeout) as caught:
        waiting.HttpReady(url, waiting.ModelAvailable(), timeout=0.5, poll_interval=0.1,
                          logs=lambda n: "\n".join(log.splitlines()[-n:]), log_tail_lines=3,
                          log_label="server log", hint="read the log").wait()
    error = caught.value
    assert error.message == f"{url} was not ready after 0s"
    assert "last seen: HTTP 503: warming up" in error.evidence
    assert "--- server log (last 3 lines) ---\nline 97\nline 98\nline 99" in error.evidence
    assert "line 96" not in error.evidence
    assert error.hint == "read the log"


def test_an_abort_that_raises_ends_the_wait_with_its_error(
        loopback_server: tuple[str, type[_Handler]]) -> None:
    url, _ = loopback_server

    def load_failed() -> str | None:
        raise RuntimeFailure("tfserving-compatible", "Op type not registered 'FFTND'")

    clock = FakeClock()
    with pytest.raises(RuntimeFailure, match="FFTND"):
        waiting.HttpReady(url, waiting.ModelAvailable(), timeout=60, abort=load_failed,
                          clock=clock, sleep=clock.sleep).wait()
    assert clock.sleeps == []  # ended before the first poll, not after the timeout


def test_port_listening_waits_for_a_listener() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # nothing listens on the port now: the wait times out, saying what it saw
    with pytest.raises(WaitTimeout) as caught:
        waiting.PortListening("127.0.0.1", port, timeout=0.3, poll_interval=0.1).wait()
    assert f"a listener on 127.0.0.1:{port} was not ready" in caught.value.message
    assert "ConnectionRefusedError" in caught.value.evidence

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        port = listener.getsockname()[1]
        assert waiting.PortListening("127.0.0.1", port, timeout=5).wait() == f"127.0.0.1:{port}"
    finally:
        listener.close()


def test_log_message_waits_for_the_pattern_and_counts() -> None:
    log: list[str] = ["starting"]

    def grow() -> None:
        for line in ("Loading servable: m", "Successfully loaded servable version m/1",
                     "Successfully loaded servable version m/2"):
            time.sleep(0.1)
            log.append(line)

    thread = threading.Thread(target=grow)
    thread.start()
    try:
        found = waiting.LogMessage(lambda: "\n".join(log), r"Successfully loaded \S+",
                                   times=2, timeout=10, poll_interval=0.05).wait()
    finally:
        thread.join()
    assert found == "Successfully loaded servable"


def test_log_message_timeout_shows_the_tail() -> None:
    text = "\n".join(["booting"] * 50 + ["E failed to bind 0.0.0.0:8501: in use"])
    with pytest.raises(WaitTimeout) as caught:
        waiting.LogMessage(lambda: text, r"Running gRPC ModelServer", timeout=0.2,
                           poll_interval=0.05, log_tail_lines=2).wait()
    error = caught.value
    assert "log message /Running gRPC ModelServer/ was not ready" in error.message
    assert "0 of 1 matches; last line: E failed to bind 0.0.0.0:8501: in use" in error.evidence
    assert "--- log (last 2 lines) ---\nbooting\nE failed to bind" in error.evidence


def test_condition_returns_what_held_and_a_timeout_says_what_it_saw_last() -> None:
    seen = iter([["abc123"], ["abc123"], []])
    clock = FakeClock()
    assert waiting.Condition("the containers removed", lambda: next(seen), lambda ids: ids == [],
                             timeout=10, poll_interval=1, clock=clock, sleep=clock.sleep).wait() == "[]"
    assert clock.sleeps == [1, 1]
    clock = FakeClock()
    with pytest.raises(WaitTimeout) as caught:
        waiting.Condition("process 4242 ended", lambda: {"pid": 4242, "state": "S (sleeping)"},
                          lambda state: state is None, timeout=3, clock=clock, sleep=clock.sleep,
                          hint="the watchdog polls every second").wait()
    assert caught.value.message == "process 4242 ended was not ready after 3s"
    assert caught.value.evidence == "last seen: {'pid': 4242, 'state': 'S (sleeping)'}"
    assert caught.value.hint == "the watchdog polls every second"


def test_log_message_abort_reason_is_in_the_message() -> None:
    with pytest.raises(WaitTimeout, match=r"after \d+\.\ds: server process exited with code 1"):
        waiting.LogMessage(lambda: "", "ready", timeout=60,
                           abort=lambda: "server process exited with code 1").wait()



def _log_server(log: list[str]) -> Any:
    from harness.targets.tfserving.client import Server

    return Server(rest_url="http://127.0.0.1:9", grpc_target="127.0.0.1:9", implementation="stand-in",
                  mode="test", model_name="model", read_logs=lambda tail: "\n".join(log))


def test_raise_from_log_raises_the_servers_own_line_once_it_appears() -> None:
    log = ["I start", "E Could not find base path /models/classifier for servable classifier", "I poll"]
    with pytest.raises(RuntimeFailure) as caught:
        _log_server(log).raise_from_log(r"Could not find base path")
    assert caught.value.message == "E Could not find base path /models/classifier for servable classifier"


def test_raise_from_log_never_returns_quietly_when_the_line_does_not_come() -> None:
    # The attack of issue 24: on a busy machine the failure line comes late; a wait that returned
    # quietly would let the faulty variant read as "not reproduced".  It must say what it waited for.
    with pytest.raises(WaitTimeout) as caught:
        _log_server(["I still starting up"]).raise_from_log(r"Failed to start server", timeout=0)
    assert "Failed to start server" in str(caught.value)
    assert "I still starting up" in caught.value.evidence
