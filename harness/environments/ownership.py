"""Who owns what a run starts: a random owner id per process, proven alive by a held lock.

Why not the pid: two runs in different pid namespaces (two CI jobs on one Docker engine, two
``unshare --pid`` shells) can have the same pid, and a pid that this process cannot see may
belong to a live run.  So every process that starts something (each ``pitfalls run``, each
pytest-xdist worker) is an **owner** with

* a random id (:attr:`Owner.id`, 16 hex digits), put on everything it starts: the label
  ``pitfalls.owner=<id>`` on each container (with ``pitfalls.pid=<pid>`` for humans), the name of
  its work directory (``<temp>/pitfalls-own-<id>``) and of each arm64 call directory, the
  ``--owner-id`` of its watchdog (:mod:`harness.environments.reaper`);
* a lock file ``<env cache>/owners/<id>.lock`` that it holds with ``fcntl.flock`` for as long as it
  lives.  The kernel drops the lock when the process dies, however it dies, in any pid namespace.

Another run removes something of owner ``X`` only when :func:`owner_state` says ``"gone"``: the
lock file of ``X`` exists and can be locked.  A lock that is held means alive; a missing lock
file (another user's cache, another machine on the same engine) means unknown, and unknown is
never removed (``all_owners=True`` of :func:`harness.targets.tfserving.container.remove_leftover_containers`
is the explicit override).

The work directory is the only host directory a container of this owner may mount
(:func:`run_work_dir`): mode 0750, owned by this user and, when the harness runs as root, by the
group of the serving containers' unprivileged user (:data:`CONFINED_UID`), so the containers can
read it and no other host user can.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

OWNER_ID_LABEL = "pitfalls.owner"
OWNER_PID_LABEL = "pitfalls.pid"  # for humans reading `docker ps`: never trusted for removal
WORK_DIR_PREFIX = "pitfalls-own-"
#: the unprivileged user and group of the serving image (``containers/serving/Dockerfile``: USER 10001);
#: containers run as this uid:gid when the harness runs as root, else as the harness's own uid:gid
CONFINED_UID = 10001
CONFINED_GID = 10001
_ID = re.compile(r"[0-9a-f]{16}")

OwnerState = Literal["self", "alive", "gone", "unknown"]


@dataclass(frozen=True)
class Owner:
    """This process as an owner: its id, pid and the lock file it holds."""

    id: str
    pid: int
    lock_path: Path

    def labels(self) -> dict[str, str]:
        """The labels every container of this owner carries."""
        return {OWNER_ID_LABEL: self.id, OWNER_PID_LABEL: str(self.pid)}


_lock = threading.Lock()
_owner: Owner | None = None
_lock_fd: int | None = None


def _forget_after_fork() -> None:
    """A forked child is another owner: it closes its copy of the parent's lock descriptor (the
    parent keeps the lock) and makes its own id on first use."""
    global _lock, _owner, _lock_fd
    _lock = threading.Lock()
    if _lock_fd is not None:
        try:
            os.close(_lock_fd)
        except OSError:
            pass
    _owner, _lock_fd = None, None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)


def owners_dir() -> Path:
    """``<env cache>/owners``: the lock files, one per live or dead owner (mode 0700)."""
    from harness.paths import environment_cache_root

    path = environment_cache_root() / "owners"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def valid_owner_id(text: str) -> bool:
    return bool(_ID.fullmatch(text))


def current_owner() -> Owner:
    """This process's owner id, made (with its held lock file) on first use."""
    global _owner, _lock_fd
    with _lock:
        if _owner is None or _owner.pid != os.getpid():
            owner_id = secrets.token_hex(8)
            path = owners_dir() / f"{owner_id}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, f"pid {os.getpid()}\n".encode())
            _owner, _lock_fd = Owner(owner_id, os.getpid(), path), fd
        return _owner


