"""The targets, declared once: name, platform, where the class and its check paths live, its colour
in reports, the packages the version matrix tracks for it.

Registry, plugin, CLI, ``pitfalls check``, reports, diff and the matrix read :data:`TARGETS`; adding
a target is one package under ``harness/targets/<name>/`` plus one line here (docs/architecture.md,
"Add a target").  Classes and check declarations are imported lazily (:func:`target_class`,
:func:`target_checks`) so that no heavy library loads before it is needed.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.check.steps import TargetChecks
    from harness.targets.base import Target


@dataclass(frozen=True)
class TargetInfo:
    name: str
    platform: str  # one of harness.taxonomy.PLATFORMS
    import_path: str  # "module:Class"
    colour: str  # report colour
    summary: str  # one line for `pitfalls list` and the docs
    #: "module:attribute" of its :class:`~harness.check.steps.TargetChecks` ("": the common path only)
    checks: str = ""
    #: the Python distributions of the target's runtime that a version-matrix cell may set (tracked in
    #: every results file too); a cell that sets the first one to "none" does not run the target
    matrix_packages: tuple[str, ...] = ()
    #: the npm package (one version for all of ``npm_bundle``'s) a matrix cell may set, and
    #: "module:function" listing the npm packages installed at that version
    npm_package: str = ""
    npm_bundle: str = ""
    #: other distributions whose versions every results file records (clients, drivers)
    tracked_packages: tuple[str, ...] = ()


TARGETS: tuple[TargetInfo, ...] = (
    TargetInfo("tfserving", "server", "harness.targets.tfserving.target:TfservingTarget", "#5b7dd8",
               "TF Serving (compatible server or the real image) in a Docker container",
               checks="harness.targets.tfserving.checks:CHECKS", tracked_packages=("docker", "tensorflow-serving-api")),
    TargetInfo("litert", "mobile", "harness.targets.litert.target:LitertTarget", "#d8843a",
               "TF Lite conversion + LiteRT under device profiles (incl. arm64 under qemu)",
               checks="harness.targets.litert.checks:CHECKS", matrix_packages=("ai-edge-litert",)),
    TargetInfo("coreml", "mobile", "harness.targets.coreml.target:CoremlTarget", "#8d5bd8",
               "Core ML via coremltools (prediction on macOS only)",
               checks="harness.targets.coreml.checks:CHECKS", matrix_packages=("coremltools",)),
    TargetInfo("tfjs", "browser", "harness.targets.tfjs.target:TfjsTarget", "#2f9e6e",
               "TensorFlow.js in headless Chromium driven by Playwright",
               checks="harness.targets.tfjs.checks:CHECKS", matrix_packages=("tensorflowjs",),
               npm_package="@tensorflow/tfjs", npm_bundle="harness.targets.tfjs.backends:npm_packages",
               tracked_packages=("playwright",)),
)
TARGET_INFO: dict[str, TargetInfo] = {t.name: t for t in TARGETS}
TARGET_NAMES: tuple[str, ...] = tuple(TARGET_INFO)


def target_info(name: str) -> TargetInfo:
    try:
        return TARGET_INFO[name]
    except KeyError:
        raise KeyError(f"unknown target {name!r} (known: {', '.join(TARGET_NAMES)})") from None


def targets_of(platform: str) -> tuple[str, ...]:
    return tuple(t.name for t in TARGETS if t.platform == platform)


def target_class(name: str) -> "type[Target]":
    module_name, _, cls_name = target_info(name).import_path.partition(":")
    cls: type[Target] = getattr(importlib.import_module(module_name), cls_name)
    return cls


def matrix_packages() -> dict[str, str]:
    """Every package a version-matrix cell may set for a target: name -> "pip" or "npm"."""
    found: dict[str, str] = {}
    for t in TARGETS:
        found.update({p: "pip" for p in t.matrix_packages})
        if t.npm_package:
            found[t.npm_package] = "npm"
    return found


def package_owner(package: str) -> str | None:
    """The target whose matrix package ``package`` is (None: a package of no target)."""
    return next((t.name for t in TARGETS if package in t.matrix_packages or package == t.npm_package), None)


def npm_packages(package: str) -> tuple[str, ...]:
    """The npm packages installed together at the version a cell sets for ``package`` (its bundle)."""
    for t in TARGETS:
        if t.npm_package == package:
            if not t.npm_bundle:
                return (package,)
            module_name, _, function = t.npm_bundle.partition(":")
            listed: tuple[str, ...] = tuple(getattr(importlib.import_module(module_name), function)())
            return listed
    raise KeyError(f"{package!r} is the npm package of no target")


def target_checks(name: str) -> "TargetChecks | None":
    """What ``pitfalls check`` tries on target ``name`` (None: it declares nothing, the common path only)."""
    spec = target_info(name).checks
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    checks: TargetChecks = getattr(importlib.import_module(module_name), attribute)
    return checks
