"""The emulated arm64 device: aarch64 LiteRT in an arm64 Debian root file system under qemu.

An Android phone cannot be emulated on the CI machine, so the mobile platform runs TF Lite models
under device profiles.  This profile executes the real aarch64 ``ai-edge-litert`` wheel (ARM
kernels: XNNPACK's NEON paths, ruy) inside a minimal Debian bookworm arm64 root file system,
entered with ``chroot`` and executed through ``qemu-user-static`` registered in binfmt_misc.

It exists for numeric parity between ARM and x86-64 kernels.  Its timings mean nothing: every
instruction is translated by qemu (see ``harness/targets/litert/README.md``).

Nothing happens at import time.  The first :func:`ensure_arm64_rootfs` builds the root file
system (about two minutes, network to the Debian mirror and PyPI) and caches it under
the environment cache (``$PITFALLS_ENV_CACHE``, default ``~/.cache/pitfalls-env``), keyed by a
hash of its inputs.

Findings that shaped the design (qemu 7.2, LiteRT 2.3.0):

* ``qemu-aarch64-static -L <rootfs>`` starts the aarch64 python, but the guest then sees the
  host's ``/sys``; LiteRT's cpuinfo parses the x86-64 CPU topology and dies with SIGSEGV.
  Mounting sysfs inside the chroot crashes the same way.
* ``chroot <rootfs>`` with nothing mounted works: cpuinfo prints "failed to parse the list of
  possible processors" and falls back.  So a call mounts nothing, and needs root plus a binfmt
  entry with the ``F`` flag (set up by ``scripts/setup-arm64.sh``).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError, RuntimeFailure, SetupError, UsageError, WaitTimeout

if TYPE_CHECKING:
    import numpy

RUNTIME_NAME = "litert/arm64"
WORKER_SOURCE_LABEL = "exception in arm64 LiteRT worker under qemu"

SUITE = "bookworm"
ARCH = "arm64"
VARIANT = "minbase"
INCLUDE_PACKAGES: tuple[str, ...] = ("python3",)
LITERT_REQUIREMENT = "ai-edge-litert==2.3.0"
# Pinned to the host's versions when the host has them, so both sides run the same Python code.
HOST_PINNED_DISTRIBUTIONS: tuple[str, ...] = (
    "numpy",
    "protobuf",
    "ml_dtypes",
    "flatbuffers",
    "backports.strenum",
    "tqdm",
    "typing_extensions",
)
GUEST_PYTHON_VERSION = "3.11"
WHEEL_PLATFORMS: tuple[str, ...] = (
    "manylinux_2_27_aarch64",  # ai-edge-litert 2.3.0 and numpy publish only this (or newer)
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",  # protobuf's abi3 wheels
)
DEFAULT_MIRROR = "http://deb.debian.org/debian"
QEMU_BINARY = Path("/usr/bin/qemu-aarch64-static")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_ENTRY = BINFMT_DIR / "qemu-aarch64"
RECIPE_VERSION = "1"  # bump when the build steps change
MANIFEST_NAME = "pitfalls-arm64.json"
CALL_DIR_PREFIX = "pitfalls-call-"  # then "<host pid>-<random>", inside <rootfs>/tmp
LOCK_TIMEOUT_S = 1800.0
STEP_TIMEOUT_S = 1200.0
TRIMMED_PATHS: tuple[str, ...] = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
SETUP_HINT = "run `sudo scripts/setup-arm64.sh` (installs debootstrap and qemu-user-static, registers binfmt)"
GUEST_ENV: dict[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PIP_CONFIG_FILE": "/dev/null",
    "PYTHONHASHSEED": "0",
}


# --------------------------------------------------------------------------------------------
# The worker that runs inside the arm64 root file system (written into each call's directory).
# --------------------------------------------------------------------------------------------

WORKER_SOURCE = r'''
"""Run one TF Lite model with the aarch64 LiteRT; protocol files live in the call directory."""
import json
import sys
import traceback
from pathlib import Path


def write_error(call_dir, origin, exc):
    record = {
        "origin": origin,
        "kind": type(exc).__name__,
        "message": str(exc),
        "traceback": traceback.format_exc(),
    }
    (call_dir / "error.json").write_text(json.dumps(record))


def load_inputs(call_dir):
    import numpy as np

    with np.load(call_dir / "inputs.npz", allow_pickle=False) as data:
        count = len(data.files)
        return [data[f"arr_{i}"] for i in range(count)]


def run(call_dir, num_threads):
    import numpy as np

    try:
        inputs = load_inputs(call_dir)
        from ai_edge_litert.interpreter import Interpreter
    except Exception as exc:
        write_error(call_dir, "harness", exc)
        return 4
    try:
        interpreter = Interpreter(model_path=str(call_dir / "model.tflite"), num_threads=num_threads)
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()
        if len(details) != len(inputs):
            mismatch = ValueError(
                f"model has {len(details)} inputs but {len(inputs)} arrays were given"
            )
            write_error(call_dir, "harness", mismatch)
            return 4
        for detail, value in zip(details, inputs):
            interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    except Exception as exc:
        write_error(call_dir, "runtime", exc)
        return 3
    np.savez(call_dir / "outputs.npz", **{f"output_{i}": o for i, o in enumerate(outputs)})
    return 0


def versions(call_dir):
    import importlib.metadata
    import platform

    record = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": importlib.metadata.version("numpy"),
        "litert": importlib.metadata.version("ai-edge-litert"),
        "debian": Path("/etc/debian_version").read_text().strip(),
    }
    (call_dir / "versions.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    command, directory = sys.argv[1], Path(sys.argv[2])
    if command == "run":
        sys.exit(run(directory, int(sys.argv[3])))
    sys.exit(versions(directory))
'''


# --------------------------------------------------------------------------------------------
# Inputs of the root file system and its cache key.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootfsRecipe:
    """Everything that decides the content of the root file system; hashed into the cache key."""

    suite: str
    arch: str
    variant: str
    mirror: str
    include: tuple[str, ...]
    requirements: tuple[str, ...]
    wheel_platforms: tuple[str, ...]
    python_version: str
    pip_version: str
    recipe_version: str

    def key(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


def cache_dir() -> Path:
    """Where the arm64 device keeps its root file systems, wheels, locks and build logs."""
    from harness.paths import environment_cache_root

    return environment_cache_root() / "arm64"


def debian_mirror(sources_dir: Path = Path("/etc/apt/sources.list.d"),
                  sources_list: Path = Path("/etc/apt/sources.list")) -> str:
    """The Debian mirror apt already uses (first ``.../debian`` URI), else deb.debian.org."""
    texts: list[str] = []
    if sources_dir.is_dir():
        texts += [p.read_text(errors="replace") for p in sorted(sources_dir.glob("*.sources"))]
        texts += [p.read_text(errors="replace") for p in sorted(sources_dir.glob("*.list"))]
    if sources_list.is_file():
        texts.append(sources_list.read_text(errors="replace"))
    for text in texts:
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for match in re.finditer(r"https?://\S+", line):
                uri = match.group(0).rstrip("/")
                if uri.endswith("/debian"):
                    return uri
    return DEFAULT_MIRROR


def _host_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def guest_requirements() -> tuple[str, ...]:
    """LiteRT pinned, its dependencies pinned to the host's versions where the host has them."""
    pins = [LITERT_REQUIREMENT]
    for name in HOST_PINNED_DISTRIBUTIONS:
        version = _host_version(name)
        pins.append(f"{name}=={version}" if version else name)
    return tuple(pins)


