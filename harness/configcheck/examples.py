"""The checked-in example bundles, one faulty and one fixed per kind: the tests' inputs and the README's
demonstration (``examples/check-config/<kind>/{faulty,fixed}/``).

The bundles are the source (no generator): small real models made once from the zoo's tiny seeded
``dense`` model (``ModelSpec("dense", "keras3", seed=0)``, seed 1 for the serving bundle's version 2),
exported as the catalog exports them: SavedModels for TF Serving, a tf.js graph model
(``tensorflowjs_converter``), a ``.tflite`` (the LiteRT converter).  The faulty bundles' broken models
are derived from the fixed ones (a shard left out, a ``.tflite`` cut short, op versions raised by
:func:`with_newer_op_versions`); ``tests/test_check_config_examples.py`` checks each derivation, so
the pair cannot drift apart.  What is planted in each faulty bundle is listed in
``examples/check-config/README.md`` and in :data:`PLANTED`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.paths import REPO_ROOT

EXAMPLES_DIR = REPO_ROOT / "examples" / "check-config"
KINDS = ("tfserving", "tfjs", "android")
VARIANTS = ("faulty", "fixed")

#: kind -> the rules whose mistakes are planted in its faulty bundle and found statically
PLANTED: dict[str, tuple[str, ...]] = {
    "tfserving": ("tfserving/label-not-served", "tfserving/labels-at-startup", "tfserving/non-numeric-version-dir",
                  "tfserving/version-without-saved-model", "tfserving/batch-sizes-not-increasing",
                  "tfserving/batch-sizes-last-not-max", "tfserving/flag-without-equals",
                  "tfserving/rest-port-not-published", "tfserving/request-to-grpc-port",
                  "tfserving/request-unknown-signature", "tfserving/request-unknown-model"),
    "tfjs": ("tfjs/shard-missing", "tfjs/loader-format-mismatch", "tfjs/file-url", "tfjs/unawaited-load",
             "tfjs/no-backend-chosen"),
    "android": ("litert/tflite-compressed", "litert/abi-without-arm64", "litert/asset-missing",
                "litert/not-a-flatbuffer"),
}
#: kind -> the rules the runtime fires on its faulty bundle (the runtime's own words)
PLANTED_VERIFIED: dict[str, tuple[str, ...]] = {
    "tfserving": ("tfserving/start-error", "tfserving/flag-without-equals"),
    "tfjs": ("tfjs/load-error", "tfjs/request-failed", "tfjs/page-error", "tfjs/tensor-leak"),
    "android": ("litert/load-error",),
}


def example(kind: str, variant: str) -> Path:
    """The checked-in bundle ``examples/check-config/<kind>/<variant>``."""
    if kind not in KINDS or variant not in VARIANTS:
        raise ValueError(f"no example bundle {kind}/{variant}: kinds {KINDS}, variants {VARIANTS}")
    return EXAMPLES_DIR / kind / variant


def copy_example(kind: str, variant: str, target: Path) -> Path:
    """A copy of the checked-in bundle at ``target`` (tests plant mistakes in copies, never in the source)."""
    shutil.copytree(example(kind, variant), target, symlinks=True)
    return target


def with_newer_op_versions(model: bytes, version: int = 99) -> bytes:
    """The model as a converter newer than any runtime would write it: every builtin operator code at
    ``version`` (all else unchanged).  The faulty Android bundle's ``model.tflite`` is the fixed one's
    through this."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    for entry in parsed.operatorCodes:
        entry.version = version
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


__all__ = ["EXAMPLES_DIR", "KINDS", "PLANTED", "PLANTED_VERIFIED", "VARIANTS", "copy_example", "example", "with_newer_op_versions"]
