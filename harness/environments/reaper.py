"""A watchdog that removes what a run started outside its own process tree when the run dies.

Why: a harness killed outright (SIGKILL of its process group by a CI timeout, the OOM killer)
runs no ``finally``.  Its serving containers run under dockerd, not under the harness, so they
would keep running until a later run's :func:`remove_leftover_containers` found them; processes
it started in their own session (the arm64 LiteRT worker under qemu, a host server) survive a
SIGKILL of the group too.

How, in the spirit of testcontainers' Ryuk: the first time an owning process needs it (its first
container, its first such process) :func:`ensure_reaper` starts ``python -m
harness.environments.reaper --owner <pid>`` in a session of its own, so a signal to the owner's
process group does not reach it.  The owner keeps the write end of a pipe to the watchdog's
stdin; the kernel closes it when the owner dies, however it dies.  Then the watchdog

1. SIGKILLs the process groups the owner registered (:func:`watch_process_group`) and did not
   unregister, each only if its leader still has the start time it had when registered (a
   reused pid is never killed);
2. removes the containers labelled ``pitfalls=1`` *and* ``pitfalls.owner=<owner id>`` (the
   random id of :mod:`harness.environments.ownership`, never the pid: another run in another pid
   namespace may have the same pid; never another owner's: each pytest-xdist worker is an owner
   with its own id and watchdog), twice, 1.5 s apart, for a create request that was still in
   flight when the owner died, then the owner's work directory and, once its lock is free, its
   lock file;
3. exits.  It also polls the owner's pid every second, for the case where a forked child kept
   a copy of the pipe.  So it outlives its owner by about two seconds.

Ryuk itself is an image, and no image can be pulled here; a watchdog inside each container
cannot see the owner's pid or pipe (another pid namespace), so the watchdog is a host process.
What it cannot survive: a kill of every process of the session or cgroup (``systemd`` stopping
a unit); then the next run's leftover removal remains the fallback.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.environments.ownership import OWNER_ID_LABEL, current_owner

CONTAINER_LABEL = "pitfalls"
OWNER_LABEL = OWNER_ID_LABEL
READY_LINE = "reaper ready"
READY_TIMEOUT_S = 20.0
SECOND_PASS_DELAY_S = 1.5
OWNER_POLL_S = 1.0


# --- the owner's side ----------------------------------------------------------------------

@dataclass
class Reaper:
    """The owner's handle on its watchdog process."""

    owner: int
    owner_id: str
    process: subprocess.Popen[str]
    channel: IO[str]

    def send(self, line: str) -> None:
        with _SENDING:  # a text stream is not safe to write from two threads (check runs targets in threads)
            self.channel.write(line + "\n")
            self.channel.flush()

    def alive(self) -> bool:
        return self.owner == os.getpid() and self.process.poll() is None


_lock = threading.Lock()
_SENDING = threading.Lock()
_reaper: Reaper | None = None


def _forget_after_fork() -> None:
    """A forked child is another owner: let go of the parent's pipe.

    The descriptor number is pointed at /dev/null rather than closed, so that the file object,
    whenever it is finalised, closes a descriptor that is still its own.
    """
    global _lock, _reaper
    _lock = threading.Lock()  # a thread of the parent may have held it at the fork
    if _reaper is not None:
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, _reaper.channel.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
        _reaper = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def _log_path() -> Path:
    from harness.paths import environment_cache_root

    path = environment_cache_root() / "reaper.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.stat().st_size > 1_000_000:
        path.write_text("")
    return path


def _start() -> Reaper:
    from harness.errors import HarnessError
    from harness.paths import REPO_ROOT

    owner = os.getpid()
    owner_id = current_owner().id
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    with _log_path().open("a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "harness.environments.reaper", "--owner", str(owner), "--owner-id", owner_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, text=True,
            start_new_session=True, close_fds=True, cwd="/")
    assert process.stdin is not None and process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], READY_TIMEOUT_S)
    line = process.stdout.readline().strip() if ready else ""
    process.stdout.close()
    if line != READY_LINE:
        process.kill()
        process.wait()
        raise HarnessError("the reaper (the watchdog that cleans up after a killed run) did not "
                           "start", evidence=f"its first line: {line!r}; see {_log_path()}",
                           hint="python -m harness.environments.reaper --owner <pid> must run here")
    return Reaper(owner, owner_id, process, process.stdin)


def ensure_reaper() -> Reaper:
    """This process's watchdog, started on first use (again if it has died)."""
    global _reaper
    with _lock:
        if _reaper is None or not _reaper.alive():
            _reaper = _start()
        return _reaper