def current_recipe() -> RootfsRecipe:
    return RootfsRecipe(
        suite=SUITE,
        arch=ARCH,
        variant=VARIANT,
        mirror=debian_mirror(),
        include=INCLUDE_PACKAGES,
        requirements=guest_requirements(),
        wheel_platforms=WHEEL_PLATFORMS,
        python_version=GUEST_PYTHON_VERSION,
        pip_version=_host_version("pip") or "unknown",
        recipe_version=RECIPE_VERSION,
    )


def rootfs_path(recipe: RootfsRecipe | None = None) -> Path:
    recipe = recipe or current_recipe()
    return cache_dir() / f"rootfs-{recipe.key()}"


# --------------------------------------------------------------------------------------------
# Small helpers: progress, logs, mounts, removal.
# --------------------------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(f"[pitfalls arm64] {message}", file=sys.stderr, flush=True)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _decode_mount_field(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below ``path`` according to /proc/mounts."""
    prefix = str(path.resolve())
    found: list[Path] = []
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        point = _decode_mount_field(fields[1])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return found


def _unmount_all_under(path: Path) -> None:
    for point in sorted(mounts_under(path), key=lambda p: len(str(p)), reverse=True):
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True)


def remove_tree(path: Path) -> None:
    """Unmount whatever is mounted below ``path``, then delete it; never delete across a mount."""
    if not path.exists():
        return
    _unmount_all_under(path)
    left = mounts_under(path)
    if left:
        raise HarnessError(
            f"refusing to delete {path}: still mounted below it",
            evidence="\n".join(map(str, left)),
            hint=f"unmount them by hand (umount -l <point>), then remove {path}",
        )
    shutil.rmtree(path)


