"""What a model server's own log lines say: a version's load time (glog time stamps)."""

from __future__ import annotations

from harness.errors import HarnessError

_GLOG_TIME = r"(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)"


def load_seconds_from_log(log: str, model: str, version: int = 1) -> float:
    """Seconds between the server's ``Loading servable version`` and ``Successfully loaded`` lines.

    Both tensorflow/serving and the compatible server log these two lines (glog time stamps).
    """
    import datetime
    import re

    sid = re.escape(f"{{name: {model} version: {version}}}")
    stamps = []
    for what in ("Loading servable version", "Successfully loaded servable version"):
        match = re.search(_GLOG_TIME + r".*" + what + " " + sid, log)
        if match is None:
            raise HarnessError(f"no '{what} {{name: {model} version: {version}}}' line in the server log",
                               evidence=log[-3000:])
        stamps.append(datetime.datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S.%f"))
    return (stamps[1] - stamps[0]).total_seconds()
