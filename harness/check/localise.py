"""Where a converted model's outputs start to diverge from Keras: per-layer errors and attribution.

The converted model's intermediate tensors (a target's check paths read them from its runtime, e.g.
an interpreter that keeps them all) are mapped back to Keras layer names by the names the converter
gives them (``sequential_1/conv2d_1/Relu;...`` holds the layer name), the
last tensor of each layer being its output; each is compared with the Keras layer's own output on
the same inputs.  A layer that fails while every layer feeding it passes is the **local** cause; a
failing layer downstream of a failing one is **accumulated** error.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from harness.check.report import Divergence, LayerError
from harness.compare import Tolerance

if TYPE_CHECKING:
    import numpy as np


def _layer_in_name(tensor_name: str, layers: set[str], model_name: str) -> str | None:
    """The Keras layer a converter tensor name refers to (Keras 3 exports add ``_1`` to each scope)."""
    keras3 = re.match(rf"{re.escape(model_name)}_\d+/", tensor_name) is not None
    for part in tensor_name.split(";"):
        components = part.split("/")
        for component in components[1:]:
            candidate = re.sub(r"_\d+$", "", component) if keras3 else component
            if candidate in layers:
                return candidate
    return None


def map_to_layers(ops: list[list[Any]], layer_shapes: dict[str, tuple[int, ...]], model_name: str,
                  output_layers: list[str], outputs: list[Any]) -> dict[str, tuple[str, Any]]:
    """Keras layer -> (tensor name, value): the layer's last tensor whose shape is the layer's."""
    import numpy as np

    layers = set(layer_shapes)
    mapped: dict[str, tuple[str, Any]] = {}
    for name, value in ops:
        layer = _layer_in_name(str(name), layers, model_name)
        if layer is not None and tuple(np.shape(value)) == layer_shapes[layer]:
            mapped[layer] = (str(name), value)
    for layer, value in zip(output_layers, outputs):  # the model's outputs are the output layers' values
        if layer in layer_shapes and tuple(np.shape(value)) == layer_shapes[layer]:
            mapped[layer] = ("model output", value)
    return mapped


def _layer_error(layer: str, tensor: str, got: Any, want: "np.ndarray", tolerance: Tolerance) -> LayerError:
    import numpy as np

    g = np.asarray(got, dtype="float64")
    w = np.asarray(want, dtype="float64")
    diff = g - w
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    norm_w = float(np.linalg.norm(w))
    norm_d = float(np.linalg.norm(diff))
    rel = norm_d / norm_w if norm_w > 0 else (0.0 if norm_d == 0 else math.inf)
    noise = float(np.mean(diff ** 2)) if diff.size else 0.0
    signal = float(np.mean(w ** 2)) if w.size else 0.0
    sqnr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal > 0 else -math.inf)
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    passes = max_abs <= tolerance.atol + tolerance.rtol * scale
    return LayerError(layer, tensor, max_abs, rel, sqnr, passes, "ok")


def _mapped_ancestors(layer: str, inbound: dict[str, list[str]], status: dict[str, bool]) -> set[str]:
    """The nearest layers upstream of ``layer`` that were compared (an unmapped parent, fused into
    its neighbour, is looked through to its own parents)."""
    found: set[str] = set()
    seen: set[str] = set()
    stack = list(inbound.get(layer, []))
    while stack:
        parent = stack.pop()
        if parent in seen:
            continue
        seen.add(parent)
        if parent in status:
            found.add(parent)
        else:
            stack.extend(inbound.get(parent, []))
    return found


def localise(path: str, order: list[str], reference: "dict[str, np.ndarray]",
             mapped: dict[str, tuple[str, Any]], inbound: dict[str, list[str]],
             tolerance: Tolerance) -> Divergence:
    """The per-layer table, in layer order, with local vs accumulated attribution."""
    divergence = Divergence(path=path, tolerance={"atol": tolerance.atol, "rtol": tolerance.rtol})
    status: dict[str, bool] = {}
    for layer in order:
        if layer not in reference:
            continue
        if layer not in mapped:
            divergence.unmapped.append(layer)
            continue
        tensor, value = mapped[layer]
        row = _layer_error(layer, tensor, value, reference[layer], tolerance)
        status[layer] = row.passes
        if not row.passes:
            local = all(status[p] for p in _mapped_ancestors(layer, inbound, status))
            row = LayerError(row.layer, row.tensor, row.max_abs, row.rel_error, row.sqnr_db, False,
                             "local" if local else "accumulated")
            if local and divergence.first_layer is None:
                divergence.first_layer = layer
        divergence.layers.append(row)
    if divergence.unmapped:
        divergence.note = (f"{len(divergence.unmapped)} layer(s) have no tensor of their output shape in the "
                           "converted model (fused into a neighbour or renamed): "
                           + ", ".join(divergence.unmapped[:8]))
    return divergence
