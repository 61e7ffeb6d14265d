"""Installed package versions and the version ranges a scenario states (``tensorflow>=2.20``).

A scenario may hold only on some versions of a runtime (``Scenario.applies``) or meet reworded
errors across releases (``ByVersion``); both name packages by requirement strings parsed here.
A name is a pip distribution (normalised as PEP 503 says: ``TF_Keras`` is ``tf-keras``) or an npm
package: a scoped name (``@tensorflow/tfjs``) or any name written ``npm:<name>``, whose version
is read from ``<harness.paths.NODE_MODULES>/<name>/package.json``.  Only ``packaging`` is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
from dataclasses import dataclass
from importlib import metadata
from typing import Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

import harness.paths

NPM_PREFIX = "npm:"
MISSING = "missing"  # what the evidence records for a package that is not installed (as library_versions does)
#: npm packages whose versions a run records besides the pip distributions (harness.results.TRACKED_DISTRIBUTIONS).
TRACKED_NPM_PACKAGES = ("@tensorflow/tfjs",)
_NPM_NAME = re.compile(r"(?:@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*", re.IGNORECASE)
_SPEC_START = re.compile(r"[<>=!~\s]")


def is_npm(name: str) -> bool:
    return name.startswith(("@", NPM_PREFIX))


def _bare(name: str) -> str:
    """An npm name without the ``npm:`` prefix."""
    return name[len(NPM_PREFIX):] if name.startswith(NPM_PREFIX) else name


def package_key(name: str) -> str:
    """The one spelling of a package name: a pip name canonicalised (PEP 503), an npm name as npm
    spells it (``@scope/name``, or ``npm:name`` when unscoped so that it cannot meet a pip name)."""
    if is_npm(name):
        bare = _bare(name)
        return bare if bare.startswith("@") else NPM_PREFIX + bare
    return canonicalize_name(name)


def npm_version(name: str, node_modules: "Path | None" = None) -> str | None:
    """The version of npm package ``name`` in ``node_modules`` (default: the one the browser target serves)."""
    bare = _bare(name)
    root = harness.paths.NODE_MODULES if node_modules is None else node_modules  # read at call time: it may be redirected
    try:
        version = json.loads((root / bare / "package.json").read_text(encoding="utf-8")).get("version")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None
    return str(version) if version else None


def installed_version(name: str) -> str | None:
    """The installed version of a pip distribution or an npm package, None when it is not installed."""
    key = package_key(name)
    if is_npm(key):
        return npm_version(key)
    try:
        return metadata.version(key)
    except metadata.PackageNotFoundError:
        return None


def installed_versions(names: "tuple[str, ...] | list[str]") -> dict[str, str]:
    """``{package_key(name): version or "missing"}`` for every name."""
    return {package_key(n): installed_version(n) or MISSING for n in names}


def _lookup(versions: Mapping[str, str | None], key: str) -> str | None:
    for name, version in versions.items():
        if package_key(name) == key:
            return None if version in (None, "", MISSING) else str(version)
    return None


@dataclass(frozen=True)
class VersionRange:
    """One requirement: a package and the versions it must have, e.g. ``tensorflow>=2.20,<2.22``.

    An empty specifier (``tensorflow``) holds whenever the package is installed.  Pre-releases are
    judged by their number (``2.21.0rc1`` is in ``>=2.20``; ``<2.20`` excludes ``2.20.0rc1`` as PEP
    440 says).
    """

    name: str  # package_key() spelling
    specifier: SpecifierSet

    @classmethod
    def parse(cls, text: str) -> "VersionRange":
        """Parse a requirement string; anything else raises ValueError with one line naming the text."""
        if not isinstance(text, str):
            raise ValueError(f"a version range is a string such as 'tensorflow>=2.20', not {text!r}")
        stripped = text.strip()
        hint = "write a package and its versions, e.g. 'tensorflow>=2.20' or '@tensorflow/tfjs<4.22'"
        if is_npm(stripped):
            bare = _bare(stripped)
            cut = _SPEC_START.search(bare)
            name, spec = (bare[:cut.start()], bare[cut.start():]) if cut else (bare, "")
            if not _NPM_NAME.fullmatch(name):
                raise ValueError(f"version range {text!r}: {name!r} is not an npm package name; {hint}")
            try:
                specifier = SpecifierSet(spec.strip())
            except InvalidSpecifier as exc:
                first = str(exc).splitlines()[0] if str(exc) else "unreadable"
                raise ValueError(f"version range {text!r}: bad versions ({first}); {hint}") from None
            return cls(package_key(NPM_PREFIX + name), specifier)  # "@scope/x" or "npm:x"
        try:
            req = Requirement(stripped)
        except InvalidRequirement as exc:
            first = str(exc).splitlines()[0] if str(exc) else "unreadable"
            raise ValueError(f"version range {text!r} is not a requirement ({first}); {hint}") from None
        if req.extras or req.url or req.marker:
            raise ValueError(f"version range {text!r} has extras, a URL or a marker; {hint}")
        return cls(package_key(req.name), req.specifier)

    def __str__(self) -> str:
        return f"{self.name}{self.specifier}"

    def version_in(self, versions: Mapping[str, str | None]) -> str | None:
        """The version ``versions`` gives this range's package (None when absent or "missing")."""
        return _lookup(versions, self.name)

    def contains(self, versions: Mapping[str, str | None]) -> bool:
        """Whether the package's version in ``versions`` (name -> version) lies in this range; a
        package that is absent, "missing" or has an unparsable version is not in any range."""
        version = self.version_in(versions)
        if version is None:
            return False
        try:
            return self.specifier.contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False

    def explain(self, versions: Mapping[str, str | None]) -> str:
        """Why the range holds or not, e.g. ``tensorflow 2.21.0 is outside tensorflow<2.20``."""
        version = self.version_in(versions)
        if version is None:
            return f"{self.name} is not installed ({self})"
        try:
            Version(version)
        except InvalidVersion:
            return f"{self.name} {version} is not a version {self} can judge"
        return f"{self.name} {version} is {'within' if self.contains(versions) else 'outside'} {self}"


def parse_ranges(texts: "tuple[str, ...] | list[str]") -> tuple[VersionRange, ...]:
    return tuple(VersionRange.parse(t) for t in texts)
