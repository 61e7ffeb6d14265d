"""Device profiles: what a LiteRT worker process runs under, recorded with every result.

A phone cannot be emulated on the CI machine, so a profile states the parts of a device that
change LiteRT's behaviour and that a worker process can really apply: the interpreter's thread
count, XNNPACK on or off, CPU pinning, an address-space limit, and the CPU architecture
(``arm64`` runs the aarch64 LiteRT wheel under qemu, for parity only; see README.md).

The profiles are data: a new device is one entry of :data:`PROFILES`, and what a profile is good
for (timings, resized inputs, arbitrary calls) is read from its fields, never from its name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError


@dataclass(frozen=True)
class DeviceProfile:
    """An emulated device: what its worker applies, and what its results may be used for.

    ``arch`` picks the runner: ``x86_64`` a worker process of this machine (which also runs any
    function a scenario passes to ``LitertTarget.call``), ``arm64`` the aarch64 LiteRT under qemu
    (``predict`` only).  ``timings`` says whether an invoke time measured on it means anything
    (never under qemu, which translates every instruction); ``resizes_inputs`` whether inputs may
    be resized before ``allocate_tensors`` (the arm64 runner runs a model at its allocated shape,
    batch 1 for a converted Keras model).  ``summary`` is one line for reports and docs.
    """

    name: str
    arch: Literal["x86_64", "arm64"] = "x86_64"
    num_threads: int = 1
    xnnpack: bool = True
    cpus: tuple[int, ...] | None = None
    memory_limit_mb: int | None = None
    timings: bool = True
    resizes_inputs: bool = True
    summary: str = ""

    def unavailable_reason(self) -> str | None:
        """None when this profile can run here, else the exact reason (cheap: no subprocess)."""
        if self.arch == "arm64":
            from harness.targets.litert.arm64 import arm64_unavailable_reason

            return arm64_unavailable_reason()
        return None


PROFILES: dict[str, DeviceProfile] = {
    "host": DeviceProfile("host", num_threads=2, summary="this machine's CPU, 2 threads, XNNPACK"),
    "low-end": DeviceProfile("low-end", num_threads=1, cpus=(0,), memory_limit_mb=2048,
                             summary="1 thread pinned to one CPU, a 2 GB address-space limit"),
    "no-xnnpack": DeviceProfile("no-xnnpack", num_threads=1, xnnpack=False,
                                summary="1 thread, LiteRT's builtin kernels without the XNNPACK delegate"),
    "arm64": DeviceProfile("arm64", arch="arm64", num_threads=1, timings=False, resizes_inputs=False,
                           summary="the aarch64 LiteRT wheel under qemu: parity with the ARM kernels, never timings"),
}


def profile_named(name: str) -> DeviceProfile:
    """The profile called ``name``; a one-line :class:`UsageError` naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(f"unknown LiteRT device profile {name!r}: use one of {', '.join(PROFILES)}") from None