def _send(line: str) -> None:
    for attempt in (1, 2):
        reaper = ensure_reaper()
        try:
            reaper.send(line)
            return
        except (BrokenPipeError, ValueError):  # the watchdog died: start another, once
            if attempt == 2:
                raise
            reaper.process.wait()


def process_start_time(pid: int) -> str | None:
    """The start time (clock ticks since boot) of ``pid`` from /proc, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def watch_process_group(pgid: int) -> None:
    """Have the watchdog SIGKILL process group ``pgid`` if this process dies before
    :func:`forget_process_group`; for children started with ``start_new_session=True``."""
    start = process_start_time(pgid)
    if start is not None:
        _send(f"group {pgid} {start}")


def forget_process_group(pgid: int) -> None:
    """The group has been stopped normally: the watchdog must not touch it any more."""
    with _lock:
        reaper = _reaper
    if reaper is not None and reaper.alive():
        try:
            reaper.send(f"forget {pgid}")
        except (BrokenPipeError, ValueError):
            pass


def reaper_pid() -> int | None:
    """The watchdog's pid, if this process has one running (for tests)."""
    with _lock:
        return _reaper.process.pid if _reaper is not None and _reaper.alive() else None


# --- the watchdog's side ---------------------------------------------------------------------

def _say(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} reaper {os.getpid()}: {message}",
          file=sys.stderr, flush=True)


def _owner_alive(owner: int) -> bool:
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    state = Path(f"/proc/{owner}/stat")
    try:
        return state.read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _kill_groups(groups: dict[int, str]) -> None:
    for pgid, start in groups.items():
        if process_start_time(pgid) != start:
            continue
        try:
            os.killpg(pgid, signal.SIGKILL)
            _say(f"killed process group {pgid}")
        except (ProcessLookupError, PermissionError):
            pass


def _remove_containers(owner_id: str) -> int:
    try:
        import docker
        import docker.errors
    except ImportError:
        return 0
    try:
        client = docker.from_env(timeout=60)
        found = client.containers.list(all=True, filters={
            "label": [f"{CONTAINER_LABEL}=1", f"{OWNER_LABEL}={owner_id}"]}, ignore_removed=True)
    except Exception as exc:  # noqa: BLE001 - no engine: nothing of ours can run there
        _say(f"cannot list containers: {type(exc).__name__}: {exc}")
        return 0
    removed = 0
    for container in found:
        if container.labels.get(OWNER_LABEL) != owner_id:
            continue  # never another owner's, whatever the filter did
        try:
            container.remove(force=True, v=True)
            removed += 1
            _say(f"removed container {container.name} of owner {owner_id}")
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            _say(f"could not remove {container.name}: {exc}")
    client.close()
    return removed


def reap(owner_id: str, groups: dict[int, str]) -> None:
    from harness.environments.ownership import remove_gone_lock, remove_leftover_work_dirs

    _kill_groups(groups)
    _remove_containers(owner_id)
    time.sleep(SECOND_PASS_DELAY_S)
    _remove_containers(owner_id)
    remove_leftover_work_dirs()  # the owner's, now that its lock is free (and any other gone owner's)
    remove_gone_lock(owner_id)


def watch(owner: int, channel: IO[str]) -> dict[int, str]:
    """Read registrations until the owner's pipe closes or the owner is gone."""
    groups: dict[int, str] = {}
    buffered = ""
    descriptor = channel.fileno()
    while True:
        ready, _, _ = select.select([descriptor], [], [], OWNER_POLL_S)
        if not ready:
            if not _owner_alive(owner):
                return groups
            continue
        chunk = os.read(descriptor, 65536)
        if not chunk:
            return groups
        buffered += chunk.decode(errors="replace")
        *lines, buffered = buffered.split("\n")
        for line in lines:
            words = line.split()
            if len(words) == 3 and words[0] == "group" and words[1].isdigit():
                groups[int(words[1])] = words[2]
            elif len(words) == 2 and words[0] == "forget" and words[1].isdigit():
                groups.pop(int(words[1]), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Clean up after a pitfalls process that dies.")
    parser.add_argument("--owner", type=int, required=True, help="pid of the owning process")
    parser.add_argument("--owner-id", required=True, help="the owner's random id (its containers' pitfalls.owner label)")
    options = parser.parse_args(argv)
    for name in ("SIGINT", "SIGHUP", "SIGQUIT"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    print(READY_LINE, flush=True)
    try:
        sys.stdout.close()
    except OSError:
        pass
    groups = watch(options.owner, sys.stdin)
    reap(options.owner_id, groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
