"""The arm64 root file system of the emulated LiteRT device: a recipe on :mod:`harness.environments`.

A minimal Debian bookworm arm64 (``debootstrap --arch=arm64 --variant=minbase --include=python3``
from the mirror apt uses here), with the aarch64 ``ai-edge-litert`` wheel and its dependencies
(pinned to the host's versions) downloaded on the host for cp311 manylinux aarch64 and installed
inside, offline, by the guest's pip under qemu.  Built once by
:func:`harness.environments.build.build_directory` (file lock, temporary directory beside the
entry, renamed into place) as ``<env cache>/arm64/rootfs-<key>``, where the key is a hash of the
:class:`RootfsRecipe`; ``pitfalls-arm64.json`` in it (written last) records the recipe and the
versions measured inside.

The machine prerequisites (root, chroot, qemu-user-static, a binfmt entry with the ``F`` flag)
are checked by :func:`arm64_unavailable_reason`; ``scripts/setup-arm64.sh`` sets them up.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from harness.environments.build import (Stopwatch, build_directory, progress, remove_tree,
                                        run_logged)
from harness.environments.debootstrap import debootstrap, trim_tree
from harness.environments.mirror import debian_mirror
from harness.environments.wheels import WheelSet, download_wheels
from harness.errors import SetupError

SCOPE = "arm64"
SUITE = "bookworm"
ARCH = "arm64"
VARIANT = "minbase"
INCLUDE_PACKAGES: tuple[str, ...] = ("python3",)
DEFAULT_LITERT_VERSION = "2.3.0"  # when the host has no ai-edge-litert; else the host's (a matrix cell's) own
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
QEMU_BINARY = Path("/usr/bin/qemu-aarch64-static")
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
BINFMT_ENTRY = BINFMT_DIR / "qemu-aarch64"
RECIPE_VERSION = "1"  # bump when the build steps change the content
MANIFEST_NAME = "pitfalls-arm64.json"
GUEST_PYTHON = "/usr/bin/python3"
WORKER_FILE = Path(__file__).resolve().parents[1] / "targets" / "litert" / "arm64_worker.py"
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
REGISTRY_HINT = "PyPI must be reachable while the root file system is built (pip download on the host)"


# --- the recipe and its key ------------------------------------------------------------------

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

    @property
    def abi(self) -> str:
        return "cp" + self.python_version.replace(".", "")


def cache_dir() -> Path:
    """Where the arm64 device keeps its root file systems, wheels, locks and build logs."""
    from harness.paths import environment_cache_root

    return environment_cache_root() / "arm64"


def host_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def guest_requirements() -> tuple[str, ...]:
    """LiteRT pinned, its dependencies pinned to the host's versions where the host has them."""
    pins = [f"ai-edge-litert=={host_version('ai-edge-litert') or DEFAULT_LITERT_VERSION}"]
    for name in HOST_PINNED_DISTRIBUTIONS:
        version = host_version(name)
        pins.append(f"{name}=={version}" if version else name)
    return tuple(pins)


def current_recipe() -> RootfsRecipe:
    return RootfsRecipe(
        suite=SUITE,
        arch=ARCH,
        variant=VARIANT,
        mirror=debian_mirror(SUITE),
        include=INCLUDE_PACKAGES,
        requirements=guest_requirements(),
        wheel_platforms=WHEEL_PLATFORMS,
        python_version=GUEST_PYTHON_VERSION,
        pip_version=host_version("pip") or "unknown",
        recipe_version=RECIPE_VERSION,
    )


def rootfs_path(recipe: RootfsRecipe | None = None) -> Path:
    recipe = recipe or current_recipe()
    return cache_dir() / f"rootfs-{recipe.key()}"


def is_complete(rootfs: Path) -> bool:
    return (rootfs / MANIFEST_NAME).is_file()


# --- availability ----------------------------------------------------------------------------

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


def require_available() -> None:
    reason = arm64_unavailable_reason()
    if reason:
        raise SetupError(f"arm64 device unavailable: {reason}", hint=SETUP_HINT)


# --- building --------------------------------------------------------------------------------

def download_guest_wheels(recipe: RootfsRecipe, log: Path) -> list[WheelSet]:
    """The aarch64 wheels of the requirements, and the pip wheel that installs them inside."""
    base = cache_dir() / f"wheels-{recipe.key()}"
    litert = download_wheels(recipe.requirements, base / "aarch64", scope=SCOPE,
                             python_version=recipe.python_version, abi=recipe.abi,
                             platforms=recipe.wheel_platforms, log=log, hint=REGISTRY_HINT)
    pip = download_wheels([f"pip=={recipe.pip_version}"], base / "pip", scope=SCOPE,
                          no_deps=True, log=log, hint=REGISTRY_HINT)
    return [litert, pip]


