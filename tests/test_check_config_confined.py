"""Attack: an app's page, run by `pitfalls check-config`, reaches nothing but the app's own loopback origin.

The page is untrusted code.  This test listens on an address of this machine that is not loopback (the
default-route interface's: what a page could reach on the machine or the network) and on another loopback
port, and plants a page that tries every way out it can: fetch, XHR, an image, navigator.sendBeacon,
EventSource and WebSockets, from the page, from a Worker and from an iframe, and WebRTC (an
RTCPeerConnection whose STUN and TURN servers are this test's UDP listeners).  No listener may receive a
connection or a packet, and the run's ``blocked`` lists what was refused.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.configcheck.examples import copy_example

pytestmark = pytest.mark.slow


def default_route_address() -> str | None:
    """This machine's address on its default-route interface (a UDP connect sends nothing), None without one."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("198.51.100.1", 9))
        address = str(probe.getsockname()[0])
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") or address == "0.0.0.0" else address


class Listeners:
    """A TCP and a UDP listener on ``address``; every connection accepted and every datagram received is kept."""

    def __init__(self, address: str) -> None:
        self.received: list[str] = []
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind((address, 0))
        self.tcp.listen(64)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((address, 0))
        self.address = address
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def tcp_port(self) -> int:
        return int(self.tcp.getsockname()[1])

    @property
    def udp_port(self) -> int:
        return int(self.udp.getsockname()[1])

    def _accept(self) -> None:
        while True:
            try:
                conn, peer = self.tcp.accept()
            except OSError:
                return
            conn.settimeout(2.0)
            try:
                head = conn.recv(120)
            except OSError:
                head = b""
            self.received.append(f"tcp from {peer}: {head!r}")
            conn.close()

    def _receive(self) -> None:
        while True:
            try:
                data, peer = self.udp.recvfrom(2048)
            except OSError:
                return
            self.received.append(f"udp from {peer}: {data[:24]!r}")

    def close(self) -> None:
        for sock in (self.tcp, self.udp):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


def attack_js(tcp: str, udp: str) -> str:
    """Every way out of the page to ``tcp`` (host:port) and ``udp`` (host:port), run from where it is put."""
    return f"""
  const tcp = '{tcp}', udp = '{udp}';
  try {{ new WebSocket('ws://' + tcp + '/ws-' + where); }} catch (e) {{}}
  if (typeof fetch === 'function') fetch('http://' + tcp + '/fetch-' + where, {{mode: 'no-cors'}}).catch(() => {{}});
  try {{ const x = new XMLHttpRequest(); x.open('GET', 'http://' + tcp + '/xhr-' + where); x.send(); }} catch (e) {{}}
  if (typeof Image === 'function') {{ const img = new Image(); img.src = 'http://' + tcp + '/img-' + where; }}
  if (typeof navigator.sendBeacon === 'function') navigator.sendBeacon('http://' + tcp + '/beacon-' + where, 'x');
  if (typeof EventSource === 'function') new EventSource('http://' + tcp + '/events-' + where);
  if (typeof RTCPeerConnection === 'function') {{
    const pc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:' + udp}},
      {{urls: 'turn:' + udp + '?transport=udp', username: 'u', credential: 'p'}},
      {{urls: 'turn:' + tcp + '?transport=tcp', username: 'u', credential: 'p'}}]}});
    pc.createDataChannel('out');
    pc.createOffer().then((offer) => pc.setLocalDescription(offer)).catch(() => {{}});
  }}
"""


def attack_page(tcp: str, udp: str) -> tuple[str, str]:
    """(attack.html, attack.js): the page loads tf.js (so the checker opens it) and runs the attack from
    itself, a Worker and an iframe."""
    body = attack_js(tcp, udp)
    worker = json.dumps("const where = 'worker';" + body)
    iframe = ("<script>const where = 'iframe';" + body + "</script>").replace('"', "&quot;")
    page = f"""<!DOCTYPE html>
<html><head><script src="https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/dist/tf.min.js"></script></head>
<body><script src="attack.js"></script><iframe srcdoc="{iframe}"></iframe></body></html>
"""
    script = (f"const where = 'page';{body}\n"
              f"new Worker(URL.createObjectURL(new Blob([{worker}], {{type: 'text/javascript'}})));\n")
    return page, script


@pytest.fixture
def outside() -> Iterator[Listeners]:
    address = default_route_address()
    if address is None:
        pytest.skip("this machine has no default-route interface: no non-loopback address of its own to listen on")
    listeners = Listeners(address)
    yield listeners
    listeners.close()


@pytest.fixture
def other_loopback() -> Iterator[Listeners]:
    listeners = Listeners("127.0.0.1")
    yield listeners
    listeners.close()


@pytest.fixture
def chromium() -> None:
    from harness.targets.tfjs.target import TfjsTarget

    reason = TfjsTarget.unavailable_reason()
    if reason:
        pytest.skip(reason)


def test_attack_an_apps_page_reaches_no_address_of_this_machine_nor_another_loopback_port(
        chromium: None, outside: Listeners, other_loopback: Listeners, tmp_path: Path) -> None:
    from harness.paths import REPO_ROOT

    app = copy_example("tfjs", "fixed", tmp_path / "app")
    for name, (tcp, udp) in {"out": (f"{outside.address}:{outside.tcp_port}", f"{outside.address}:{outside.udp_port}"),
                             "lo": (f"127.0.0.1:{other_loopback.tcp_port}", f"127.0.0.1:{other_loopback.udp_port}")
                             }.items():
        page, script = attack_page(tcp, udp)
        (app / f"attack-{name}.html").write_text(page.replace("attack.js", f"attack-{name}.js"))
        (app / f"attack-{name}.js").write_text(script)
    proc = subprocess.run([sys.executable, "-m", "harness", "check-config", str(app), "--json", "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PITFALLS_TFJS_BACKENDS": "cpu"})
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    # the attack: nothing arrived, neither at the machine's own address nor at another loopback port
    assert outside.received == [], outside.received
    assert other_loopback.received == [], other_loopback.received
    report = json.loads(proc.stdout)
    runs = {r["page"]: r for r in report["bundles"][0]["runs"]}
    assert set(runs) == {"index.html", "attack-out.html", "attack-lo.html"}, runs
    assert runs["index.html"]["blocked"] == []
    for name, listeners in (("out", outside), ("lo", other_loopback)):
        blocked = runs[f"attack-{name}.html"]["blocked"]
        tcp = f"{listeners.address}:{listeners.tcp_port}"
        # what the context's handler refused (page and Worker requests), by URL
        for url in ("fetch-page", "xhr-page", "img-page", "beacon-page", "events-page", "fetch-worker"):
            assert f"http://{tcp}/{url}" in blocked, (url, blocked)
        # the WebSockets (page, Worker, iframe) pass the handler: the network stack sends them to the refusing
        # proxy, which lists its request line (the tunnel a ws:// URL asks for)
        assert f"CONNECT {tcp}" in blocked, blocked
    # the attack pages predict nothing: the wait ended on the page being quiet, and says so
    assert "quiet" in runs["attack-out.html"]["predictions_waited"], runs["attack-out.html"]
    assert re.fullmatch(r"\d+ predictions seen", runs["index.html"]["predictions_waited"]), runs["index.html"]
