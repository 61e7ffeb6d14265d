"""Core ML through coremltools: conversion, spec inspection, saving, compression everywhere;
prediction only on macOS.

No open-source Core ML runtime exists for Linux.  ``predict`` therefore calls coremltools' real
``MLModel.predict``; off macOS that raises coremltools' own "only supported on macOS" error, which
becomes a skip (:class:`NotApplicable`) quoting it, after the conversion was checked.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.scenario import NotApplicable
from harness.targets.base import Target

MACOS_ONLY = "Core ML prediction needs macOS (no Core ML runtime exists for Linux)"


def on_macos() -> bool:
    return platform.system() == "Darwin"


def convert_to_coreml(cache: ArtifactCache, source: Path, *, options: Mapping[str, Any] | None = None,
                      label: str = "") -> Path:
    """Convert a SavedModel directory or a Keras ``.h5`` file with ``coremltools.convert``.

    ``options`` are passed to ``ct.convert`` (plain values only, e.g. ``convert_to``,
    ``minimum_deployment_target`` given by name); ``label`` distinguishes cached variants whose
    options are built in the call (e.g. ``inputs=[ct.ImageType(...)]``).  coremltools' errors
    propagate with their own text.
    """
    opts = dict(options or {})
    key = {"source": str(source), "options": opts, "label": label,
           "versions": library_versions("coremltools", "tensorflow", "tf-keras")}

    def build(out: Path) -> None:
        import coremltools as ct

        kwargs = dict(opts)
        if isinstance(kwargs.get("minimum_deployment_target"), str):
            kwargs["minimum_deployment_target"] = getattr(ct.target, kwargs["minimum_deployment_target"])
        model = ct.convert(str(source), source="tensorflow", **kwargs)
        suffix = ".mlmodel" if kwargs.get("convert_to") == "neuralnetwork" else ".mlpackage"
        model.save(str(out / f"model{suffix}"))

    built = cache.get_or_build("coreml", key, build)
    return next(p for p in built.iterdir() if p.name.startswith("model."))


def spec_summary(model_path: Path) -> dict[str, Any]:
    """Input/output names, types and shapes as the Core ML spec records them."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(model_path))

    def feature(f: Any) -> dict[str, Any]:
        kind = f.type.WhichOneof("Type")
        entry: dict[str, Any] = {"name": f.name, "type": kind}
        if kind == "multiArrayType":
            entry["shape"] = list(f.type.multiArrayType.shape)
            entry["dtype"] = ct.proto.FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(
                f.type.multiArrayType.dataType)
            ranges = f.type.multiArrayType.shapeRange.sizeRanges
            entry["ranges"] = [[r.lowerBound, r.upperBound] for r in ranges]
        elif kind == "imageType":
            entry["width"] = f.type.imageType.width
            entry["height"] = f.type.imageType.height
            entry["color"] = ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(f.type.imageType.colorSpace)
        return entry

    return {"spec_version": spec.specificationVersion,
            "model_type": spec.WhichOneof("Type"),
            "inputs": [feature(f) for f in spec.description.input],
            "outputs": [feature(f) for f in spec.description.output]}


def package_bytes(model_path: Path) -> int:
    if model_path.is_file():
        return model_path.stat().st_size
    return sum(p.stat().st_size for p in model_path.rglob("*") if p.is_file())


class CoremlTarget(Target):
    """coremltools conversion everywhere; Core ML prediction on macOS only."""

    name = "coreml"
    platform = "mobile"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = [d for d, v in library_versions("coremltools", "tensorflow").items() if v == "missing"]
        return f"Python packages not installed: {', '.join(missing)} (run the README set-up)" if missing else None

    def versions(self) -> dict[str, str]:
        found = library_versions("coremltools", "tensorflow", "tf-keras", "numpy")
        found["os"] = f"{platform.system()} {platform.release()}"
        return found

    def load(self, model_path: Path) -> Any:
        import coremltools as ct

        return ct.models.MLModel(str(model_path))

    def predict(self, model_path: Path, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Core ML prediction; off macOS a skip quoting coremltools' own refusal."""
        model = self.load(model_path)
        try:
            return dict(model.predict(dict(inputs)))
        except Exception as exc:
            if not on_macos():
                raise NotApplicable(f"{MACOS_ONLY}; conversion was checked. coremltools said: {exc}") from exc
            raise
