"""A small pytest plugin that streams progress events for ``pitfalls run``.

Loaded with ``-p harness.progress`` by the command line only.  When ``$PITFALLS_PROGRESS`` names a
file, it appends one JSON line per event: ``{"event": "total", "count"}`` once the items are known,
``{"event": "start", "nodeid", "label"}`` when an item starts and ``{"event": "done", "nodeid",
"outcome", "label"}``
when it ends.  Under pytest-xdist the controller receives the workers' start and report hooks, so
the events come from the controller process only.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence

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
