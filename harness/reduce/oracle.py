"""Running reproducer scripts: in a fresh process each (:func:`run_fresh`, what the written
reproducer is verified with, as a person would run it), or many candidates in one long-lived
process (:class:`ScriptWorker`: imports the runtime once, calls each candidate script's own
``observe(directory)``; inside :func:`reused_workers`, one such process serves reduction after
reduction).

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
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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


class _WorkerProcess:
    """One worker Python: the process, the lines it printed (read by a thread of its own), its log."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "worker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen([sys.executable, "-c", WORKER_SOURCE], cwd=home, env=clean_environment(home),
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
                                        start_new_session=True, preexec_fn=_confine)
        self.lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    def _read(self, stdout: IO[str] | None) -> None:
        for line in stdout or ():
            self.lines.put(line)
        self.lines.put("")  # the end: the worker is gone

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@dataclass
class _ReusedWorkers:
    """The idle workers of a :func:`reused_workers` block, and the directory their homes are in."""

    homes: Path
    idle: list[_WorkerProcess] = field(default_factory=list)


_REUSED: _ReusedWorkers | None = None


@contextmanager
def reused_workers() -> Iterator[None]:
    """Inside this block a ScriptWorker that ends leaves its Python running for the next one (which
    then skips starting a Python and importing the runtime again); every worker is ended when the
    block ends.  Outside it (``pitfalls reduce``), each reduction has a worker of its own.  For a
    process that reduces many models one after another (the test suite): the candidates of
    different models then share one Python, so use it only for models the caller trusts alike."""
    global _REUSED
    if _REUSED is not None:  # nested: the outer block owns the workers
        yield
        return
    with tempfile.TemporaryDirectory(prefix="pitfalls-reduce-workers-") as homes:
        _REUSED = _ReusedWorkers(Path(homes))
        try:
            yield
        finally:
            reused, _REUSED = _REUSED, None
            for worker in reused.idle:
                worker.close()


class ScriptWorker:
    """One long-lived Python that runs candidate scripts' ``observe`` one after another (a context manager)."""

    def __init__(self, home: Path, timeout: float = OBSERVE_TIMEOUT) -> None:
        self.home = home
        self.timeout = timeout
        self._worker: _WorkerProcess | None = None

    def __enter__(self) -> "ScriptWorker":
        reused = _REUSED
        if reused is None:
            self._worker = _WorkerProcess(self.home)
            return self
        while reused.idle:
            worker = reused.idle.pop()
            if worker.alive():
                self._worker = worker
                return self
            worker.close()
        # a worker kept for the next reduction has a home of its own (this one's directory goes with it)
        self._worker = _WorkerProcess(Path(tempfile.mkdtemp(prefix="worker-", dir=reused.homes)))
        return self

    def __exit__(self, *exc: Any) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        reused = _REUSED
        if reused is not None and exc[0] is None and worker.alive():
            reused.idle.append(worker)
        else:
            worker.close()

    def observe(self, script: Path, directory: Path) -> Observation:
        """What ``script``'s ``observe`` sees on the candidate in ``directory``."""
        worker = self._worker
        stdin = worker.process.stdin if worker is not None else None
        if worker is None or stdin is None:
            raise HarnessError("ScriptWorker.observe outside its `with` block")
        process = worker.process
        stdin.write(json.dumps({"script": str(script), "dir": str(directory)}) + "\n")
        stdin.flush()
        while True:
            try:
                line = worker.lines.get(timeout=self.timeout)
            except queue.Empty:
                process.kill()
                raise HarnessError(f"a candidate took more than {self.timeout:.0f} s in the reproducer worker",
                                   hint=f"its log: {worker.log_path}") from None
            if not line:
                raise HarnessError(f"the reproducer worker ended (exit code {process.wait()})",
                                   hint=f"its log: {worker.log_path}")
            found = observation_in(line)
            if found is not None:
                return found
