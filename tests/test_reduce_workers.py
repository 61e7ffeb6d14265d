"""The reproducer worker of ``pitfalls reduce`` (:class:`harness.reduce.oracle.ScriptWorker`): its own
Python per reduction, or, inside :func:`harness.reduce.oracle.reused_workers`, one Python kept for
the next reduction and ended when the block ends."""

from __future__ import annotations

import os
from pathlib import Path

from harness.reduce.oracle import ScriptWorker, reused_workers

#: a candidate script that imports nothing heavy: which process ran it, and whether a module it set is still there
SCRIPT = '''
import os, sys
def observe(here):
    seen = hasattr(sys, "pitfalls_test_mark")
    sys.pitfalls_test_mark = True
    return {"kind": "none", "pid": os.getpid(), "seen_before": seen}
'''


def _observe_twice(tmp_path: Path) -> list[dict]:
    script = tmp_path / "reproduce.py"
    script.write_text(SCRIPT)
    seen = []
    for n in range(2):
        with ScriptWorker(tmp_path / f"home{n}") as worker:
            seen.append(worker.observe(script, tmp_path))
    return seen


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return not status.is_file() or "zombie" in status.read_text()


def test_each_reduction_has_a_worker_of_its_own(tmp_path: Path) -> None:
    first, second = _observe_twice(tmp_path)
    assert first["pid"] != second["pid"] and not second["seen_before"]
    assert _gone(first["pid"]) and _gone(second["pid"])
    assert (tmp_path / "home0" / "worker.log").is_file()


def test_reused_workers_keep_one_python_for_the_next_reduction_and_end_it(tmp_path: Path) -> None:
    with reused_workers():
        first, second = _observe_twice(tmp_path)
        assert first["pid"] == second["pid"] and second["seen_before"]
        assert not _gone(first["pid"])
        assert not (tmp_path / "home0").exists()  # its home is the block's, not the first reduction's directory
    assert _gone(first["pid"])
