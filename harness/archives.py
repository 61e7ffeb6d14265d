"""Zip archives a user hands over (a Keras 3 ``.keras`` file, an ``.npz`` of sample inputs), read
at bounded memory.

Every member's declared size and compression ratio is checked *before* anything is read or handed
to a library that would read it (Keras extracts a ``.keras`` archive, numpy inflates an ``.npz``
member in memory); a member we read ourselves is read through a bounded reader, so a header that
lies about the size cannot inflate past the limit either.  A bomb, a truncated or a corrupt
archive is a :class:`~harness.errors.UsageError`: one line, exit code 2.  Stdlib only.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold: ``member_bytes`` and ``total_bytes`` uncompressed, and at most
    ``ratio`` times its compressed size for a member larger than ``ratio_from_bytes``."""

    member_bytes: int
    total_bytes: int
    ratio: float = 100.0
    ratio_from_bytes: int = MiB


#: A ``.keras`` archive: weights may be large, the ratio test catches a deflate bomb (deflate
#: reaches ~1000:1; model weights compress a few times at most, JSON configs ~10:1).
KERAS_ARCHIVE = ArchiveLimits(member_bytes=16 * GiB, total_bytes=16 * GiB, ratio=100.0)
#: JSON members of a ``.keras`` archive (``config.json``, ``metadata.json``) we parse ourselves.
KERAS_JSON_BYTES = 64 * MiB
#: Sample inputs (``--inputs FILE.npz``): arrays a check feeds, a few rows each; ``savez_compressed``
#: of constant arrays compresses very well, so the bound is the size, not the ratio.
INPUTS_ARCHIVE = ArchiveLimits(member_bytes=1 * GiB, total_bytes=1 * GiB, ratio=1100.0)


def _refuse(path: Path, what: str, hint: str) -> UsageError:
    return UsageError(f"{path}: {what}; {hint}")


def checked_members(path: Path, limits: ArchiveLimits, *, hint: str) -> list[zipfile.ZipInfo]:
    """The members of the zip archive at ``path`` after its size and ratio checks (nothing inflated).

    Raises :class:`UsageError` for a file that is not a complete zip archive (truncated, corrupt),
    a member above ``limits.member_bytes``, a total above ``limits.total_bytes``, or a member that
    inflates more than ``limits.ratio`` times.  ``hint`` ends the one-line message.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise _refuse(path, f"not a complete zip archive ({type(exc).__name__}: {exc})", hint) from None
    total = 0
    for info in members:
        if info.file_size > limits.member_bytes:
            raise _refuse(path, f"member {info.filename} would inflate to {info.file_size} bytes, above the "
                          f"limit of {limits.member_bytes}", hint)
        if (info.file_size > limits.ratio_from_bytes
                and info.file_size > limits.ratio * max(info.compress_size, 1)):
            raise _refuse(path, f"member {info.filename} would inflate {info.file_size / max(info.compress_size, 1):.0f} "
                          f"times ({info.compress_size} -> {info.file_size} bytes), above the limit of "
                          f"{limits.ratio:g} (a zip bomb?)", hint)
        total += info.file_size
        if total > limits.total_bytes:
            raise _refuse(path, f"members would inflate to more than {limits.total_bytes} bytes in all", hint)
    return members


def read_member(path: Path, name: str, *, max_bytes: int, limits: ArchiveLimits, hint: str) -> bytes | None:
    """Member ``name`` of the archive at ``path`` (None when absent), read through a bounded reader:
    the archive's checks first, then at most ``max_bytes`` bytes whatever the header says."""
    members = {info.filename: info for info in checked_members(path, limits, hint=hint)}
    info = members.get(name)
    if info is None:
        return None
    if info.file_size > max_bytes:
        raise _refuse(path, f"member {name} is {info.file_size} bytes, above the limit of {max_bytes}", hint)
    try:
        with zipfile.ZipFile(path) as archive, archive.open(info) as member:
            data = member.read(max_bytes + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise _refuse(path, f"member {name} is not readable ({type(exc).__name__}: {exc})", hint) from None
    if len(data) > max_bytes:
        raise _refuse(path, f"member {name} inflates past its declared size and the limit of {max_bytes} bytes", hint)
    return data
