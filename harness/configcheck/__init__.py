"""``pitfalls check-config PATH...``: a configuration checker for deployment bundles.

Each PATH is a project directory as people keep it; the checker finds the pieces itself, by content.
A target's configuration rules live in its own package (a target owns its paths): a module named in
:data:`CONFIG_MODULES` inside ``harness/targets/<t>/`` (``bundle.py``, ``webapp.py``, ``android.py``)
offers ``find_bundle(files) -> bundle | None``, and the bundle ``static_findings()`` and
``verify(progress)`` (the runtime's own words; :class:`~harness.errors.NotApplicable` when the runtime
cannot run here).  This package only orchestrates: it never names a target.

Python API: ``check_config(paths, verify=True) -> ConfigReport``.  See docs/check-config.md.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol, Sequence

from harness.configcheck.report import BundleReport, ConfigReport

#: module names a target package may hold with configuration rules
CONFIG_MODULES = ("bundle", "webapp", "android")


class ConfigBundle(Protocol):
    kind: str

    @property
    def pieces(self) -> dict[str, list[str]]: ...

    def static_findings(self) -> list[Any]: ...

    def verify(self, progress: Any = None) -> list[Any]: ...


def config_modules() -> list[ModuleType]:
    """Every target's configuration module, in target-package order."""
    import harness.targets

    found = []
    for package in sorted(m.name for m in pkgutil.iter_modules(harness.targets.__path__) if m.ispkg):
        for name in CONFIG_MODULES:
            module = f"harness.targets.{package}.{name}"
            if importlib.util.find_spec(module) is not None:
                loaded = importlib.import_module(module)
                if hasattr(loaded, "find_bundle"):
                    found.append(loaded)
    return found


def check_config(paths: Sequence[str | Path], *, verify: bool = True,
                 progress: Callable[[str], None] | None = None) -> ConfigReport:
    """Find the deployment bundles in each directory, check them statically, then (``verify``) on the
    runtimes.  Bad input (not a directory, nothing found, a config that does not parse, a path that
    leads out of the directory) raises :class:`~harness.errors.UsageError`."""
    from harness.configcheck.files import ProjectFiles
    from harness.errors import NotApplicable, UsageError

    started = time.monotonic()
    report = ConfigReport(paths=[str(p) for p in paths], created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    modules = config_modules()
    for path in paths:
        files = ProjectFiles.scan(path)
        if files.refused:
            raise UsageError(f"{path}: {files.refused[0]} is a link that leads out of the directory; "
                             "a bundle must hold its files itself")
        bundles: list[ConfigBundle] = [b for b in (m.find_bundle(files) for m in modules) if b is not None]
        if not bundles:
            raise UsageError(f"{path}: found no deployment configuration (no TF Serving config or run line, "
                             "no tf.js model.json, no Android Gradle build); give a project directory")
        for bundle in bundles:
            began = time.monotonic()
            entry = BundleReport(str(path), bundle.kind, {k: v for k, v in bundle.pieces.items() if v})
            findings = list(bundle.static_findings())
            if progress:
                progress(f"{path}: {bundle.kind}: {len(findings)} static finding(s)")
            if verify:
                try:
                    findings += bundle.verify(progress)
                    entry.verified = "yes"
                    entry.runs = [run.to_json() for run in getattr(bundle, "runs", [])]
                except NotApplicable as exc:
                    entry.verified = f"skipped: {exc}"
            entry.seconds = time.monotonic() - began
            report.bundles.append(entry)
            report.findings += [replace(f, file=str(Path(path) / f.file) if f.file else str(path)) for f in findings]
    report.seconds = time.monotonic() - started
    return report


__all__ = ["CONFIG_MODULES", "ConfigReport", "check_config", "config_modules"]
