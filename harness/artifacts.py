"""A content-addressed cache of trained, exported and converted models.

An artifact is a directory named by the hash of everything that determines it (its kind, the
builder's parameters, the library versions involved).  Builds happen in a temporary directory
that is renamed into place, under a file lock, so concurrent pytest-xdist workers never see a
half-written artifact and never build the same thing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.scenario import REPO_ROOT


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def default_cache_root() -> Path:
    """Trained, exported and converted models: ``$PITFALLS_CACHE`` or ``~/.cache/pitfalls``.

    Outside the checkout, so that clones (and CI on the same machine) share what was built;
    every key carries the versions that determine an artifact, so sharing is safe.
    """
    return Path(os.environ.get("PITFALLS_CACHE") or _user_cache() / "pitfalls")


def environment_cache_root() -> Path:
    """Costly environment pieces (serving-image wheels, the arm64 root file system):
    ``$PITFALLS_ENV_CACHE`` or ``~/.cache/pitfalls-env``; kept apart from the model cache so that a
    cold-cache benchmark empties one without rebuilding the other."""
    return Path(os.environ.get("PITFALLS_ENV_CACHE") or _user_cache() / "pitfalls-env")


def library_versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the named distributions ("missing" when not installed)."""
    found: dict[str, str] = {}
    for dist in distributions:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "missing"
    return found


def artifact_key(kind: str, key: Mapping[str, Any]) -> str:
    blob = json.dumps({"kind": kind, **key}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


class ArtifactCache:
    """Directory artifacts addressed by a hash of their inputs."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_root()).resolve()
        self.hits = 0
        self.builds = 0

    def path_for(self, kind: str, key: Mapping[str, Any]) -> Path:
        return self.root / kind / artifact_key(kind, key)

    def get_or_build(self, kind: str, key: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
        """Return the artifact's directory, building it with ``build(tmpdir)`` when absent."""
        from filelock import FileLock

        final = self.path_for(kind, key)
        if final.is_dir():
            self.hits += 1
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock", timeout=1800):
            if final.is_dir():
                self.hits += 1
                return final
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
            started = time.perf_counter()
            try:
                build(tmp)
                (tmp / ".pitfalls-artifact.json").write_text(json.dumps(
                    {"kind": kind, "key": key, "seconds": round(time.perf_counter() - started, 3)},
                    sort_keys=True, default=str, indent=1))
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self.builds += 1
            print(f"pitfalls: built {kind} artifact {final.name} in {time.perf_counter() - started:.1f}s",
                  file=sys.stderr)
            return final
