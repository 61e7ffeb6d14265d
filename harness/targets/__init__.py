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
    #: the Python distributions the target's runtime is (tracked in results and by the version matrix;
    #: a matrix cell that sets the first one to "none" does not run the target)
    packages: tuple[str, ...] = ()


TARGETS: tuple[TargetInfo, ...] = (
    TargetInfo("tfserving", "server", "harness.targets.tfserving.target:TfservingTarget", "#5b7dd8",
               "TF Serving (compatible server or the real image) in a Docker container",
               checks="harness.targets.tfserving.checks:CHECKS", packages=("tensorflow-serving-api",)),
    TargetInfo("litert", "mobile", "harness.targets.litert.target:LitertTarget", "#d8843a",
               "TF Lite conversion + LiteRT under device profiles (incl. arm64 under qemu)",
               checks="harness.targets.litert.checks:CHECKS", packages=("ai-edge-litert",)),
    TargetInfo("coreml", "mobile", "harness.targets.coreml.target:CoremlTarget", "#8d5bd8",
               "Core ML via coremltools (prediction on macOS only)",
               checks="harness.targets.coreml.checks:CHECKS", packages=("coremltools",)),
    TargetInfo("tfjs", "browser", "harness.targets.tfjs.target:TfjsTarget", "#2f9e6e",
               "TensorFlow.js in headless Chromium driven by Playwright",
               checks="harness.targets.tfjs.checks:CHECKS", packages=("tensorflowjs", "playwright")),
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


def target_checks(name: str) -> "TargetChecks | None":
    """What ``pitfalls check`` tries on target ``name`` (None: it declares nothing, the common path only)."""
    spec = target_info(name).checks
    if not spec:
        return None
    module_name, _, attribute = spec.partition(":")
    checks: TargetChecks = getattr(importlib.import_module(module_name), attribute)
    return checks
