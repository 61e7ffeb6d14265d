"""Waits as objects, in the style of testcontainers' wait strategies.

A wait polls one condition until it holds: :class:`HttpReady` (``GET url`` until a predicate on
status and body holds, e.g. :class:`ModelAvailable`), :class:`PortListening` (a TCP connect
succeeds), :class:`LogMessage` (a pattern shows in a log) and :class:`Condition` (any probe whose
value a predicate accepts: what tests wait for, e.g. a container gone or a process ended).  They share :class:`Wait`:

* ``timeout`` and ``poll_interval`` in seconds (on ``clock`` and ``sleep``, which tests replace
  with a fake clock so that no verdict depends on how fast the machine is); ``abort``, asked before each poll, returns a
  reason to give up at once (e.g. "container exited with code 1") and may itself raise (a
  server's own load error, as :class:`RuntimeFailure`);
* ``logs``, a callable returning the last N lines of the log of whatever is awaited
  (``log_label`` names it in the evidence), and ``hint``;
* :meth:`Wait.wait` returns what the successful poll saw; every give-up raises
  :class:`WaitTimeout` whose message says what was awaited and for how long, and whose evidence
  holds what was seen last and the log tail.

Nothing here imports more than the standard library and the harness's own light modules.
"""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.environments.serving_image import COMPAT_IMPLEMENTATION
from harness.errors import RuntimeFailure, WaitTimeout

LOG_TAIL_LINES = 40

Predicate = Callable[[int, str], bool]
LogTail = Callable[[int], str]


class WaitStrategy(Protocol):
    """What every wait offers: wait until ready, or raise :class:`WaitTimeout`."""

    def wait(self) -> str: ...


@dataclass
class Wait:
    """The shared loop: poll until :meth:`poll` returns a result, abort or time out.

    Subclasses implement :meth:`poll` (None while not ready; set :attr:`last_seen`) and
    :meth:`describe` (what is awaited, for messages).
    """

    timeout: float = field(default=120.0, kw_only=True)
    poll_interval: float = field(default=0.5, kw_only=True)
    abort: Callable[[], str | None] | None = field(default=None, kw_only=True)
    logs: LogTail | None = field(default=None, kw_only=True)
    log_tail_lines: int = field(default=LOG_TAIL_LINES, kw_only=True)
    log_label: str = field(default="log", kw_only=True)
    hint: str = field(default="", kw_only=True)
    clock: Callable[[], float] = field(default=time.monotonic, kw_only=True, repr=False)  # tests give a fake one
    sleep: Callable[[float], None] = field(default=time.sleep, kw_only=True, repr=False)
    last_seen: str = field(default="nothing yet", init=False)

    def describe(self) -> str:
        raise NotImplementedError

    def poll(self) -> str | None:
        raise NotImplementedError

    def evidence(self) -> str:
        text = f"last seen: {self.last_seen}"
        if self.logs is not None:
            text += (f"\n--- {self.log_label} (last {self.log_tail_lines} lines) ---\n"
                     f"{self.logs(self.log_tail_lines)}")
        return text

    def wait(self) -> str:
        started = self.clock()
        deadline = started + self.timeout
        while True:
            reason = self.abort() if self.abort else None
            if reason:
                raise WaitTimeout(f"gave up waiting for {self.describe()} after "
                                  f"{self.clock() - started:.1f}s: {reason}",
                                  evidence=self.evidence(), hint=self.hint)
            result = self.poll()
            if result is not None:
                return result
            if self.clock() >= deadline:
                raise WaitTimeout(f"{self.describe()} was not ready after {self.timeout:.0f}s",
                                  evidence=self.evidence(), hint=self.hint)
            self.sleep(self.poll_interval)


