"""Slices of a Keras layer graph: a contiguous run of layers (in the model's topological order),
rebuilt as a functional model of its own from each layer's config and real weights, and the
reference's inputs to that slice.

A slice's inputs are the tensors its layers read that a layer outside it made (or the model's
inputs); its outputs the tensors its layers make that no layer inside it reads.  Keras (Keras 3 or
tf_keras, the module that made the model) is imported inside the functions only.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Window:
    """Layers ``start`` up to (not including) ``stop`` of the model's layers (input layers left out)."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class Slice:
    """One window rebuilt: the sub-model, its input names (in order) and the reference's values for them."""

    window: Window
    layers: list[str]
    model: Any
    input_names: list[str]
    inputs: "dict[str, np.ndarray]"


def keras_module_of(model: Any) -> Any:
    """``keras`` or ``tf_keras``: the module whose classes made ``model``."""
    return importlib.import_module(type(model).__module__.split(".")[0])


def sliceable_layers(model: Any) -> list[Any]:
    """The layers of the model's graph in its topological order, input layers left out; a layer the
    graph calls more than once (shared weights) cannot be cut apart and is a UsageError."""
    nodes = graph_nodes(model)
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer" and id(layer) in nodes]
    if not layers:
        raise UsageError("the model has no layers to reduce over; reduce takes a Keras functional or Sequential model")
    return layers


def graph_nodes(model: Any) -> dict[int, Any]:
    """id(layer) -> the node (call) of that layer in the model's graph, walked back from its outputs
    (a layer may hold other nodes: a Sequential's layers were also called while it was built)."""
    found: dict[int, Any] = {}
    pending = _flat(model.outputs)
    seen: set[int] = set()
    while pending:
        tensor = pending.pop()
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        layer, node_index = tensor._keras_history[0], tensor._keras_history[1]  # noqa: SLF001
        node = layer._inbound_nodes[node_index]  # noqa: SLF001 - Keras keeps the graph here in both flavours
        if id(layer) in found and found[id(layer)] is not node:
            raise UsageError(f"layer {layer.name} is called more than once in the model (shared weights); reduce "
                             "cuts models whose layers are each called once")
        found[id(layer)] = node
        pending.extend(_node_inputs(node))
    return found


def _flat(structure: Any) -> list[Any]:
    if isinstance(structure, dict):
        return [x for value in structure.values() for x in _flat(value)]
    if isinstance(structure, (list, tuple)):
        return [x for value in structure for x in _flat(value)]
    return [structure]


def _node_inputs(node: Any) -> list[Any]:
    """The symbolic tensors a layer's node reads (Keras 3: ``arguments``; tf_keras: ``keras_inputs``)."""
    arguments = getattr(node, "arguments", None)
    if arguments is not None:
        return list(arguments.keras_tensors)
    return list(node.keras_inputs)


def _node_outputs(node: Any) -> list[Any]:
    return _flat(node.outputs)


def _call_clone(node: Any, clone: Any, values: dict[int, Any]) -> Any:
    """Call ``clone`` as the original layer was called, with ``values`` (by id of the symbolic tensor)."""
    arguments = getattr(node, "arguments", None)
    if arguments is not None:  # Keras 3
        args, kwargs = arguments.fill_in(values)
        return clone(*args, **kwargs)
    # tf_keras: map_arguments pops each symbolic input's value from a list keyed by str(id(tensor))
    wanted = [kt_id for kt_id, _ in node._keras_inputs_ids_and_indices]  # noqa: SLF001
    feed: dict[str, list[Any]] = {kt_id: [] for kt_id in wanted}
    for kt_id in wanted:
        feed[kt_id].append(values[int(kt_id)])
    args, kwargs = node.map_arguments(feed)
    return clone(*args, **kwargs)


def _input_name(text: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", text.split(":")[0]) or "input"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


def build_slice(model: Any, window: Window, inputs: "dict[str, np.ndarray]", feed: Any) -> Slice:
    """The layers of ``window`` as a functional model of their own, and the reference's inputs to it
    (the full model run on ``feed``, the same inputs as ``inputs`` in the form Keras takes them)."""
    import numpy as np

    keras = keras_module_of(model)
    nodes = graph_nodes(model)
    layers = sliceable_layers(model)[window.start:window.stop]
    made_inside: set[int] = set()
    read_inside: set[int] = set()
    boundary: list[Any] = []  # the tensors the slice reads from outside, in first-read order
    for layer in layers:
        node = nodes[id(layer)]
        for tensor in _node_inputs(node):
            read_inside.add(id(tensor))
            if id(tensor) not in made_inside and all(id(t) != id(tensor) for t in boundary):
                boundary.append(tensor)
        made_inside.update(id(t) for t in _node_outputs(node))
    taken: set[str] = set()
    model_inputs = {id(t): name for t, name in zip(_flat(model.inputs), _model_input_names(model))}
    values: dict[int, Any] = {}
    new_inputs: list[Any] = []
    names: list[str] = []
    for tensor in boundary:
        producer = tensor._keras_history[0]  # noqa: SLF001 - the layer that made the tensor
        name = _input_name(model_inputs.get(id(tensor), producer.name), taken)
        shape = tuple(tensor.shape)[1:]
        dtype = getattr(tensor.dtype, "name", tensor.dtype)
        new = keras.Input(shape=shape, dtype=dtype, name=name)
        values[id(tensor)] = new
        new_inputs.append(new)
        names.append(name)
    outputs: list[Any] = []
    for layer in layers:
        node = nodes[id(layer)]
        clone = type(layer).from_config(layer.get_config())
        got = _flat(_call_clone(node, clone, values))
        clone.set_weights(layer.get_weights())
        for original, new in zip(_node_outputs(node), got):
            values[id(original)] = new
    for layer in layers:
        for tensor in _node_outputs(nodes[id(layer)]):
            if id(tensor) not in read_inside:
                outputs.append(values[id(tensor)])
    sub = keras.Model(new_inputs, outputs, name="reduced")
    reference = _reference_values(model, boundary, model_inputs, inputs, feed, keras)
    return Slice(window, [layer.name for layer in layers], sub, names,
                 {name: np.asarray(value) for name, value in zip(names, reference)})


def _model_input_names(model: Any) -> list[str]:
    return [getattr(t, "name", f"input_{i}").split(":")[0] for i, t in enumerate(_flat(model.inputs))]


def _reference_values(model: Any, boundary: list[Any], model_inputs: dict[int, str],
                      inputs: "dict[str, np.ndarray]", feed: Any, keras: Any) -> list[Any]:
    """The full model's values of the ``boundary`` tensors on ``feed``."""
    import numpy as np

    inner = [t for t in boundary if id(t) not in model_inputs]
    got: list[Any] = []
    if inner:
        probe = keras.Model(model.inputs, inner)
        got = probe.predict(feed, verbose=0)
        got = list(got) if isinstance(got, (list, tuple)) else [got]
    found = iter(got)
    return [np.asarray(inputs[model_inputs[id(t)]]) if id(t) in model_inputs else next(found) for t in boundary]
