"""The Debian mirror apt uses on this machine, for debootstrap (one lookup for every recipe)."""

from __future__ import annotations

import os
import re
from pathlib import Path

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
OVERRIDE_VARIABLE = "PITFALLS_DEBIAN_MIRROR"


def deb822_mirrors(text: str, suite: str) -> list[str]:
    """URIs of the enabled ``Types: deb`` stanzas of a ``.sources`` file that list ``suite``."""
    found: list[str] = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            found.extend(fields.get("uris", "").split())
    return found


def one_line_mirrors(text: str, suite: str) -> list[str]:
    """URIs of the ``deb URI suite ...`` lines of a ``sources.list`` (options in [] ignored)."""
    found: list[str] = []
    for line in text.splitlines():
        words = re.sub(r"\[[^\]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            found.append(words[1])
    return found


def debian_mirror(suite: str = DEFAULT_SUITE, apt_dir: Path = Path("/etc/apt")) -> str:
    """The mirror apt uses here for ``suite``; ``$PITFALLS_DEBIAN_MIRROR`` overrides it.

    Reads the deb822 ``sources.list.d/*.sources`` files first, then the one-line
    ``sources.list`` and ``sources.list.d/*.list`` (files with other suffixes, such as
    ``*.list.disabled``, are ignored); the first http(s) URI wins, without a trailing slash.
    Falls back to deb.debian.org.
    """
    override = os.environ.get(OVERRIDE_VARIABLE)
    if override:
        return override
    candidates: list[str] = []
    parts = apt_dir / "sources.list.d"
    for path in sorted(parts.glob("*.sources")) if parts.is_dir() else []:
        candidates += deb822_mirrors(path.read_text(errors="replace"), suite)
    for path in [apt_dir / "sources.list", *(sorted(parts.glob("*.list")) if parts.is_dir() else [])]:
        if path.is_file():
            candidates += one_line_mirrors(path.read_text(errors="replace"), suite)
    usable = [uri for uri in candidates if uri.startswith(("http://", "https://"))]
    return usable[0].rstrip("/") if usable else DEFAULT_MIRROR
