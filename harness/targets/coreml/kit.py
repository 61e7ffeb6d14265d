"""Helpers the Core ML scenarios use: reading a converted model's spec and program, its sizes.

All of it runs on Linux with the real coremltools (imported inside the functions): the spec and
the ML program are protobuf files that coremltools reads without the Core ML runtime.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

#: coremltools' own refusal to predict off macOS (the text its MLModel.predict raises)
OFF_MACOS = "Model prediction is only supported on macOS"
MACOS_ONLY = "Core ML prediction needs macOS (no Core ML runtime exists for Linux)"


def on_macos() -> bool:
    return platform.system() == "Darwin"


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


def program_tensor_shapes(model_path: Path) -> dict[str, tuple[int | None, ...]]:
    """Shapes of an ML program's main inputs and outputs as the program types them (``None`` for
    an unknown dimension); ``{}`` for other models.  The spec's output features of an ML program
    usually carry no shape; the program's own types do."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(model_path))
    if spec.WhichOneof("Type") != "mlProgram":
        return {}
    function = spec.mlProgram.functions["main"]
    block = _main_block(spec)
    typed = [*function.inputs, *(o for op in block.operations for o in op.outputs if o.name in block.outputs)]

    def dims(value_type: Any) -> tuple[int | None, ...]:
        return tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
                     for d in value_type.tensorType.dimensions)

    return {v.name: dims(v.type) for v in typed if v.type.WhichOneof("type") == "tensorType"}


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


