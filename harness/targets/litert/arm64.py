"""The emulated arm64 device: aarch64 LiteRT in an arm64 Debian root file system under qemu.

An Android phone cannot be emulated on the CI machine, so the mobile platform runs TF Lite models
under device profiles.  This profile executes the real aarch64 ``ai-edge-litert`` wheel (ARM
kernels: XNNPACK's NEON paths, ruy) inside a minimal Debian bookworm arm64 root file system,
entered with ``chroot`` and executed through ``qemu-user-static`` registered in binfmt_misc.

It exists for numeric parity between ARM and x86-64 kernels.  Its timings mean nothing: every
instruction is translated by qemu (see ``harness/targets/litert/README.md``).

Nothing happens at import time.  The root file system is a recipe of the environment builder
(:mod:`harness.environments.arm64_rootfs`: built once, about two minutes, cached under the
environment cache keyed by a hash of its inputs).  Each call copies the model, its inputs and the
worker module (:mod:`harness.targets.litert.arm64_worker`, which imports nothing from harness)
into a call directory under ``<rootfs>/tmp`` and runs the worker there by path.  The worker runs
in a session of its own, so a timeout kills its whole process group; the owner's watchdog
(:mod:`harness.environments.reaper`) kills it too if the harness is killed meanwhile.

Findings that shaped the design (qemu 7.2, LiteRT 2.3.0):

* ``qemu-aarch64-static -L <rootfs>`` starts the aarch64 python, but the guest then sees the
  host's ``/sys``; LiteRT's cpuinfo parses the x86-64 CPU topology and dies with SIGSEGV.
  Mounting sysfs inside the chroot crashes the same way.
* ``chroot <rootfs>`` with nothing mounted works: cpuinfo prints "failed to parse the list of
  possible processors" and falls back.  So a call mounts nothing, and needs root plus a binfmt
  entry with the ``F`` flag (set up by ``scripts/setup-arm64.sh``).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.environments.arm64_rootfs import (GUEST_ENV, GUEST_PYTHON, MANIFEST_NAME, QEMU_BINARY,
                                               WORKER_FILE, arm64_unavailable_reason,
                                               ensure_arm64_rootfs, host_version,
                                               require_available)
from harness.environments.build import mounts_under, remove_tree, tail
from harness.environments.reaper import forget_process_group, watch_process_group
from harness.errors import HarnessError, RuntimeFailure, UsageError, WaitTimeout

if TYPE_CHECKING:
    import numpy

__all__ = ["CALL_DIR_PREFIX", "RUNTIME_NAME", "arm64_unavailable_reason", "arm64_versions",
           "ensure_arm64_rootfs", "mounts_under", "run_on_arm64"]

RUNTIME_NAME = "litert/arm64"
WORKER_SOURCE_LABEL = "exception in arm64 LiteRT worker under qemu"
CALL_DIR_PREFIX = "pitfalls-call-"  # then "<owner id>-<host pid>-<random>", inside <rootfs>/tmp


# --------------------------------------------------------------------------------------------
# Running a model.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerExit:
    returncode: int
    stdout: str
    stderr: str


def _run_worker(rootfs: Path, argv: Sequence[str], timeout: float, what: str) -> WorkerExit:
    """Run the aarch64 python in a chroot (nothing mounted) as the unprivileged user of
    :func:`harness.environments.ownership.container_user`; kill its process group on timeout."""
    from harness.environments.ownership import container_user

    command = ["chroot", "--userspec={}:{}".format(*container_user()), str(rootfs), GUEST_PYTHON, *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=GUEST_ENV, start_new_session=True, text=True,
                               errors="replace")
    try:
        watch_process_group(process.pid)  # killed by the watchdog if this process is killed
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise WaitTimeout(
            f"waited {timeout:.0f} s for {what}; the process group was killed",
            evidence=tail(stderr + stdout, 30),
            hint="qemu runs aarch64 code 10-50x slower than native; raise timeout= for a "
                 "bigger model, or try num_threads=1 to rule out a threading hang",
        ) from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        forget_process_group(process.pid)
    return WorkerExit(process.returncode, stdout, stderr)


def _read_error(call_dir: Path) -> Exception:
    record = json.loads((call_dir / "error.json").read_text())
    if record["origin"] == "runtime":
        return RuntimeFailure(RUNTIME_NAME, record["message"], kind=record["kind"],
                              source=WORKER_SOURCE_LABEL)
    return UsageError(f"arm64 worker rejected the call: {record['kind']}: {record['message']}")


def _read_outputs(call_dir: Path, exit_: WorkerExit, what: str) -> list[numpy.ndarray]:
    import numpy as np

    if (call_dir / "error.json").is_file():
        raise _read_error(call_dir)
    if exit_.returncode != 0 or not (call_dir / "outputs.npz").is_file():
        raise HarnessError(
            f"{what} ended with exit code {exit_.returncode} and no result"
            + (f" (signal {-exit_.returncode})" if exit_.returncode < 0 else ""),
            evidence=tail(exit_.stderr + exit_.stdout, 30),
            hint="a crash under qemu may be the emulator, not LiteRT; "
                 "make sure nothing is mounted on <rootfs>/sys (cpuinfo crashes on x86 sysfs)",
        )
    with np.load(call_dir / "outputs.npz", allow_pickle=False) as data:
        return [data[f"output_{i}"] for i in range(len(data.files))]


def _remove_stale_call_dirs(rootfs: Path) -> None:
    """Call directories left by an owner that was killed before its ``finally`` ran: only those whose
    owner is proven gone (its lock is free, :func:`harness.environments.ownership.owner_state`), never by
    pid, which says nothing about a run in another pid namespace."""
    from harness.environments.ownership import owner_state

    for stale in (rootfs / "tmp").glob(f"{CALL_DIR_PREFIX}*"):
        owner_id = stale.name[len(CALL_DIR_PREFIX):].split("-", 1)[0]
        if owner_state(owner_id) == "gone":
            remove_tree(stale)


def run_on_arm64(model_path: Path, inputs: list[numpy.ndarray], *, num_threads: int = 1,
                 timeout: float = 120.0) -> list[numpy.ndarray]:
    """Run a ``.tflite`` model with the aarch64 LiteRT under qemu; return its outputs.

    ``inputs`` follow the order of ``Interpreter.get_input_details()``.  An exception raised by
    LiteRT comes back as :class:`RuntimeFailure` with its exact text.
    """
    import numpy as np

    model_path = Path(model_path)
    if not model_path.is_file():
        raise UsageError(f"no model file at {model_path}")
    rootfs = ensure_arm64_rootfs()
    require_available()
    what = f"the arm64 LiteRT worker on {model_path.name} (num_threads={num_threads})"
    from harness.counts import count

    count("arm64 runs under qemu")
    _remove_stale_call_dirs(rootfs)
    from harness.environments.ownership import container_user, current_owner

    call_dir = Path(tempfile.mkdtemp(prefix=f"{CALL_DIR_PREFIX}{current_owner().id}-{os.getpid()}-",
                                     dir=rootfs / "tmp"))
    try:
        os.chown(call_dir, *container_user())  # 0700: the worker's user writes its outputs here, no one else reads
        shutil.copyfile(model_path, call_dir / "model.tflite")
        np.savez(call_dir / "inputs.npz", *[np.asarray(a) for a in inputs])  # arr_0, arr_1, ...
        shutil.copyfile(WORKER_FILE, call_dir / "worker.py")
        inner = f"/tmp/{call_dir.name}"
        exit_ = _run_worker(rootfs, [f"{inner}/worker.py", "run", inner, str(num_threads)],
                            timeout, what)
        return _read_outputs(call_dir, exit_, what)
    finally:
        remove_tree(call_dir)


def _qemu_version() -> str:
    done = subprocess.run([str(QEMU_BINARY), "--version"], capture_output=True, text=True,
                          check=False)
    first = done.stdout.splitlines()[0] if done.stdout else done.stderr.strip()
    match = re.search(r"version (\S+)", first)
    return match.group(1) if match else first


def arm64_versions() -> dict[str, str]:
    """Versions inside the arm64 root file system (measured there at build time) and outside."""
    rootfs = ensure_arm64_rootfs()
    guest = json.loads((rootfs / MANIFEST_NAME).read_text())["guest"]
    return {
        "litert_arm64": guest["litert"],
        "numpy_arm64": guest["numpy"],
        "python_arm64": guest["python"],
        "machine_arm64": guest["machine"],
        "debian_arm64": guest["debian"],
        "qemu": _qemu_version(),
        "litert_host": host_version("ai-edge-litert") or "not installed",
        "numpy_host": host_version("numpy") or "not installed",
        "python_host": platform.python_version(),
        "machine_host": platform.machine(),
    }
