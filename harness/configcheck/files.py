"""The files of a project directory, read as untrusted input.

A bundle is whatever the user points at: every path is resolved and must stay inside the directory
it was given (a symbolic link that leads out is refused, not followed), every file is read with a
size limit, and nothing in it is ever executed: scripts are read as text and parsed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.errors import UsageError

#: a configuration file, script, page or model.json larger than this is not read as text
TEXT_BYTES = 4 << 20
#: files looked at per project directory (a repository checkout, not a disk)
MAX_FILES = 20_000
#: directories never walked: dependencies and version control, not the project's own configuration
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".gradle",
                          "build", ".idea"})


class EscapingPath(UsageError):
    """A path of the bundle (a symbolic link, a base path, a weight file) that leads out of it."""


@dataclass
class ProjectFiles:
    """One project directory: its regular files (relative POSIX paths), walked without following links
    out of it, and reads of them within :data:`TEXT_BYTES`."""

    root: Path
    files: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # links that lead out of the root: never read

    @classmethod
    def scan(cls, directory: Path | str) -> ProjectFiles:
        root = Path(directory)
        if not root.is_dir():
            raise UsageError(f"{directory} is not a directory: give a project directory (a serving bundle, "
                             "a web app or an Android app)")
        project = cls(root.resolve())
        for current, dirs, names in os.walk(project.root, followlinks=False):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(names) + [d for d in dirs if (Path(current) / d).is_symlink()]:
                path = Path(current) / name
                relative = path.relative_to(project.root).as_posix()
                if path.is_symlink():
                    try:
                        project.inside(relative)
                    except EscapingPath:
                        project.refused.append(relative)
                        continue
                    if path.is_dir():
                        continue  # the tree it points at is inside and walked on its own
                if stat.S_ISREG(path.stat().st_mode):
                    project.files.append(relative)
                if len(project.files) > MAX_FILES:
                    raise UsageError(f"{directory} holds more than {MAX_FILES} files: give the project "
                                     "directory itself, not a disk or a home directory")
        return project

    def inside(self, relative: str | PurePosixPath) -> Path:
        """The absolute path of ``relative`` after every link is resolved; :class:`EscapingPath` when
        it leads out of the root."""
        text = str(relative)
        if os.path.isabs(text):
            raise EscapingPath(f"{text} is an absolute path: a bundle may only name files inside {self.root}")
        resolved = (self.root / text).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise EscapingPath(f"{text} in {self.root} leads to {resolved}, outside the bundle; "
                               "copy what it needs into the directory instead of linking out")
        return resolved

    def read_text(self, relative: str) -> str | None:
        """The file's text, or None when it is larger than :data:`TEXT_BYTES` or not text."""
        path = self.inside(relative)
        try:
            with open(path, "rb") as handle:
                data = handle.read(TEXT_BYTES + 1)
        except OSError:
            return None
        if len(data) > TEXT_BYTES or b"\0" in data[:4096]:
            return None
        return data.decode("utf-8", errors="replace")

    def size(self, relative: str) -> int | None:
        try:
            return self.inside(relative).stat().st_size
        except OSError:
            return None

    def exists(self, relative: str) -> bool:
        try:
            return self.inside(relative).exists()
        except EscapingPath:
            return False

    def with_suffix(self, *suffixes: str) -> list[str]:
        return [f for f in self.files if f.lower().endswith(suffixes)]


def line_of(text: str, offset: int) -> int:
    """The 1-based line number of character ``offset`` of ``text``."""
    return text.count("\n", 0, offset) + 1


@contextmanager
def copies_directory() -> Iterator[Path]:
    """A fresh directory inside the run's work directory for copies of the bundle's files: a runtime gets
    those copies, never the user's directory (the container mounts only its own run's files); removed after."""
    import secrets
    import shutil

    from harness.environments.ownership import run_work_dir

    work = run_work_dir() / f"config-check-{secrets.token_hex(6)}"
    work.mkdir(mode=0o750)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
