"""The watchdog (harness.environments.reaper): nothing leaks when a run is killed outright.

Each test starts an owner process in a session of its own (so that killing its process group
does not touch pytest), lets it start a serving container or a process group of its own, then
SIGKILLs the owner's whole group, as a CI timeout does, and waits (a :class:`Condition` that says
what it saw last when it expires) for the watchdog to have removed what the owner left.  The container tests need the compat image (built
on first use, then cached) and skip without a Docker engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.environments import engine
from harness.environments.reaper import process_start_time
from harness.paths import REPO_ROOT
from harness.waiting import Condition

CLEAN_WITHIN_S = 60.0  # a bound on a wait that ends as soon as the watchdog is done, not a timed assertion
TF_VERSION = "2.19.0"

OWNER_WITH_CONTAINER = textwrap.dedent(f"""
    import sys
    from harness.environments.reaper import reaper_pid
    from harness.environments.serving_image import ensure_serving_image
    from harness.targets.tfserving.container import ServingContainer

    image = ensure_serving_image({TF_VERSION!r})
    with ServingContainer(image, command=["sleep", "300"], wait=False) as container:
        print("RUNNING", container.container_id, reaper_pid(), flush=True)
        sys.stdin.readline()  # until the test says so, or the process is killed
    print("EXITED", flush=True)
""")

OWNER_WITH_GROUPS = textwrap.dedent("""
    import subprocess, sys
    from harness.environments.reaper import forget_process_group, reaper_pid, watch_process_group

    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    watched = subprocess.Popen(["sleep", "300"], start_new_session=True, **quiet)
    forgotten = subprocess.Popen(["sleep", "300"], start_new_session=True, **quiet)
    watch_process_group(watched.pid)
    watch_process_group(forgotten.pid)
    forget_process_group(forgotten.pid)
    print("RUNNING", watched.pid, forgotten.pid, reaper_pid(), flush=True)
    sys.stdin.readline()
""")


def _start_owner(script: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    owner = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
    assert owner.stdout is not None
    line = owner.stdout.readline()
    if not line.startswith("RUNNING"):
        owner.kill()
        _, err = owner.communicate()
        pytest.fail(f"the owner did not start: {line!r}\n{err[-3000:]}")
    return owner, line.split()[1:]


def _kill_group(owner: subprocess.Popen[str]) -> None:
    os.killpg(owner.pid, signal.SIGKILL)  # the owner and everything in its group, no finally
    owner.communicate()


def _alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _labelled(owner_pid: int) -> list[str]:
    done = subprocess.run(["docker", "ps", "-a", "-q", "--filter", "label=pitfalls=1",
                           "--filter", f"label=pitfalls.pid={owner_pid}"],
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def _containers_gone(owner_pid: int) -> None:
    """Wait until no container of ``owner_pid`` is left; a timeout says which ones were still there."""
    Condition(f"the containers of owner {owner_pid} removed", lambda: _labelled(owner_pid), lambda ids: ids == [],
              timeout=CLEAN_WITHIN_S, poll_interval=0.2, hint="the watchdog polls its owner every second").wait()


def _process_ended(pid: int, what: str, timeout: float = CLEAN_WITHIN_S) -> None:
    """Wait until process ``pid`` is gone; a timeout says its last state (from /proc)."""
    Condition(f"{what} (pid {pid}) ended", lambda: _process_state(pid), lambda state: state is None,
              timeout=timeout, poll_interval=0.2).wait()


def _process_state(pid: int) -> str | None:
    """The ``State:`` line of a live process, None once it is gone (or a zombie)."""
    if not _alive(pid):
        return None
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    return next((line for line in lines if line.startswith("State:")), "alive")


@pytest.fixture(scope="module")
def compat_image() -> str:
    reason = engine.engine_unavailable_reason()
    if reason:
        pytest.skip(f"no Docker engine answers here: {reason}")
    from harness.environments.serving_image import ensure_serving_image

    return ensure_serving_image(TF_VERSION).tag


@pytest.fixture
def owners() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for owner in started:  # whatever a failed assertion left: the group, then its containers
        if owner.poll() is None:
            _kill_group(owner)
        for container_id in _labelled(owner.pid):
            subprocess.run(["docker", "rm", "-f", container_id], capture_output=True, check=False)


@pytest.mark.slow
def test_sigkill_of_the_owner_group_removes_its_container(
        compat_image: str, owners: list[subprocess.Popen[str]]) -> None:
    owner, (container_id, reaper) = _start_owner(OWNER_WITH_CONTAINER)
    owners.append(owner)
    assert _labelled(owner.pid) == [container_id[:12]]
    assert os.getpgid(int(reaper)) != os.getpgid(owner.pid), "the watchdog has its own group"

    _kill_group(owner)
    _containers_gone(owner.pid)
    _process_ended(int(reaper), "the watchdog of the killed owner")


@pytest.mark.slow
def test_another_live_owners_container_is_never_touched(
        compat_image: str, owners: list[subprocess.Popen[str]]) -> None:
    killed, (killed_container, killed_reaper) = _start_owner(OWNER_WITH_CONTAINER)
    survivor, (survivor_container, survivor_reaper) = _start_owner(OWNER_WITH_CONTAINER)
    owners += [killed, survivor]

    _kill_group(killed)
    _containers_gone(killed.pid)
    _process_ended(int(killed_reaper), "the killed owner's watchdog")  # every pass it makes is done
    assert _labelled(survivor.pid) == [survivor_container[:12]]

    # The survivor ends normally: its own __exit__ removes the container, its watchdog exits.
    out, _ = survivor.communicate("\n", timeout=60)
    assert "EXITED" in out and survivor.returncode == 0
    assert _labelled(survivor.pid) == []
    _process_ended(int(survivor_reaper), "the survivor's watchdog")


def test_a_watched_process_group_is_killed_and_a_forgotten_one_spared(
        owners: list[subprocess.Popen[str]]) -> None:
    owner, (watched, forgotten, reaper) = _start_owner(OWNER_WITH_GROUPS)
    owners.append(owner)
    try:
        assert _alive(int(watched)) and _alive(int(forgotten))
        _kill_group(owner)  # the sleeps are in their own sessions: this does not reach them
        _process_ended(int(watched), "the watched process group's leader")
        _process_ended(int(reaper), "the watchdog")
        assert _alive(int(forgotten)), "a forgotten group is not the watchdog's to kill"
    finally:
        for pid in (int(watched), int(forgotten)):
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)


def test_a_reused_pid_is_not_killed() -> None:
    """The watchdog kills a group only if its leader has the start time it registered."""
    from harness.environments import reaper

    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        start = process_start_time(sleeper.pid)
        assert start is not None
        reaper._kill_groups({sleeper.pid: str(int(start) + 1)})  # as if the pid was reused
        time.sleep(0.2)
        assert sleeper.poll() is None
        reaper._kill_groups({sleeper.pid: start})
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