def _with_log(hint: str, log: Path) -> str:
    return f"{hint}; full log: {log}" if hint else f"see the full log in {log}"


def _run_logged(command: Sequence[str], log: Path, what: str, *,
                env: dict[str, str] | None = None, timeout: float = STEP_TIMEOUT_S,
                hint: str = "") -> None:
    """Run one build step, appending its output to ``log``; raise SetupError with the tail."""
    with log.open("a") as sink:
        sink.write(f"\n$ {' '.join(command)}\n")
        sink.flush()
        try:
            done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise SetupError(f"{what}: no result after {timeout:.0f} s",
                             evidence=_tail(log.read_text(errors="replace")),
                             hint=_with_log(hint, log)) from None
        except FileNotFoundError as exc:
            raise SetupError(f"{what}: {exc}", hint=SETUP_HINT) from None
    if done.returncode != 0:
        raise SetupError(f"{what} failed with exit code {done.returncode}",
                         evidence=_tail(log.read_text(errors="replace")),
                         hint=_with_log(hint, log))


# --------------------------------------------------------------------------------------------
# Availability.
# --------------------------------------------------------------------------------------------


def _binfmt_problem() -> str | None:
    if not (BINFMT_DIR / "register").exists():
        return f"binfmt_misc is not mounted on {BINFMT_DIR}; {SETUP_HINT}"
    if not BINFMT_ENTRY.exists():
        return f"no binfmt entry for aarch64 ({BINFMT_ENTRY} missing); {SETUP_HINT}"
    entry = BINFMT_ENTRY.read_text()
    if not entry.startswith("enabled"):
        return f"the aarch64 binfmt entry is disabled ({BINFMT_ENTRY})"
    flags = re.search(r"^flags:\s*(\S*)", entry, re.MULTILINE)
    if not flags or "F" not in flags.group(1):
        return (f"the aarch64 binfmt entry lacks the F flag, so a chroot cannot reach qemu; "
                f"remove it (echo -1 > {BINFMT_ENTRY}) and {SETUP_HINT}")
    return None


def arm64_unavailable_reason() -> str | None:
    """Why the arm64 device cannot run here, or None.  Cheap: no subprocess, no network."""
    if sys.platform != "linux":
        return f"the arm64 device needs Linux (chroot, binfmt_misc, qemu-user); this is {sys.platform}"
    if platform.machine() not in ("x86_64", "AMD64"):
        return f"the arm64 device emulates aarch64 on an x86-64 host; this host is {platform.machine()}"
    if os.geteuid() != 0:
        return "the arm64 device needs root (debootstrap and chroot); run the tests as root"
    if shutil.which("chroot") is None:
        return "`chroot` is not on PATH (coreutils)"
    if not QEMU_BINARY.exists():
        return f"qemu-user-static is not installed ({QEMU_BINARY} missing); {SETUP_HINT}"
    problem = _binfmt_problem()
    if problem:
        return problem
    if not rootfs_path().is_dir() and shutil.which("debootstrap") is None:
        return f"debootstrap is not installed and no arm64 root file system is cached; {SETUP_HINT}"
    return None


def _require_available() -> None:
    reason = arm64_unavailable_reason()
    if reason:
        raise SetupError(f"arm64 device unavailable: {reason}", hint=SETUP_HINT)


