"""Running reproducer scripts: in a fresh process each (:func:`run_fresh`, what the written
reproducer is verified with, as a person would run it), or many candidates in one long-lived
process (:class:`ScriptWorker`: imports the runtime once, calls each candidate script's own
``observe(directory)``).

Both run the shared virtual environment's Python with a clean environment (no ``PYTHONPATH``, so
nothing of ``pitfalls`` is importable, ``HOME`` the work directory), in a new session, without
core dumps, with the work directory as the current directory.
"""

from __future__ import annotations

import json
import os
import resource
import queue
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from harness.errors import HarnessError
from harness.reduce.api import RESULT_PREFIX, Observation

#: seconds one candidate may take before the reducer gives up on it (TensorFlow's import included)
OBSERVE_TIMEOUT = 900.0

WORKER_SOURCE = r'''
import json, runpy, sys
for line in sys.stdin:
    request = json.loads(line)
    try:
        found = runpy.run_path(request["script"], run_name="reproducer")["observe"](request["dir"])
    except Exception as exc:
        found = {"kind": "broken", "text": type(exc).__name__ + ": " + str(exc)}
    sys.stdout.write("%s" + json.dumps(found) + "\n")
    sys.stdout.flush()
''' % RESULT_PREFIX


def clean_environment(home: Path) -> dict[str, str]:
    """What a reproducer runs with: no PYTHONPATH, no credentials, a throw-away HOME."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _confine() -> None:
    """In the child before exec: no core files (the model's weights would land in one)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def observation_in(stdout: str) -> Observation | None:
    """The last ``REPRODUCER-RESULT`` line of a script's output, parsed; None when there is none."""
    lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if not lines:
        return None
    found = json.loads(lines[-1][len(RESULT_PREFIX):])
    return found if isinstance(found, dict) else None


def run_fresh(script: Path, home: Path, timeout: float = OBSERVE_TIMEOUT,
              args: Sequence[str] = ()) -> tuple[int, Observation, str]:
    """``python script *args`` in a fresh process with a clean environment: (exit code, observation, output)."""
    home.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, str(script), *args], cwd=home, env=clean_environment(home), capture_output=True,
                          text=True, timeout=timeout, start_new_session=True, preexec_fn=_confine)
    found = observation_in(done.stdout)
    if found is None:
        found = {"kind": "broken", "text": f"exit code {done.returncode}: {done.stderr.strip()[-2000:]}"}
    return done.returncode, found, done.stdout + done.stderr


class ScriptWorker:
    """One long-lived Python that runs candidate scripts' ``observe`` one after another (a context manager)."""

    def __init__(self, home: Path, timeout: float = OBSERVE_TIMEOUT) -> None:
        self.home = home
        self.timeout = timeout
        self._process: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._lines: "queue.Queue[str]" = queue.Queue()

    def __enter__(self) -> "ScriptWorker":
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.home / "worker.log", "wb")  # noqa: SIM115 - closed in __exit__
        self._process = subprocess.Popen([sys.executable, "-c", WORKER_SOURCE], cwd=self.home,
                                         env=clean_environment(self.home), stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._log, text=True,
                                         start_new_session=True, preexec_fn=_confine)
        threading.Thread(target=self._read, args=(self._process.stdout,), daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _read(self, stdout: IO[str] | None) -> None:
        for line in stdout or ():
            self._lines.put(line)
        self._lines.put("")  # the end: the worker is gone

    def observe(self, script: Path, directory: Path) -> Observation:
        """What ``script``'s ``observe`` sees on the candidate in ``directory``."""
        process = self._process
        if process is None or process.stdin is None:
            raise HarnessError("ScriptWorker.observe outside its `with` block")
        process.stdin.write(json.dumps({"script": str(script), "dir": str(directory)}) + "\n")
        process.stdin.flush()
        while True:
            try:
                line = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                process.kill()
                raise HarnessError(f"a candidate took more than {self.timeout:.0f} s in the reproducer worker",
                                   hint=f"its log: {self.home / 'worker.log'}") from None
            if not line:
                raise HarnessError(f"the reproducer worker ended (exit code {process.wait()})",
                                   hint=f"its log: {self.home / 'worker.log'}")
            found = observation_in(line)
            if found is not None:
                return found