def _install_wheels_inside(recipe: RootfsRecipe, target: Path, wheel_sets: list[WheelSet],
                           log: Path) -> None:
    inner = target / "tmp" / "pitfalls-wheels"
    inner.mkdir(parents=True)
    for path in (p for wheels in wheel_sets for p in wheels.paths()):
        shutil.copyfile(path, inner / path.name)
    pip_wheels = sorted(inner.glob("pip-*.whl"))
    if not pip_wheels:
        raise SetupError("no pip wheel was downloaded", evidence=str(sorted(inner.iterdir())),
                         hint=f"see {log}")
    run_logged(["chroot", str(target), GUEST_PYTHON, f"/tmp/pitfalls-wheels/{pip_wheels[0].name}/pip",
                "install", "--no-index", "--find-links", "/tmp/pitfalls-wheels",
                "--break-system-packages", "--no-cache-dir", "--root-user-action=ignore",
                "--disable-pip-version-check", *recipe.requirements],
               log, "offline pip install inside the arm64 root file system", env=GUEST_ENV,
               missing_hint=SETUP_HINT)
    shutil.rmtree(inner)


def _measure_versions(target: Path, log: Path) -> dict[str, str]:
    """Run the worker's ``versions`` inside: an import check of numpy and LiteRT under qemu."""
    call_dir = target / "tmp" / "pitfalls-versions"
    call_dir.mkdir()
    shutil.copyfile(WORKER_FILE, call_dir / "worker.py")
    run_logged(["chroot", str(target), GUEST_PYTHON, "/tmp/pitfalls-versions/worker.py",
                "versions", "/tmp/pitfalls-versions"], log,
               "import check of numpy and ai-edge-litert under qemu", env=GUEST_ENV,
               missing_hint=SETUP_HINT)
    guest: dict[str, str] = json.loads((call_dir / "versions.json").read_text())
    shutil.rmtree(call_dir)
    return guest


def tree_size_bytes(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            file = Path(directory, name)
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def _fill(recipe: RootfsRecipe, log: Path, target: Path) -> None:
    watch = Stopwatch()
    progress(SCOPE, f"downloading aarch64 wheels ({', '.join(recipe.requirements[:2])}, ...)")
    wheel_sets = download_guest_wheels(recipe, log)
    progress(SCOPE, f"debootstrap {recipe.suite} {recipe.arch} from {recipe.mirror} "
                    f"(about 2 minutes; log: {log})")
    debootstrap(target, suite=recipe.suite, mirror=recipe.mirror, log=log, arch=recipe.arch,
                variant=recipe.variant, include=recipe.include,
                hint=f"needs the Debian mirror {recipe.mirror} and binfmt for aarch64; {SETUP_HINT}",
                missing_hint=SETUP_HINT)
    progress(SCOPE, f"debootstrap done after {watch}; "
                    "installing the wheels inside with pip under qemu (offline)")
    _install_wheels_inside(recipe, target, wheel_sets, log)
    trim_tree(target, TRIMMED_PATHS)
    guest = _measure_versions(target, log)
    manifest = {"recipe": asdict(recipe), "key": recipe.key(), "guest": guest,
                "build_seconds": round(watch.seconds, 1)}
    (target / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
    progress(SCOPE, f"{tree_size_bytes(target) / 1e6:.0f} MB")


def ensure_arm64_rootfs() -> Path:
    """The cached arm64 root file system with python3, numpy and ai-edge-litert; build it once.

    Safe across processes (pytest-xdist workers): see
    :func:`harness.environments.build.build_directory`.
    """
    recipe = current_recipe()
    final = rootfs_path(recipe)
    if is_complete(final):
        return final
    require_available()
    final.parent.mkdir(parents=True, exist_ok=True)
    log = final.parent / f"build-{recipe.key()}.log"

    def fill(target: Path) -> None:
        log.write_text(f"building {final.name} from {json.dumps(asdict(recipe))}\n")
        _fill(recipe, log, target)

    built = build_directory(final, fill, what="the arm64 root file system", scope=SCOPE,
                            complete=is_complete, lock_timeout=1800.0)
    if built:
        remove_tree(cache_dir() / f"wheels-{recipe.key()}")  # in the root file system now
    return final