# --------------------------------------------------------------------------------------------
# Building the root file system.
# --------------------------------------------------------------------------------------------


def _download_wheels(recipe: RootfsRecipe, dest: Path, log: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    platform_args = [arg for tag in recipe.wheel_platforms for arg in ("--platform", tag)]
    hint = "PyPI must be reachable while the root file system is built (pip download on the host)"
    _run_logged([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                 "--dest", str(dest), "--only-binary=:all:", *platform_args,
                 "--python-version", recipe.python_version, "--implementation", "cp",
                 "--abi", "cp" + recipe.python_version.replace(".", ""),
                 *recipe.requirements], log, "pip download of the aarch64 wheels", hint=hint)
    _run_logged([sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
                 "--dest", str(dest), "--only-binary=:all:", "--no-deps",
                 f"pip=={recipe.pip_version}"], log, "pip download of the pip wheel", hint=hint)


def _debootstrap(recipe: RootfsRecipe, target: Path, log: Path) -> None:
    _run_logged(["debootstrap", f"--arch={recipe.arch}", f"--variant={recipe.variant}",
                 f"--include={','.join(recipe.include)}", recipe.suite, str(target),
                 recipe.mirror], log, "debootstrap of the arm64 root file system",
                hint=f"needs the Debian mirror {recipe.mirror} and binfmt for aarch64; {SETUP_HINT}")


def _install_wheels_inside(recipe: RootfsRecipe, target: Path, wheels: Path, log: Path) -> None:
    inner = target / "tmp" / "pitfalls-wheels"
    shutil.copytree(wheels, inner)
    pip_wheels = sorted(inner.glob("pip-*.whl"))
    if not pip_wheels:
        raise SetupError("no pip wheel was downloaded", evidence=str(sorted(inner.iterdir())),
                         hint=f"see {log}")
    _run_logged(["chroot", str(target), "/usr/bin/python3", f"/tmp/pitfalls-wheels/{pip_wheels[0].name}/pip",
                 "install", "--no-index", "--find-links", "/tmp/pitfalls-wheels",
                 "--break-system-packages", "--no-cache-dir", "--root-user-action=ignore",
                 "--disable-pip-version-check", *recipe.requirements],
                log, "offline pip install inside the arm64 root file system", env=GUEST_ENV)
    shutil.rmtree(inner)


def _write_manifest(recipe: RootfsRecipe, target: Path, log: Path, build_seconds: float) -> None:
    call_dir = target / "tmp" / "pitfalls-versions"
    call_dir.mkdir()
    (call_dir / "worker.py").write_text(WORKER_SOURCE)
    _run_logged(["chroot", str(target), "/usr/bin/python3", "/tmp/pitfalls-versions/worker.py",
                 "versions", "/tmp/pitfalls-versions"], log,
                "import check of numpy and ai-edge-litert under qemu", env=GUEST_ENV)
    guest = json.loads((call_dir / "versions.json").read_text())
    shutil.rmtree(call_dir)
    manifest = {"recipe": asdict(recipe), "key": recipe.key(), "guest": guest,
                "build_seconds": round(build_seconds, 1)}
    (target / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))


def _trim(target: Path) -> None:
    for relative in TRIMMED_PATHS:
        path = target / relative
        if path.is_dir():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()


