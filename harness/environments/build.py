"""The builder's pieces: progress, logged steps, locks, the locked hash-keyed directory build.

A cache entry is a directory (or a Docker image tag) named by a hash of everything that went
into it, so finding it again is a stat (or an image lookup).  :func:`build_directory` makes one
safely across processes (pytest-xdist workers, a parallel prebuild):

1. a :class:`filelock.FileLock` beside the entry serialises the builders; whoever gets the lock
   second finds the entry complete and returns;
2. temporary directories of an earlier, killed build (``.tmp-<entry>-*``) are removed first
   (under the lock no live build can be using them), unmounting anything left mounted below;
3. the content is made in a new temporary directory beside the entry (same file system) and
   renamed into place only when complete, so a failed or killed build leaves nothing that
   looks finished.

Progress lines go to stderr (``[pitfalls <scope>] ...``) with the time each step took.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.errors import HarnessError, SetupError, WaitTimeout

LOCK_TIMEOUT_S = 3600.0
STEP_TIMEOUT_S = 1200.0
TEMP_PREFIX = ".tmp-"


# --- text and hashes ---------------------------------------------------------------------

def progress(scope: str, message: str) -> None:
    """One progress line on stderr for a long step (debootstrap, pip download, build)."""
    print(f"[pitfalls {scope}] {message}", file=sys.stderr, flush=True)


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def sha256_of_parts(parts: Iterable[bytes]) -> str:
    """A hash of a sequence of byte strings, each length-prefixed (no two sequences collide)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class Stopwatch:
    """Seconds since it was made: ``f"done in {watch}"`` prints ``done in 12.3s``."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def __str__(self) -> str:
        return f"{self.seconds:.1f}s"


# --- logged steps ------------------------------------------------------------------------

def _with_log(hint: str, log: Path) -> str:
    return f"{hint}; full log: {log}" if hint else f"see the full log in {log}"


def run_logged(command: Sequence[str], log: Path, what: str, *,
               env: Mapping[str, str] | None = None, timeout: float = STEP_TIMEOUT_S,
               hint: str = "", missing_hint: str = "") -> str:
    """Run one build step, appending its output to ``log``; return that output.

    A non-zero exit or a timeout raises :class:`SetupError` with the tail of the log as
    evidence; a missing executable raises it with ``missing_hint``.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(command)}\n")
        sink.flush()
        start = sink.tell()
        try:
            done = subprocess.run(list(command), stdout=sink, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=dict(env) if env is not None else None,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SetupError(f"{what}: no result after {timeout:.0f} s",
                             evidence=tail(log.read_text(errors="replace"), 30),
                             hint=_with_log(hint, log)) from None
        except FileNotFoundError as exc:
            raise SetupError(f"{what}: {exc}", hint=missing_hint or hint) from None
    with log.open("rb") as source:
        source.seek(start)
        output = source.read().decode(errors="replace")
    if done.returncode != 0:
        raise SetupError(f"{what} failed with exit code {done.returncode}",
                         evidence=tail(log.read_text(errors="replace"), 30),
                         hint=_with_log(hint, log))
    return output


# --- mounts and removal ------------------------------------------------------------------

def _decode_mount_field(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` according to /proc/mounts (none off Linux)."""
    table = Path("/proc/mounts")
    if not table.is_file():
        return []
    prefix = str(path.resolve())
    found: list[Path] = []
    for line in table.read_text().splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = _decode_mount_field(fields[1])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return found


def unmount_all_under(path: Path) -> None:
    for point in sorted(mounts_under(path), key=lambda p: len(str(p)), reverse=True):
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True, check=False)


def remove_tree(path: Path) -> None:
    """Unmount whatever is mounted below ``path``, then delete it; never delete across a mount."""
    if not path.exists() and not path.is_symlink():
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink()
        return
    unmount_all_under(path)
    left = mounts_under(path)
    if left:
        raise HarnessError(f"refusing to delete {path}: still mounted below it",
                           evidence="\n".join(map(str, left)),
                           hint=f"unmount them by hand (umount -l <point>), then remove {path}")
    shutil.rmtree(path)


# --- locks and the locked build ----------------------------------------------------------

@contextmanager
def build_lock(lock_path: Path, *, what: str, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the file lock ``lock_path``; :class:`WaitTimeout` after ``timeout`` seconds."""
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise WaitTimeout(f"waited {timeout:.0f} s for another process to build {what}",
                          evidence=f"lock file {lock_path} still held",
                          hint="a stuck build holds the lock; kill it, or delete the lock file "
                               "if no build runs") from None
    try:
        yield
    finally:
        lock.release()


def remove_stale_temporaries(parent: Path, name: str, scope: str) -> list[Path]:
    """Remove ``<parent>/.tmp-<name>-*`` left by a killed build; call it with the lock held."""
    removed: list[Path] = []
    for stale in sorted(parent.glob(f"{TEMP_PREFIX}{name}-*")):
        progress(scope, f"removing a stale build directory {stale}")
        remove_tree(stale)
        removed.append(stale)
    return removed


@contextmanager
def scratch_directory(parent: Path, name: str, scope: str) -> Iterator[Path]:
    """A temporary directory ``<parent>/.tmp-<name>-*``, removed afterwards whatever happens.

    Stale ones of the same name (a killed build) are removed first: call it with the lock held.
    """
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent, name, scope)
    path = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{name}-", dir=parent))
    try:
        yield path
    finally:
        remove_tree(path)


def build_directory(final: Path, fill: Callable[[Path], object], *, what: str, scope: str,
                    complete: Callable[[Path], bool] | None = None,
                    lock_path: Path | None = None, lock_timeout: float = LOCK_TIMEOUT_S) -> bool:
    """Make the cache entry ``final`` with ``fill(temporary_dir)`` once; True when built now.

    ``complete(final)`` says whether an entry is finished (default: it is a directory).  The
    lock is ``<final>.lock`` unless ``lock_path`` names another.  An incomplete ``final`` (from
    a build of an older version of this code) is removed before the rename.  A failure inside
    ``fill`` removes the temporary directory and propagates.
    """
    is_complete = complete or (lambda path: path.is_dir())
    if is_complete(final):
        return False
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    with build_lock(lock_path or parent / f"{final.name}.lock", what=what, timeout=lock_timeout):
        if is_complete(final):
            return False
        remove_stale_temporaries(parent, final.name, scope)
        watch = Stopwatch()
        progress(scope, f"building {what} -> {final}")
        target = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{final.name}-", dir=parent))
        try:
            fill(target)
            target.chmod(0o755)  # mkdtemp made it 0700; a cache entry is world-readable
            if final.exists() or final.is_symlink():
                remove_tree(final)
            os.rename(target, final)
        except BaseException:
            remove_tree(target)
            raise
        progress(scope, f"{what} ready in {watch}")
    return True
