"""Targets by name, imported lazily so that no heavy library loads before it is needed."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.targets.base import Target

TARGET_CLASSES: dict[str, str] = {
    "tfserving": "harness.targets.tfserving:TfservingTarget",
    "litert": "harness.targets.litert:LitertTarget",
    "coreml": "harness.targets.coreml:CoremlTarget",
    "tfjs": "harness.targets.tfjs:TfjsTarget",
}


def target_class(name: str) -> "type[Target]":
    module_name, _, cls_name = TARGET_CLASSES[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)  # type: ignore[no-any-return]