def tree_size_bytes(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            file = Path(directory, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def _build_rootfs(recipe: RootfsRecipe, final: Path) -> None:
    parent = final.parent
    log = parent / f"build-{recipe.key()}.log"
    log.write_text(f"building {final.name} from {json.dumps(asdict(recipe))}\n")
    for stale in parent.glob(f".tmp-{final.name}-*"):
        _progress(f"removing a stale build directory {stale}")
        remove_tree(stale)
    started = time.monotonic()
    target = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=parent))
    try:
        _progress(f"downloading aarch64 wheels ({', '.join(recipe.requirements[:2])}, ...)")
        wheels = parent / f"wheels-{recipe.key()}"
        _download_wheels(recipe, wheels, log)
        _progress(f"debootstrap {recipe.suite} {recipe.arch} from {recipe.mirror} "
                  f"(about 2 minutes; log: {log})")
        _debootstrap(recipe, target, log)
        _unmount_all_under(target)  # debootstrap leaves nothing mounted on success; be sure
        _progress(f"debootstrap done after {time.monotonic() - started:.0f} s; "
                  "installing the wheels inside with pip under qemu (offline)")
        _install_wheels_inside(recipe, target, wheels, log)
        _trim(target)
        _write_manifest(recipe, target, log, time.monotonic() - started)
        target.chmod(0o755)  # mkdtemp made it 0700; a root directory is world-readable
        os.rename(target, final)
        shutil.rmtree(wheels, ignore_errors=True)
    except BaseException:
        remove_tree(target)
        raise
    size_mb = tree_size_bytes(final) / 1e6
    _progress(f"arm64 root file system ready in {time.monotonic() - started:.0f} s, "
              f"{size_mb:.0f} MB: {final}")


def ensure_arm64_rootfs() -> Path:
    """The cached arm64 root file system with python3, numpy and ai-edge-litert; build it once.

    Safe across processes (pytest-xdist workers): a file lock serialises the build, the build
    happens in a temporary directory beside the cache entry and is renamed into place.
    """
    recipe = current_recipe()
    final = rootfs_path(recipe)
    if (final / MANIFEST_NAME).is_file():
        return final
    _require_available()
    from filelock import FileLock, Timeout

    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f"{final.name}.lock"
    try:
        with FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
            if not (final / MANIFEST_NAME).is_file():
                _build_rootfs(recipe, final)
    except Timeout:
        raise WaitTimeout(
            f"waited {LOCK_TIMEOUT_S:.0f} s for another process to build {final}",
            evidence=f"lock file {lock_path} still held",
            hint="a stuck build holds the lock; kill it, or delete the lock file if no build runs",
        ) from None
    return final


# --------------------------------------------------------------------------------------------
# Running a model.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerExit:
    returncode: int
    stdout: str
    stderr: str


def _run_worker(rootfs: Path, argv: Sequence[str], timeout: float, what: str) -> WorkerExit:
    """Run the aarch64 python in a chroot (nothing mounted); kill its process group on timeout."""
    command = ["chroot", str(rootfs), "/usr/bin/python3", *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=GUEST_ENV, start_new_session=True, text=True,
                               errors="replace")
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise WaitTimeout(
            f"waited {timeout:.0f} s for {what}; the process group was killed",
            evidence=_tail(stderr + stdout),
            hint="qemu runs aarch64 code 10-50x slower than native; raise timeout= for a "
                 "bigger model, or try num_threads=1 to rule out a threading hang",
        ) from None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
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
            evidence=_tail(exit_.stderr + exit_.stdout),
            hint="a crash under qemu may be the emulator, not LiteRT; "
                 "make sure nothing is mounted on <rootfs>/sys (cpuinfo crashes on x86 sysfs)",
        )
    with np.load(call_dir / "outputs.npz", allow_pickle=False) as data:
        return [data[f"output_{i}"] for i in range(len(data.files))]


def _remove_stale_call_dirs(rootfs: Path) -> None:
    """Call directories left by a process that was killed before its ``finally`` ran."""
    for stale in (rootfs / "tmp").glob(f"{CALL_DIR_PREFIX}*"):
        pid = stale.name[len(CALL_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
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
    _require_available()
    what = f"the arm64 LiteRT worker on {model_path.name} (num_threads={num_threads})"
    _remove_stale_call_dirs(rootfs)
    call_dir = Path(tempfile.mkdtemp(prefix=f"{CALL_DIR_PREFIX}{os.getpid()}-", dir=rootfs / "tmp"))
    try:
        shutil.copyfile(model_path, call_dir / "model.tflite")
        np.savez(call_dir / "inputs.npz", *[np.asarray(a) for a in inputs])  # arr_0, arr_1, ...
        (call_dir / "worker.py").write_text(WORKER_SOURCE)
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
        "litert_host": _host_version("ai-edge-litert") or "not installed",
        "numpy_host": _host_version("numpy") or "not installed",
        "python_host": platform.python_version(),
        "machine_host": platform.machine(),
    }
