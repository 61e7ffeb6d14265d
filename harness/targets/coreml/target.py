"""Core ML through coremltools: conversion, spec inspection, saving, compression everywhere;
prediction only on macOS.

No open-source Core ML runtime exists for Linux.  ``predict`` therefore calls coremltools' real
``MLModel.predict``; off macOS that raises coremltools' own "only supported on macOS" error, which
becomes a skip (:class:`NotApplicable`) quoting it, after the conversion was checked.

What runs everywhere, so that a scenario can check something real on Linux: ``convert_to_coreml``
(cached, with an ``inputs`` factory for ``ct.TensorType``/``ct.ImageType``), ``spec_summary``
(input/output features and shape ranges), ``mil_operations`` and ``image_preprocessing`` (what the
ML program does, e.g. the pixel scale of an image input), ``compress_weights`` (cached
``ct.optimize.coreml`` quantization/palettization) and ``weight_bytes``/``package_bytes``.
The macOS job ``.github/workflows/macos-coreml.yml`` runs the prediction checks.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Callable, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import HarnessError
from harness.errors import NotApplicable
from harness.targets.base import Target

MACOS_ONLY = "Core ML prediction needs macOS (no Core ML runtime exists for Linux)"


def on_macos() -> bool:
    return platform.system() == "Darwin"


def convert_to_coreml(cache: ArtifactCache, source: Path, *, options: Mapping[str, Any] | None = None,
                      label: str = "", inputs: Callable[[Any], list[Any]] | None = None) -> Path:
    """Convert a SavedModel directory or a Keras ``.h5`` file with ``coremltools.convert``.

    ``options`` are passed to ``ct.convert`` (plain values only, e.g. ``convert_to``,
    ``minimum_deployment_target`` given by name).  ``inputs``, when given, is called with the
    ``coremltools`` module and returns ``ct.convert``'s ``inputs`` list (``ct.TensorType`` with a
    ``ct.RangeDim``, ``ct.ImageType(scale=...)`` ...); ``label`` must then name that choice, since
    it is what distinguishes the cached artifacts.  coremltools' errors propagate with their own
    text.
    """
    if inputs is not None and not label:
        raise HarnessError("convert_to_coreml: give a label that names the `inputs` choice (it keys the cache)")
    opts = dict(options or {})
    key = {"source": str(source), "options": opts, "label": label,
           "versions": library_versions("coremltools", "tensorflow", "tf-keras")}

    def build(out: Path) -> None:
        import coremltools as ct

        kwargs = dict(opts)
        if inputs is not None:
            kwargs["inputs"] = inputs(ct)
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


def weight_bytes(model_path: Path) -> int:
    """Bytes of an ``.mlpackage``'s weight files (the part weight compression shrinks).

    An ``.mlmodel`` (neural network) keeps its weights inline: its whole size is returned.
    """
    weights = model_path / "Data" / "com.apple.CoreML" / "weights"
    if model_path.is_file() or not weights.is_dir():
        return package_bytes(model_path)
    return sum(p.stat().st_size for p in weights.rglob("*") if p.is_file())


def _main_block(spec: Any) -> Any:
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def _const_values(op: Any) -> list[float]:
    tensor = op.attributes["val"].immediateValue.tensor
    kind = tensor.WhichOneof("value")
    return [float(v) for v in getattr(tensor, kind).values] if kind in ("floats", "doubles", "ints") else []


def mil_operations(model_path: Path) -> list[str]:
    """The operation types of an ML program's main function, in order (``[]`` for other models)."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(model_path))
    if spec.WhichOneof("Type") != "mlProgram":
        return []
    return [op.type for op in _main_block(spec).operations]


def image_preprocessing(model_path: Path) -> dict[str, dict[str, list[float]]]:
    """Per image input: the ``scale`` and ``bias`` Core ML applies to pixels before the network.

    ``ct.ImageType(scale=..., bias=...)`` becomes a ``mul`` (output ``<input>__scaled__``) and an
    ``add`` (``<input>__biased__``) at the start of the ML program; when they are absent the
    network receives raw 0-255 pixel values (scale 1, bias 0).
    """
    import coremltools as ct

    spec = ct.utils.load_spec(str(model_path))
    images = [f.name for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"]
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"{model_path}: image_preprocessing reads ML programs only")
    ops = list(_main_block(spec).operations)
    consts = {op.outputs[0].name: _const_values(op) for op in ops if op.type == "const"}
    found: dict[str, dict[str, list[float]]] = {name: {"scale": [1.0], "bias": [0.0]} for name in images}
    for op in ops:
        for name in images:
            key = {"mul": (f"{name}__scaled__", "scale", "y"), "add": (f"{name}__biased__", "bias", "y")}.get(op.type)
            if key and op.outputs[0].name == key[0]:
                argument = op.inputs[key[2]].arguments[0].name
                found[name][key[1]] = consts.get(argument, [])
    return found


def compress_weights(cache: ArtifactCache, package: Path, *, method: str, config: Mapping[str, Any]) -> Path:
    """Compress an ML program's weights with ``ct.optimize.coreml`` and save it (cached).

    ``method`` is ``"linear"`` (``linear_quantize_weights`` with ``OpLinearQuantizerConfig``) or
    ``"palettize"`` (``palettize_weights`` with ``OpPalettizerConfig``); ``config`` holds that
    config's keyword arguments (e.g. ``mode``, ``nbits``, ``weight_threshold``).
    """
    key = {"source": str(package), "method": method, "config": dict(config),
           "versions": library_versions("coremltools")}

    def build(out: Path) -> None:
        import coremltools as ct
        from coremltools.optimize import coreml as cto

        model = ct.models.MLModel(str(package), skip_model_load=True)
        if method == "linear":
            options = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(**config))
            compressed = cto.linear_quantize_weights(model, options)
        elif method == "palettize":
            options = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(**config))
            compressed = cto.palettize_weights(model, options)
        else:
            raise ValueError(f"unknown compression method {method!r}")
        compressed.save(str(out / "model.mlpackage"))

    return cache.get_or_build("coreml", key, build) / "model.mlpackage"


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

    def load(self, model_path: Path) -> Any:
        """The model as coremltools opens it (compiled once per path on macOS; not compiled
        elsewhere, where no runtime exists)."""
        import coremltools as ct

        key = str(Path(model_path).resolve())
        if key not in self._models:
            self._models[key] = ct.models.MLModel(str(model_path), skip_model_load=not on_macos())
        return self._models[key]

    def predict(self, model_path: Path, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Core ML prediction; off macOS a skip quoting coremltools' own refusal."""
        model = self.load(model_path)
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
