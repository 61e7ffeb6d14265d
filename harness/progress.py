"""Run progress for ``pitfalls run``: the events pytest streams, and the consumer that shows them.

Producer: a small pytest plugin, loaded with ``-p harness.progress`` by the command line only.  When ``$PITFALLS_PROGRESS`` names a
file, it appends one JSON line per event: ``{"event": "total", "count"}`` once the items are known,
``{"event": "start", "nodeid", "label"}`` when an item starts and ``{"event": "done", "nodeid",
"outcome", "label"}``
when it ends.  Under pytest-xdist the controller receives the workers' start and report hooks, so
the events come from the controller process only.

Consumer: :class:`Progress`, which the command line polls while pytest runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence, TextIO

import pytest

PROGRESS_ENV = "PITFALLS_PROGRESS"


def _emit(config: pytest.Config, event: dict[str, Any]) -> None:
    if hasattr(config, "workerinput"):
        return  # xdist worker: the controller reports
    path = os.environ.get(PROGRESS_ENV)
    if not path:
        return
    event["t"] = round(time.time(), 3)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    _emit(session.config, {"event": "total", "count": len(session.items)})


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: Sequence[str]) -> None:
    _emit(node.config, {"event": "total", "count": len(ids)})


def _label(nodeid: str, location: Any) -> str:
    """What to show for an item: a scenario item's report location reads "<scenario id> <variant>[<target>]"."""
    try:
        return str(location[2]) or nodeid
    except (TypeError, IndexError):
        return nodeid


class _Reporter:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logstart(self, nodeid: str, location: Any) -> None:
        _emit(self.config, {"event": "start", "nodeid": nodeid, "label": _label(nodeid, location)})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            outcome = "xfailed" if hasattr(report, "wasxfail") and report.outcome == "skipped" else report.outcome
            _emit(self.config, {"event": "done", "nodeid": report.nodeid, "outcome": outcome,
                                "label": _label(report.nodeid, report.location)})


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_Reporter(config), "pitfalls-progress")


# --------------------------------------------------------------------------------------------
# The consumer


def display_name(nodeid: str) -> str:
    """A node id as the run shows it: ``<scenario id> <variant>[<target>]``."""
    path, _, name = nodeid.partition("::")
    path = path.replace("\\", "/")
    if "scenarios/" in path:
        path = path.split("scenarios/", 1)[1]
    return f"{path[:-3] if path.endswith('.py') else path} {name}".strip()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


class Progress:
    """Follows the events written above and shows what runs, how far along, how long."""

    def __init__(self, events: Path, out: TextIO, live: bool) -> None:
        self.events, self.out, self.live = events, out, live
        self.offset = 0
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}
        self.labels: dict[str, str] = {}
        self.started = time.monotonic()
        self.last_heartbeat = self.started
        self.failed = 0

    def poll(self) -> None:
        if self.events.exists():
            with self.events.open(encoding="utf-8") as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind("\n") + 1]
            self.offset += len(complete.encode("utf-8"))
            for line in complete.splitlines():
                try:
                    self._event(json.loads(line))
                except (json.JSONDecodeError, KeyError):
                    continue
        self._status()

    def _event(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "total":
            self.total = max(self.total, int(event["count"]))
        elif kind == "start":
            self.running[event["nodeid"]] = time.monotonic()
            self.labels[event["nodeid"]] = event.get("label") or display_name(event["nodeid"])
        elif kind == "done":
            started = self.running.pop(event["nodeid"], None)
            took = f" ({time.monotonic() - started:.1f} s)" if started else ""
            self.done += 1
            outcome = event.get("outcome", "")
            self.failed += outcome == "failed"
            mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "xfailed": "gap "}.get(outcome, outcome)
            label = event.get("label") or self.labels.get(event["nodeid"]) or display_name(event["nodeid"])
            self._line(f"[{self.done}/{self.total or '?'}] {mark} {label}{took}")

    def _line(self, text: str) -> None:
        if self.live:
            self.out.write("\r\x1b[K")
        self.out.write(text + "\n")
        self.out.flush()

    def _status(self) -> None:
        now = time.monotonic()
        current = ", ".join(f"{self.labels.get(n, n)} {now - t:.0f} s" for n, t in list(self.running.items())[-2:])
        status = f"{_clock(now - self.started)}  {self.done}/{self.total or '?'} done" + (
            f"  running: {current}" if current else "")
        if self.live:
            width = shutil.get_terminal_size((100, 20)).columns
            self.out.write("\r\x1b[K" + status[: width - 1])
            self.out.flush()
        elif now - self.last_heartbeat >= 30:
            self.last_heartbeat = now
            self._line(status)

    def finish(self) -> None:
        self.poll()
        if self.live:
            self.out.write("\r\x1b[K")
            self.out.flush()
