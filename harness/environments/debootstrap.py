"""A Debian root file system made by ``debootstrap``, of any architecture qemu-user can run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from harness.environments.build import run_logged, unmount_all_under

DEBOOTSTRAP_TIMEOUT_S = 1200.0


def debootstrap_command(target: Path, *, suite: str, mirror: str, arch: str | None = None,
                        variant: str = "minbase", include: Sequence[str] = (),
                        cache_dir: Path | None = None) -> list[str]:
    command = ["debootstrap"]
    if arch:
        command.append(f"--arch={arch}")
    command.append(f"--variant={variant}")
    if include:
        command.append(f"--include={','.join(include)}")
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        command.append(f"--cache-dir={cache_dir}")
    return [*command, suite, str(target), mirror]


def debootstrap(target: Path, *, suite: str, mirror: str, log: Path, arch: str | None = None,
                variant: str = "minbase", include: Sequence[str] = (),
                cache_dir: Path | None = None, hint: str = "", missing_hint: str = "",
                timeout: float = DEBOOTSTRAP_TIMEOUT_S) -> None:
    """``debootstrap`` ``suite`` into ``target`` from ``mirror``, its output appended to ``log``.

    A foreign ``arch`` needs qemu-user registered in binfmt_misc (the second stage runs
    in a chroot).  Whatever debootstrap left mounted below ``target`` is unmounted afterwards,
    on success and on failure.  Failure raises :class:`SetupError` with the log's tail.
    """
    command = debootstrap_command(target, suite=suite, mirror=mirror, arch=arch, variant=variant,
                                  include=include, cache_dir=cache_dir)
    label = f"debootstrap of the {arch + ' ' if arch else ''}root file system"
    try:
        run_logged(command, log, label, timeout=timeout,
                   hint=hint or f"check that {mirror} is reachable; PITFALLS_DEBIAN_MIRROR overrides it",
                   missing_hint=missing_hint)
    finally:
        unmount_all_under(target)


def trim_tree(target: Path, relative_paths: Sequence[str]) -> None:
    """Empty each directory ``target/<relative>`` (docs, man pages, apt caches: nothing a runtime
    needs), keeping the directory itself."""
    import shutil

    for relative in relative_paths:
        path = target / relative
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
