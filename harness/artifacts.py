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

from harness.paths import environment_cache_root, model_cache_root


def library_versions(*distributions: str) -> dict[str, str]:
    """Installed versions of the named distributions ("missing" when not installed)."""
    found: dict[str, str] = {}
    for dist in distributions:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "missing"
    return found


def content_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a directory tree's relative paths and file bytes."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and p.name != MANIFEST_NAME):
        rel = file.relative_to(path).as_posix().encode()
        digest.update(len(rel).to_bytes(8, "big") + rel)
        digest.update(content_digest(file).encode())
    return digest.hexdigest()


def artifact_key(kind: str, key: Mapping[str, Any]) -> str:
    blob = json.dumps({"kind": kind, **key}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


MANIFEST_NAME = ".pitfalls-artifact.json"


class ArtifactCache:
    """Directory artifacts addressed by a hash of their inputs."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or model_cache_root()).resolve()
        self.hits = 0
        self.builds = 0

    def source_key(self, path: Path) -> str:
        """What a cache key should hold for a source file or directory: never its absolute path.

        A path inside this cache is named by its entry (``kind/hash/relative``), which is already
        content-addressed; any other path by the digest of its content.  So a cache restored at
        another path, or a model the user keeps elsewhere, still hits.
        """
        resolved = Path(path).resolve()
        try:
            return "cache:" + resolved.relative_to(self.root).as_posix()
        except ValueError:
            return "sha256:" + content_digest(resolved)

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
                (tmp / MANIFEST_NAME).write_text(json.dumps(
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
