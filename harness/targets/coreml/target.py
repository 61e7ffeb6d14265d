"""Core ML through coremltools: conversion, spec inspection, saving, compression everywhere;
prediction only on macOS.

No open-source Core ML runtime exists for Linux.  ``predict`` therefore calls coremltools' real
``MLModel.predict``; off macOS that raises coremltools' own "only supported on macOS" error, which
becomes a skip (:class:`NotApplicable`) quoting it, after the conversion was checked.

What runs everywhere, so that a scenario can check something real on Linux: conversion and
weight compression (:mod:`harness.targets.coreml.convert`: ``convert_to_coreml``,
``compress_weights``) and reading what they produced (:mod:`harness.targets.coreml.kit`:
``spec_summary``, ``mil_operations``, ``image_preprocessing``, ``weight_bytes``,
``package_bytes``).  The macOS job ``.github/workflows/macos-coreml.yml`` runs the prediction
checks.

The deploy interface::

    with CoremlTarget() as target:
        prepared = target.prepare(ModelSource.from_path("model.h5"), cache)   # ML program, iOS 15+
        with target.load(prepared) as deployed:
            deployed.signature()       # from the Core ML spec (works on Linux)
            deployed.predict({...})    # macOS only; NotApplicable quoting coremltools elsewhere
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import HarnessError, NotApplicable, UsageError
from harness.targets.base import Deployment, ModelSource, Prepared, Signature, Target, TensorSpec
from harness.targets.coreml.convert import coreml_from_source
from harness.targets.coreml.kit import (MACOS_ONLY, on_macos, package_bytes, program_tensor_shapes, spec_summary,
                                        weight_bytes)

if TYPE_CHECKING:
    import numpy as np

#: Core ML multi-array element types as numpy dtype names.
ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}


class CoremlTarget(Target):
    """coremltools conversion everywhere; Core ML prediction on macOS only."""

    name = "coreml"

    def __init__(self) -> None:
        super().__init__()
        self._models: dict[str, Any] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = [d for d, v in library_versions("coremltools", "tensorflow").items() if v == "missing"]
        return f"Python packages not installed: {', '.join(missing)} (run the README set-up)" if missing else None

    def versions(self) -> dict[str, str]:
        found = library_versions("coremltools", "tensorflow", "tf-keras", "numpy")
        found["os"] = f"{platform.system()} {platform.release()}"
        return found

    def deactivate_impl(self) -> None:
        self._models.clear()

    # deploy interface ----------------------------------------------------------------------
    def prepare_impl(self, source: ModelSource, cache: ArtifactCache, options: dict[str, Any]) -> Prepared:
        """Convert ``source`` with ``coremltools.convert`` (cached); its errors propagate as raised."""
        package, notes = coreml_from_source(cache, source, options)
        return Prepared(self.name, source, package,
                        sizes={"artifact": package_bytes(package), "weights": weight_bytes(package)}, notes=notes)

    def load_impl(self, prepared: Prepared, options: dict[str, Any]) -> "CoremlDeployment":
        if options:
            raise UsageError(f"Core ML load takes no options (got {', '.join(sorted(options))})")
        return CoremlDeployment(self, prepared)

    # the common operations -----------------------------------------------------------------
    def open_model(self, model_path: Path) -> Any:
        """The model as coremltools opens it (compiled once per path on macOS; not compiled
        elsewhere, where no runtime exists)."""
        import coremltools as ct

        key = str(Path(model_path).resolve())
        if key not in self._models:
            self._models[key] = ct.models.MLModel(str(model_path), skip_model_load=not on_macos())
        return self._models[key]

    def predict(self, model_path: Path, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Core ML prediction; off macOS a skip quoting coremltools' own refusal."""
        model = self.open_model(model_path)
        try:
            return dict(model.predict(dict(inputs)))
        except Exception as exc:
            if not on_macos():
                raise NotApplicable(f"{MACOS_ONLY}; conversion was checked. coremltools said: {exc}") from exc
            raise

    def predict_array(self, model_path: Path, value: Any) -> Any:
        """Feed ``value`` (an array, or a PIL image for an image input) to the model's first input
        and return its first output as a numpy array; off macOS a skip, as :meth:`predict`."""
        import numpy as np

        name = spec_summary(model_path)["inputs"][0]["name"]
        return np.asarray(next(iter(self.predict(model_path, {name: value}).values())))


def _tensor_spec(feature: dict[str, Any], program: dict[str, tuple[int | None, ...]]) -> TensorSpec:
    """A spec feature as a TensorSpec: a dimension whose range is not one value is dynamic; a
    multi-array without a shape in the spec (an ML program's outputs) takes the program's type."""
    if feature["type"] == "multiArrayType":
        ranges = feature.get("ranges") or []
        shape = tuple(None if ranges and ranges[i][0] != ranges[i][1] else int(n)
                      for i, n in enumerate(feature["shape"]))
        if not shape:
            shape = program.get(feature["name"], ())
        return TensorSpec(feature["name"], ARRAY_DTYPES.get(feature["dtype"], feature["dtype"].lower()), shape)
    if feature["type"] == "imageType":
        channels = 1 if feature["color"] == "GRAYSCALE" else 3
        return TensorSpec(feature["name"], "uint8", (int(feature["height"]), int(feature["width"]), channels))
    return TensorSpec(feature["name"], str(feature["type"]), ())


class CoremlDeployment(Deployment):
    """A converted Core ML model opened by coremltools: its spec everywhere, prediction on macOS."""

    def __init__(self, target: CoremlTarget, prepared: Prepared) -> None:
        super().__init__(prepared)
        self.target = target

    def signature_impl(self) -> Signature:
        """Inputs and outputs as the Core ML spec describes them (read on any OS)."""
        summary = spec_summary(self.prepared.artifact)
        program = program_tensor_shapes(self.prepared.artifact)
        return Signature(tuple(_tensor_spec(f, program) for f in summary["inputs"]),
                         tuple(_tensor_spec(f, program) for f in summary["outputs"]))

    def predict(self, inputs: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
        """Core ML's outputs by name; off macOS :class:`NotApplicable` quoting coremltools."""
        import numpy as np

        if self.closed:
            raise HarnessError("predict() on a closed Core ML deployment")
        names = self.signature().input_names()
        if sorted(inputs) != sorted(names):
            raise UsageError(f"inputs {sorted(inputs)} do not match the model's inputs {names}: "
                             "pass one value per input name of signature()")
        out = self.target.predict(self.prepared.artifact, inputs)
        return {name: np.asarray(value) for name, value in out.items()}


__all__ = ["CoremlDeployment", "CoremlTarget"]