@dataclass
class HttpReady(Wait):
    """Poll ``GET url`` until ``predicate(status, body)`` holds; :meth:`wait` returns the body.

    The predicate may raise to give up at once (e.g. a model that failed to load for good).
    """

    url: str
    predicate: Predicate

    def describe(self) -> str:
        return self.url

    def _get(self) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(self.url, timeout=max(self.poll_interval, 2.0)) as reply:
                body = reply.read().decode(errors="replace")
                self.last_seen = f"HTTP {reply.status}: {body[:2000]}"
                return reply.status, body
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            self.last_seen = f"HTTP {exc.code}: {body[:2000]}"
            return exc.code, body
        except (OSError, ValueError) as exc:  # refused, reset, timed out while starting
            self.last_seen = f"{type(exc).__name__}: {exc}"
            return None

    def poll(self) -> str | None:
        answer = self._get()
        if answer is not None and self.predicate(*answer):
            return answer[1]
        return None


@dataclass
class PortListening(Wait):
    """Wait until a TCP connection to ``host:port`` is accepted; returns ``"host:port"``."""

    host: str
    port: int

    def describe(self) -> str:
        return f"a listener on {self.host}:{self.port}"

    def poll(self) -> str | None:
        try:
            with socket.create_connection((self.host, self.port),
                                          timeout=max(self.poll_interval, 1.0)):
                pass
        except OSError as exc:
            self.last_seen = f"{type(exc).__name__}: {exc}"
            return None
        self.last_seen = "connected"
        return f"{self.host}:{self.port}"


@dataclass
class LogMessage(Wait):
    """Wait until ``pattern`` (a regex) matches ``times`` times in the log; returns the last match.

    ``read`` returns the whole log so far (``logs`` defaults to its tail).
    """

    read: Callable[[], str]
    pattern: str
    times: int = 1

    def __post_init__(self) -> None:
        if self.logs is None:
            self.logs = lambda lines: "\n".join(self.read().splitlines()[-lines:])

    def describe(self) -> str:
        return f"log message /{self.pattern}/" + (f" x{self.times}" if self.times > 1 else "")

    def poll(self) -> str | None:
        text = self.read()
        matches = [m.group(0) for m in re.finditer(self.pattern, text, re.MULTILINE)]
        lines = text.rstrip().splitlines()
        self.last_seen = (f"{len(matches)} of {self.times} matches; last line: "
                          f"{lines[-1][:500] if lines else '(empty log)'}")
        return matches[self.times - 1] if len(matches) >= self.times else None


@dataclass
class Condition(Wait):
    """Poll ``probe()`` until ``holds(value)``; returns the accepted value's ``repr``.

    ``what`` names the awaited state ("the killed owner's containers removed"); every value the
    probe returns is kept as :attr:`last_seen`, so a timeout says what was seen last.
    """

    what: str
    probe: Callable[[], object]
    holds: Callable[[Any], bool]

    def describe(self) -> str:
        return self.what

    def poll(self) -> str | None:
        value = self.probe()
        self.last_seen = repr(value)[:2000]
        return self.last_seen if self.holds(value) else None


@dataclass(frozen=True)
class ModelAvailable:
    """Predicate on ``GET /v1/models/<name>``: some version is AVAILABLE.

    With ``fail_on_error`` a status where every version has ended with an error raises
    :class:`RuntimeFailure` carrying the server's own error text (e.g. TF's
    "Op type not registered ..." when an older TF loads a newer SavedModel).
    """

    runtime: str = COMPAT_IMPLEMENTATION
    fail_on_error: bool = True

    def __call__(self, status: int, body: str) -> bool:
        if status != 200:
            return False
        try:
            versions = json.loads(body).get("model_version_status") or []
        except (ValueError, AttributeError):
            return False
        if any(v.get("state") == "AVAILABLE" for v in versions):
            return True
        errors = [v.get("status") or {} for v in versions if v.get("state") == "END"]
        errors = [e for e in errors if e.get("error_code", "OK") not in ("OK", 0, "0")]
        if self.fail_on_error and errors and len(errors) == len(versions):
            raise RuntimeFailure(self.runtime, str(errors[0].get("error_message", "")),
                                 kind=str(errors[0].get("error_code", "")),
                                 source="GET /v1/models/<name> model_version_status")
        return False
