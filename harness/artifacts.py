"""A content-addressed cache of trained, exported and converted models that cannot lie.

An artifact is a directory named by the hash of everything that determines it (its kind, the
builder's parameters, the library versions involved).  Builds happen in a temporary directory
that is renamed into place, under a file lock, so concurrent pytest-xdist workers never see a
half-written artifact and never build the same thing twice.

Each entry's manifest (``.pitfalls-artifact.json``) records its key, kind, build seconds, creation
time and the size and sha256 of every file.  Before an entry is reused it is verified
(:func:`check_entry`): the sizes every time (``stat`` only), the digests the first time a process
reuses the entry and again whenever one of its files' size, mtime or inode changed since (so a
run reads each entry it reuses once per process: 0.7 s for the 400 MB wide-MLP SavedModel, then
0.2 ms per reuse on this 2-core machine).  An entry
that fails (a file missing, truncated, altered or added; a missing or unreadable manifest, i.e. an
older layout) is never used: it is moved aside under the lock, rebuilt, and a stderr line says
which entry and what was wrong (counted in ``ArtifactCache.rebuilt``).  What this does not catch:
bytes altered in place with the mtime set back, within a process that already verified the entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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
#: Manifest layout: 2 = per-file sizes and sha256 digests (layout 1 had only kind, key, seconds).
LAYOUT = 2
#: Environment pieces under :func:`environment_cache_root` that ``pitfalls cache`` shows and clears by
#: name: kind -> (directory relative to that root, glob of its entries; "" = the directory is one entry).
ENVIRONMENT_KINDS: dict[str, tuple[str, str]] = {
    "wheels": ("images/wheels", "*"),  # one directory of wheels per TF version
    "debootstrap": ("images/debootstrap-debs", ""),  # the .deb packages debootstrap downloaded
    "arm64": ("arm64", "rootfs-*"),  # the arm64 root file systems
}

# entry path -> stat signature of its files when their digests were last checked in this process
_VERIFIED: dict[str, tuple[Any, ...]] = {}
#: TensorFlow/Keras work in this process (in-process builds, ``pitfalls check``'s reference): one
#: thread at a time, so that targets checked side by side in threads never run Keras concurrently
IN_PROCESS_WORK = threading.RLock()


@dataclass(frozen=True)
class CacheEntry:
    """One cache entry as ``pitfalls cache`` shows it; ``problem`` is None when it is intact."""

    kind: str
    name: str
    path: Path
    bytes: int
    created: str | None
    problem: str | None = None
    cache: str = "model"  # "model" (content-addressed, verified) or "environment" (not verified)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "path": str(self.path), "bytes": self.bytes,
                "created": self.created, "ok": self.ok, "problem": self.problem, "cache": self.cache}


def _walk(entry: Path) -> tuple[dict[str, os.stat_result], dict[str, str], list[str]]:
    """Regular files (rel -> lstat), symbolic links (rel -> target) and directories of an entry,
    without its manifest."""
    files: dict[str, os.stat_result] = {}
    links: dict[str, str] = {}
    dirs: list[str] = []
    todo = [("", entry)]
    while todo:
        prefix, directory = todo.pop()
        with os.scandir(directory) as it:
            for item in it:
                rel = prefix + item.name
                if not prefix and item.name == MANIFEST_NAME:
                    continue
                if item.is_symlink():
                    links[rel] = os.readlink(item.path)
                elif item.is_dir(follow_symlinks=False):
                    dirs.append(rel)
                    todo.append((rel + "/", Path(item.path)))
                else:
                    files[rel] = item.stat(follow_symlinks=False)
    return files, links, sorted(dirs)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _manifest(entry: Path, kind: str, key: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    files, links, dirs = _walk(entry)
    return {"layout": LAYOUT, "kind": kind, "key": key, "seconds": round(seconds, 3),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {rel: {"size": st.st_size, "sha256": _file_sha256(entry / rel)}
                      for rel, st in sorted(files.items())},
            "links": links, "dirs": dirs}


def _signature(entry: Path, files: Mapping[str, os.stat_result]) -> tuple[Any, ...]:
    manifest = (entry / MANIFEST_NAME).stat()
    return (manifest.st_ino, manifest.st_mtime_ns, manifest.st_size,
            *sorted((rel, st.st_size, st.st_mtime_ns, st.st_ino) for rel, st in files.items()))


def _read_manifest(entry: Path) -> tuple[dict[str, Any] | None, str | None]:
    path = entry / MANIFEST_NAME
    if not path.is_file():
        return None, f"no {MANIFEST_NAME} (an entry from an older layout, or an interrupted copy)"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{MANIFEST_NAME} unreadable ({type(exc).__name__}: {exc})"
    if not isinstance(manifest, dict) or manifest.get("layout") != LAYOUT or not isinstance(manifest.get("files"), dict):
        return None, f"{MANIFEST_NAME} from an older layout (no file sizes and digests)"
    return manifest, None


def check_entry(entry: Path, *, digests: bool | None = None) -> str | None:
    """What is wrong with a cache entry, or None when it is intact.

    Always checked (a few ``stat`` calls): the manifest is readable, of this layout, names this
    entry (its key hashes to the directory's name), and lists exactly the files, links and
    directories present, each file of the recorded size.  The sha256 of every file is checked when
    ``digests`` is True, never when False, and by default (None) the first time this process sees
    the entry and again whenever a file's (or the manifest's) size, mtime or inode changed since.
    """
    try:
        return _check(entry, digests)
    except OSError as exc:  # e.g. a file vanished while another process moved the entry aside
        return f"cannot be read ({type(exc).__name__}: {exc})"


def _check(entry: Path, digests: bool | None) -> str | None:
    manifest, problem = _read_manifest(entry)
    if manifest is None:
        return problem
    kind = entry.parent.name
    if manifest.get("kind") != kind or artifact_key(kind, manifest.get("key") or {}) != entry.name:
        return f"{MANIFEST_NAME} describes another entry ({manifest.get('kind')}/{artifact_key(str(manifest.get('kind')), manifest.get('key') or {})})"
    files, links, dirs = _walk(entry)
    recorded: dict[str, Any] = manifest["files"]
    for rel in sorted(recorded):
        if rel not in files:
            return f"{rel} is missing"
        size = files[rel].st_size
        if size != recorded[rel].get("size"):
            return f"{rel} is {size} bytes, the manifest says {recorded[rel].get('size')}"
    extra = sorted(set(files) - set(recorded)) + sorted(set(links) - set(manifest.get("links") or {}))
    if extra:
        return f"{extra[0]} was not there when the entry was built"
    for rel, target in (manifest.get("links") or {}).items():
        if links.get(rel) != target:
            return f"link {rel} is missing or points elsewhere"
    missing_dirs = sorted(set(manifest.get("dirs") or []) - set(dirs))
    if missing_dirs:
        return f"directory {missing_dirs[0]} is missing"
    signature = _signature(entry, files)
    if digests is False or (digests is None and _VERIFIED.get(str(entry)) == signature):
        return None
    for rel in sorted(recorded):
        if _file_sha256(entry / rel) != recorded[rel].get("sha256"):
            return f"{rel} differs from its sha256 in the manifest"
    _VERIFIED[str(entry)] = signature
    return None


class ArtifactCache:
    """Directory artifacts addressed by a hash of their inputs, verified before they are reused.

    ``hits`` counts reuses, ``builds`` every build (first builds and rebuilds), ``rebuilt`` the
    entries that were found corrupt and rebuilt (``problems`` says what was wrong with each).
    """

    def __init__(self, root: Path | None = None, environment_root: Path | None = None) -> None:
        self.root = (root or model_cache_root()).resolve()
        self.environment_root = (environment_root or environment_cache_root()).resolve()
        self.hits = 0
        self.builds = 0
        self.rebuilt = 0
        self.problems: list[str] = []

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

    def get_or_build(self, kind: str, key: Mapping[str, Any], build: Callable[[Path], object], *,
                     out_of_process: bool = False) -> Path:
        """Return the artifact's directory, building it with ``build(tmpdir)`` when absent.

        ``build`` runs holding :data:`IN_PROCESS_WORK` (TensorFlow work in this process, one thread
        at a time) unless ``out_of_process`` says it only waits for another process (a converter CLI).

        An entry is reused only when :func:`check_entry` finds it intact; a corrupt one is moved
        aside under the entry's lock, rebuilt and renamed into place (a stderr line says what was
        wrong), so a reader sees either the old directory or the new one, never a half state.
        """
        from filelock import FileLock

        from harness.counts import count

        final = self.path_for(kind, key)
        if final.is_dir() and check_entry(final) is None:
            self.hits += 1
            count(f"artifacts from cache: {kind}")
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(final) + ".lock", timeout=1800):
            aside: Path | None = None
            if final.is_dir():
                problem = check_entry(final)  # again: another process may have rebuilt it meanwhile
                if problem is None:
                    self.hits += 1
                    count(f"artifacts from cache: {kind}")
                    return final
                aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.corrupt-", dir=final.parent))
                os.replace(final, aside / "entry")
                _VERIFIED.pop(str(final), None)
                self.rebuilt += 1
                self.problems.append(f"{kind}/{final.name}: {problem}")
                print(f"pitfalls: cache entry {kind}/{final.name} is corrupt ({problem}); rebuilding it",
                      file=sys.stderr)
            tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
            started = time.perf_counter()
            try:
                if out_of_process:
                    build(tmp)
                else:
                    with IN_PROCESS_WORK:
                        build(tmp)
                manifest = _manifest(tmp, kind, key, time.perf_counter() - started)
                (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, sort_keys=True, default=str, indent=1))
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            finally:
                if aside is not None:
                    shutil.rmtree(aside, ignore_errors=True)
            files, _, _ = _walk(final)
            _VERIFIED[str(final)] = _signature(final, files)  # its digests were just computed
            self.builds += 1
            count(f"artifacts built: {kind}")
            print(f"pitfalls: built {kind} artifact {final.name} in {time.perf_counter() - started:.1f}s",
                  file=sys.stderr)
            return final

    # ---------------------------------------------------------------- for `pitfalls cache`

    def kinds(self) -> list[str]:
        """Model-cache kinds present (directories under the root)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def entries(self, kind: str | None = None, *, digests: bool = False) -> list[CacheEntry]:
        """Every entry (of one kind), model cache then environment cache, each with its problem:
        model entries are checked by :func:`check_entry` (sizes only unless ``digests``);
        environment entries are listed, not verified (they have no manifest of this layout)."""
        found: list[CacheEntry] = []
        for k in self.kinds() if kind is None else [kind]:
            directory = self.root / k
            if k in ENVIRONMENT_KINDS and not directory.is_dir():
                continue
            for path in sorted(directory.iterdir()) if directory.is_dir() else []:
                if path.name.startswith(".") or not path.is_dir() or path.is_symlink():
                    continue
                manifest, _ = _read_manifest(path)
                created = str(manifest.get("created")) if manifest and manifest.get("created") else None
                found.append(CacheEntry(k, path.name, path, tree_bytes(path), created,
                                        check_entry(path, digests=digests)))
        for k, (rel, pattern) in ENVIRONMENT_KINDS.items():
            if kind is not None and kind != k:
                continue
            directory = self.environment_root / rel
            paths = [directory] if not pattern else sorted(directory.glob(pattern))
            for path in paths if directory.is_dir() else []:
                if path.is_dir() and not path.is_symlink() and not path.name.startswith("."):
                    made = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
                    found.append(CacheEntry(k, path.name, path, tree_bytes(path),
                                            made.isoformat(timespec="seconds"), None, "environment"))
        return found

    def verify(self, kind: str | None = None) -> list[CacheEntry]:
        """Every model-cache entry with its problem after a full check (sizes and digests)."""
        return [e for e in self.entries(kind, digests=True) if e.cache == "model"]

    def clear(self, kinds: list[str] | None = None) -> list[CacheEntry]:
        """Remove entries and return what was removed: every model-cache kind when ``kinds`` is None;
        environment kinds (``wheels``, ``debootstrap``, ``arm64``) only when named.

        An entry is removed under its build lock (an entry being built is left alone), as are
        leftovers of killed builds (temporary and moved-aside directories).  The arm64 root file
        system goes through the environment builder's ``remove_tree`` (unmounts first, never deletes across
        a mount).  Do not clear while a run uses the cache.
        """
        from filelock import FileLock, Timeout

        removed: list[CacheEntry] = []
        wanted = self.kinds() if kinds is None else kinds
        for entry in (e for k in wanted for e in self.entries(k)):
            lock = _entry_lock(entry)
            try:
                with FileLock(str(lock), timeout=0):
                    if entry.kind == "arm64":
                        from harness.environments.build import remove_tree

                        remove_tree(entry.path)
                        (entry.path.parent / f"build-{entry.name.removeprefix('rootfs-')}.log").unlink(missing_ok=True)
                    else:
                        shutil.rmtree(entry.path)
                    _VERIFIED.pop(str(entry.path), None)
                    removed.append(entry)
            except Timeout:
                continue
        for k in wanted:
            directory = self.root / k
            for path in sorted(directory.glob(".*")) if directory.is_dir() and k not in ENVIRONMENT_KINDS else []:
                owner = directory / (path.name[1:].split(".corrupt-")[0].split("-")[0] + ".lock")
                if path.is_dir():
                    try:
                        with FileLock(str(owner), timeout=0):
                            shutil.rmtree(path, ignore_errors=True)
                    except Timeout:
                        continue
        return removed


def _entry_lock(entry: CacheEntry) -> Path:
    """The lock its builder holds: ``<entry>.lock`` (model cache and arm64), the image build lock
    for wheels and debootstrap packages."""
    if entry.kind in ("wheels", "debootstrap") and entry.cache == "environment":
        return entry.path.parents[1 if entry.kind == "wheels" else 0] / "build.lock"  # images/build.lock
    return entry.path.parent / f"{entry.path.name}.lock"


def tree_bytes(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    total = 0
    for directory, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
