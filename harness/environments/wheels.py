"""Offline wheels for another platform: ``pip download --platform ...`` on the host, once.

A recipe that installs Python packages where there is no network (``docker build --network
none``, a chroot under qemu) downloads the wheels here first: for a Python version, an ABI and a
list of platform tags (pip does not expand them: list every manylinux tag the target's glibc
accepts).  The directory is a cache entry of :func:`harness.environments.build.build_directory`
with a ``manifest.json`` (requirements and file names) written last, so a second call with the
same requirements reuses it without running pip.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.environments.build import build_directory, progress, run_logged
from harness.errors import SetupError

MANIFEST_NAME = "manifest.json"
REGISTRY_HINT = "the package registry must be reachable; check pip's index settings"


@dataclass(frozen=True)
class WheelSet:
    """Wheels downloaded for one set of requirements: their directory and file names."""

    directory: Path
    requirements: tuple[str, ...]
    files: tuple[str, ...]

    def manifest(self) -> bytes:
        """Requirements, then each file with its size: what an image hash holds of the wheels."""
        sizes = [f"{name} {(self.directory / name).stat().st_size}" for name in self.files]
        return "\n".join([*self.requirements, "--", *sizes]).encode()

    def total_bytes(self) -> int:
        return sum((self.directory / name).stat().st_size for name in self.files)

    def paths(self) -> list[Path]:
        return [self.directory / name for name in self.files]


def read_manifest(directory: Path, requirements: Sequence[str]) -> tuple[str, ...] | None:
    """The file names of a complete wheel directory for ``requirements``, else None."""
    try:
        data = json.loads((directory / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    files = tuple(data.get("files", ()))
    if data.get("requirements") != list(requirements) or not files:
        return None
    if not all((directory / name).is_file() for name in files):
        return None
    return files


def pip_download_command(requirements: Sequence[str], dest: Path, *, python_version: str | None,
                         abi: str | None, platforms: Sequence[str], implementation: str,
                         no_deps: bool) -> list[str]:
    command = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check",
               "--progress-bar", "off", "--only-binary=:all:", "--dest", str(dest)]
    command += [arg for tag in platforms for arg in ("--platform", tag)]
    if python_version:
        command += ["--python-version", python_version, "--implementation", implementation]
    if abi:
        command += ["--abi", abi]
    if no_deps:
        command.append("--no-deps")
    return [*command, *requirements]


def saved_wheels(pip_output: str) -> tuple[str, ...]:
    """File names pip reported as saved (or already there) in its output."""
    saved = re.findall(r"^(?:Saved|File was already downloaded) (\S+)$", pip_output, re.MULTILINE)
    return tuple(sorted({Path(name).name for name in saved}))


def download_wheels(requirements: Sequence[str], directory: Path, *, scope: str,
                    python_version: str | None = None, abi: str | None = None,
                    platforms: Sequence[str] = (), implementation: str = "cp",
                    no_deps: bool = False, log: Path | None = None,
                    hint: str = REGISTRY_HINT) -> WheelSet:
    """The wheels of ``requirements`` for a platform in ``directory``, downloaded once.

    ``directory`` is the cache entry: name it after everything but the requirements (python
    version, ABI, platform), which the manifest checks.  pip's output is appended to ``log``
    (default ``<directory>.log``).  A failure raises :class:`SetupError` with pip's last lines.
    """
    requirements = list(requirements)
    log = log or directory.parent / f"{directory.name}.log"
    target = f"{abi or 'any'}, {platforms[0] if platforms else 'any platform'}"

    def fill(temporary: Path) -> None:
        command = pip_download_command(requirements, temporary, python_version=python_version,
                                       abi=abi, platforms=platforms,
                                       implementation=implementation, no_deps=no_deps)
        progress(scope, f"pip download {' '.join(requirements)} ({target}) -> {directory}")
        output = run_logged(command, log, f"pip download of {' '.join(requirements)} ({target})",
                            hint=hint)
        files = saved_wheels(output)
        if not files:
            raise SetupError("pip download reported no wheel", evidence=output[-3000:],
                             hint=f"see {log}")
        manifest = {"requirements": requirements, "files": list(files),
                    "python_version": python_version, "abi": abi, "platforms": list(platforms),
                    "no_deps": no_deps}
        (temporary / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
        wheels = WheelSet(temporary, tuple(requirements), files)
        progress(scope, f"{len(files)} wheels, {wheels.total_bytes() / 1e6:.0f} MB")

    build_directory(directory, fill, what=f"wheels for {', '.join(requirements[:2])}", scope=scope,
                    complete=lambda path: read_manifest(path, requirements) is not None)
    files = read_manifest(directory, requirements)
    if files is None:  # another process changed the entry between the rename and this read
        raise SetupError(f"the wheel directory {directory} is incomplete after its build",
                         hint=f"remove {directory} and run again")
    return WheelSet(directory, tuple(requirements), files)