def owner_state(owner_id: str) -> OwnerState:
    """``self`` (this process), ``alive`` (its lock is held), ``gone`` (its lock file can be locked)
    or ``unknown`` (no lock file here, or not a valid id): only ``gone`` may be cleaned up."""
    if _owner is not None and _owner.pid == os.getpid() and owner_id == _owner.id:
        return "self"
    if not valid_owner_id(owner_id):
        return "unknown"
    try:
        fd = os.open(owners_dir() / f"{owner_id}.lock", os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return "unknown"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return "alive"
        return "unknown"
    finally:
        os.close(fd)  # also drops the lock we may just have taken
    return "gone"


def container_user() -> tuple[int, int]:
    """The uid:gid a container runs as: :data:`CONFINED_UID` when the harness is root, else the
    harness's own (non-root) uid:gid, which reads the work directory as its owner."""
    if os.geteuid() == 0:
        return CONFINED_UID, CONFINED_GID
    return os.getuid(), os.getgid()


def _work_dir_path(owner_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"{WORK_DIR_PREFIX}{owner_id}"


def run_work_dir() -> Path:
    """This owner's work directory ``<temp>/pitfalls-own-<id>`` (0750; group :data:`CONFINED_GID`
    when root), made on first use: where model directories that containers mount live."""
    path = _work_dir_path(current_owner().id)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            from harness.errors import SetupError

            raise SetupError(f"{path} exists and is not this user's directory",
                             evidence=f"mode {oct(info.st_mode)}, uid {info.st_uid}",
                             hint="something else made the work directory of this run's random id; remove it") from None
        return path
    if os.geteuid() == 0:
        os.chown(path, 0, CONFINED_GID)
    path.chmod(0o750)
    atexit.register(remove_run_work_dir)  # a process killed outright: its watchdog removes it
    return path


def open_to_container(tree: Path) -> None:
    """Let the container's user read ``tree`` (a directory it mounts, or a file): directories get
    o+rx, files o+r.  Files this user does not own are left alone; a file with other hard links
    that is not readable yet is replaced by a copy first, so a cached or user's file never
    changes mode.  Meant for trees inside :func:`run_work_dir`, whose own mode keeps other host
    users out."""
    if os.geteuid() != 0:
        return  # the container runs as this user: it reads what this user reads
    root = Path(tree)
    if _owner is not None and root.resolve() == _work_dir_path(_owner.id).resolve():
        return  # the work directory itself stays 0750 (its group lets the container in); the fork
        # server's model directories in it are opened one by one (open_in_work_dir)
    paths = [root] if not root.is_dir() else [root, *root.rglob("*")]
    for path in paths:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid():
            continue
        wanted = 0o005 if stat.S_ISDIR(info.st_mode) else 0o004
        if info.st_mode & wanted == wanted:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            copy = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
            shutil.copy2(path, copy)
            os.replace(copy, path)
            info = path.lstat()
        path.chmod(stat.S_IMODE(info.st_mode) | wanted)


def open_to_container_dir(directory: Path) -> None:
    """Let the container's user pass through ``directory`` (o+x) without listing the rest of it."""
    if os.geteuid() != 0:
        return
    info = directory.lstat()
    if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o001:
        directory.chmod(stat.S_IMODE(info.st_mode) | 0o001)


def open_in_work_dir(path: Path) -> None:
    """Let the container's user reach ``path`` inside :func:`run_work_dir` through its mount (o+x on
    each directory between the two) and read the tree at ``path`` (:func:`open_to_container`)."""
    root, target = run_work_dir().resolve(), Path(path).resolve()
    for parent in target.relative_to(root).parents[:-1]:
        open_to_container_dir(root / parent)
    open_to_container(target)


def remove_leftover_work_dirs() -> list[Path]:
    """Remove work directories of owners that are proven gone; return the dirs.

    Their lock files stay: a gone owner's free lock is the only proof that its other leftovers (serving
    containers, arm64 call directories) may go, and a sweep here cannot see those.  Only the owner's own
    reaper removes its lock, after its containers and work directory (:func:`remove_gone_lock`).  (A sweep
    that removed every free lock stranded a killed run's containers as ``unknown`` owners' for good.)"""
    removed: list[Path] = []
    for path in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        owner_id = path.name[len(WORK_DIR_PREFIX):]
        if owner_state(owner_id) == "gone":
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def remove_gone_lock(owner_id: str) -> None:
    """Delete the lock file of an owner, only while it is proven gone (locked by us meanwhile)."""
    path = owners_dir() / f"{owner_id}.lock"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink(missing_ok=True)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_run_work_dir() -> None:
    """At a clean end: remove this owner's work directory (the caller has stopped everything that
    mounts it).  The id and its held lock stay for the life of the process; its watchdog deletes the
    lock file once the process is gone and its containers are removed (no other run does: a dead
    owner's free lock is what lets a later run remove what it left)."""
    with _lock:
        owner = _owner
    if owner is not None and owner.pid == os.getpid():
        shutil.rmtree(_work_dir_path(owner.id), ignore_errors=True)


class OutputsBusy(Exception):
    """Another live run holds the claim on an output path; the message names it."""


@contextmanager
def claim_outputs(paths: Sequence[Path], description: str) -> Iterator[None]:
    """Hold, for the block, a claim on each output path (a results file, a report directory): a
    lock ``<env cache>/runs/<sha256 of the path>.lock`` held with ``fcntl.flock`` and holding a line
    about its holder.  A path another live run holds raises :class:`OutputsBusy` naming that run;
    a claim of a run that died is free again (the kernel dropped its lock)."""
    import hashlib
    import time

    from harness.paths import environment_cache_root

    runs = environment_cache_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptors: list[int] = []
    try:
        for path in paths:
            key = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:24]
            fd = os.open(runs / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another run"
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OutputsBusy(f"{path} is in use by {holder}") from None
                raise
            descriptors.append(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{description} (pid {os.getpid()}, owner {current_owner().id}, started "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode(), 0)
        yield
    finally:
        for fd in descriptors:
            os.close(fd)
