"""Device profiles: what a LiteRT worker process runs under, recorded with every result.

A phone cannot be emulated on the CI machine, so a profile states the parts of a device that
change LiteRT's behaviour and that a worker process can really apply: the interpreter's thread
count, XNNPACK on or off, CPU pinning, an address-space limit, and the CPU architecture
(``arm64`` runs the aarch64 LiteRT wheel under qemu, for parity only; see README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError


@dataclass(frozen=True)
class DeviceProfile:
    """An emulated device."""

    name: str
    arch: Literal["x86_64", "arm64"] = "x86_64"
    num_threads: int = 1
    xnnpack: bool = True
    cpus: tuple[int, ...] | None = None
    memory_limit_mb: int | None = None


PROFILES: dict[str, DeviceProfile] = {
    "host": DeviceProfile("host", num_threads=2),
    "low-end": DeviceProfile("low-end", num_threads=1, cpus=(0,), memory_limit_mb=2048),
    "no-xnnpack": DeviceProfile("no-xnnpack", num_threads=1, xnnpack=False),
    "arm64": DeviceProfile("arm64", arch="arm64", num_threads=1),
}


def profile_named(name: str) -> DeviceProfile:
    """The profile called ``name``; a one-line :class:`UsageError` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown LiteRT device profile {name!r}: use one of {', '.join(PROFILES)}") from None
