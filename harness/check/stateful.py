"""A model with stateful layers, exported for the targets as it deploys (issue 21).

A stateful RNN keeps states as large as the batch its input fixes.  Keras 3's ``model.export``
writes a serving signature of batch ``None``, and a request of another batch fails in the graph;
the export with an ``input_signature`` at the fixed batch (:data:`harness.export.RECIPES`
``fixed-batch``) serves.  :func:`fixed_batch_export` tries both for real and hands the check the
model the targets are then run on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.check.model import LoadedModel, stateful_layers
from harness.check.report import Finding
from harness.check.steps import finding_from
from harness.targets.base import ModelSource

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache


def fixed_batch_export(model: LoadedModel, cache: "ArtifactCache") -> tuple[LoadedModel, list[Finding]]:
    """A Keras 3 model with stateful layers: what the default ``model.export`` gives, tried for real,
    and the model every target is then checked on (the fixed-batch export when it runs).

    The states are as large as the batch the model fixes; ``model.export`` writes a serving
    signature of batch ``None`` (or fails), and a request of another batch fails in the graph.  The
    export with ``input_signature`` at the fixed batch (:data:`harness.export.RECIPES`
    ``fixed-batch``) is run at that batch; when it runs, the targets are checked on it and
    ``model.export`` says so (:attr:`LoadedModel.export`).  Any other model is returned unchanged."""
    import dataclasses

    import numpy as np

    from harness.export import saved_model_of

    layers = stateful_layers(model.keras_model) if model.keras_model is not None else []
    if not layers or model.flavour != "keras3" or model.source.format != "keras":
        return model, []
    names = ", ".join(layer.name for layer in layers)
    batch = model.inputs[0].shape[0]
    notes = [Finding("warning", f"stateful layers ({names}) keep their states between calls, for a batch of "
                     f"{batch}: each call starts where the previous one left off, so a deployed model's outputs "
                     "depend on every request before (a second request on the same server differs from the first)",
                     "Keras model config", "static", step="export",
                     fix="reset the states where your app starts a sequence (a served model cannot be reset "
                         "per request: serve a stateless model that takes and returns the states)")]
    other = (batch or 1) + 1
    try:
        default = saved_model_of(cache, model.source)
        signature = _serving_default(default)
        _, kwargs = signature.structured_input_signature
        dims = {name: spec.shape.as_list() for name, spec in kwargs.items()}
        if all(shape and shape[0] is None for shape in dims.values()):
            feed = {name: np.zeros([other, *[d or 1 for d in shape[1:]]], dtype=kwargs[name].dtype.as_numpy_dtype)
                    for name, shape in dims.items()}
            _call(signature, feed)
            return model, notes  # another batch runs: nothing to say about the export
    except Exception as exc:  # noqa: BLE001 - the export's or the graph's own text is the finding
        failed = finding_from("check", exc, "export", severity="warning")
        notes.append(dataclasses.replace(failed, text=f"the default model.export's serving signature takes a batch "
                                         f"of any size, but the states are of batch {batch}: a request of {other} "
                                         f"rows fails: {failed.text}",
                                         fix="export with model.export(dir, input_signature=[tf.TensorSpec(<the "
                                             "input shape with its batch>, ...)]) and send that batch"))
    try:
        fixed = saved_model_of(cache, model.source, recipe="fixed-batch")
        signature = _serving_default(fixed)
        _call(signature, {spec.name: np.zeros([d or 1 for d in spec.shape], dtype=spec.dtype)
                          for spec in model.inputs})
    except Exception as exc:  # noqa: BLE001 - the fixed export does not run either: the targets get the default
        notes.append(finding_from("check", exc, "export", severity="warning"))
        return model, notes
    notes.append(Finding("info", f"the export with a fixed-batch input_signature (batch {batch}) runs at that batch: "
                         "every target was checked on it", "TensorFlow (the fixed-batch export's serving_default)",
                         "runtime", step="export"))
    exported = ModelSource.from_path(fixed, trusted=model.source.trusted, imports=model.source.imports)
    return dataclasses.replace(model, source=exported,
                               export=f"model.export(input_signature=<batch {batch}>) of {model.source.path.name}"), notes


def _serving_default(saved_model: Path) -> Any:
    import tensorflow as tf

    return tf.saved_model.load(str(saved_model)).signatures["serving_default"]


def _call(signature: Any, feed: "dict[str, np.ndarray]") -> Any:
    import tensorflow as tf

    return signature(**{name: tf.constant(value) for name, value in feed.items()})
