"""SavedModels the server scenarios build themselves, cached by recipe and library versions.

* :func:`cached_export`: a re-exported or re-signed model, so warm runs skip TensorFlow;
* :func:`export_endpoint`: a custom ``serving_default`` around a Keras 3 model, written so that a
  Session-based server restores its variables;
* :func:`wide_mlp_saved_model`: a large untrained MLP, for load-time and batching measurements.

TensorFlow and Keras are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import ArtifactCache, library_versions
from harness.models import KERAS_DISTS

if TYPE_CHECKING:
    import tensorflow as tf


def cached_export(cache: ArtifactCache, recipe: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
    """A SavedModel directory written by ``build(path)``, cached under the hash of ``recipe``.

    ``recipe`` names everything that determines the export (the trained model's artifact, the
    recipe's name and revision); the versions of TF and Keras are added to it.
    """
    key = {**recipe, "versions": library_versions(*KERAS_DISTS)}
    return cache.get_or_build("serving_export", key, lambda out: build(out / "saved_model")) / "saved_model"


def export_endpoint(out: Path, model: Any, serve: Callable[..., Any], input_signature: list["tf.TensorSpec"]) -> None:
    """Write ``serve`` (a function calling the Keras 3 ``model``) as the ``serving_default`` signature.

    ``keras.export.ExportArchive`` with ``track(model)`` stores the Keras variables so that the
    SavedModel's restore op initialises them in a Session, as TF Serving runs it
    (``tf.saved_model.save`` of a tf.Module holding a Keras 3 model does not).  ``model`` is a
    ``keras.Model`` (Keras ships no type information, hence ``Any``).
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=input_signature)
    archive.write_out(str(out), verbose=False)


def wide_mlp_saved_model(cache: ArtifactCache, width: int = 4096, depth: int = 2) -> Path:
    """A wide MLP (8 -> width x depth -> 3, untrained, seeded) exported as a SavedModel.

    Big enough that loading and each Session run cost something measurable (each width x width
    layer of 4096 holds 16.7 M weights), and batch-friendly (a run on 16 rows costs about what one
    row costs). Returns the artifact directory: ``saved_model/`` and ``probe.npz`` (x: 4 rows, y).
    """

    def build(out: Path) -> None:
        import keras
        import numpy as np

        keras.utils.set_random_seed(0)
        hidden = [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        model = keras.Sequential([keras.Input((8,)), *hidden, keras.layers.Dense(3)])
        model.export(str(out / "saved_model"), verbose=False)
        x = np.random.default_rng(3).normal(size=(4, 8)).astype("float32")
        np.savez(out / "probe.npz", x=x, y=np.asarray(model(x)))

    key = {"model": f"wide-mlp-{width}" + (f"x{depth}" if depth != 2 else ""),
           "versions": library_versions("tensorflow", "keras", "numpy")}
    return cache.get_or_build("saved_model_wide_mlp", key, build)
