"""The one step from a model file to a SavedModel, and the one Keras loader, both behind the trust gate.

Every target that needs a SavedModel (TF Serving serves one, the LiteRT and tf.js graph converters
read one, coremltools reads the tf_keras one of an ``.h5``) and the model zoo call
:func:`saved_model_of`; every place that needs the Keras object (the check's reference, LiteRT's
``from_keras_model``, the zoo) calls :func:`load_keras_model`.  Both call
:func:`harness.trust.admit` first and check a ``.keras`` archive's sizes before Keras opens it.
One cache kind (``saved_model``), keyed by the file's content, its Keras flavour, the recipe and
the library versions; it depends on no target.  TensorFlow and Keras are imported inside the
functions only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.archives import KERAS_ARCHIVE, checked_members
from harness.artifacts import ArtifactCache, library_versions
from harness.errors import RuntimeFailure, UsageError
from harness.trust import admit, keras_archive_json

if TYPE_CHECKING:
    from harness.targets.base import ModelSource

KerasFlavour = Literal["keras3", "tf_keras"]
#: ``export``: what each flavour documents for serving and conversion (Keras 3 ``model.export``,
#: a ``serving_default`` signature; tf_keras ``model.save(dir, save_format="tf")``).
#: ``concrete-function``: a Keras 3 model traced into one ``tf.function`` and saved with
#: ``tf.saved_model.save`` (the SavedModel coremltools 9 reads, where ``model.export``'s fails).
#: ``fixed-batch``: Keras 3 ``model.export`` with an ``input_signature`` that keeps the batch size
#: the model's inputs fix (a stateful RNN's states are that size; the default export's signature
#: says ``None`` and fails at run time for any other batch).
Recipe = Literal["export", "concrete-function", "fixed-batch"]
RECIPES: tuple[Recipe, ...] = ("export", "concrete-function", "fixed-batch")
EXPORT_DISTS = ("tensorflow", "keras", "tf-keras", "numpy")
#: Bump when a recipe changes, so cached exports are rebuilt.
EXPORT_REVISION = 1


def keras_flavour(source: "ModelSource") -> KerasFlavour:
    """Which Keras wrote the file: ``keras_version`` 2.x (metadata.json of a ``.keras``, the root
    attributes of an ``.h5``) is tf_keras, anything else Keras 3."""
    if source.format == "keras":
        meta = keras_archive_json(source.path, "metadata.json") or {}
        version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    else:
        import h5py

        try:
            with h5py.File(source.path, "r") as f:
                raw = f.attrs.get("keras_version", b"")
        except OSError as exc:
            raise UsageError(f"{source.path} is not a readable HDF5 file ({exc}); save it again with "
                             "model.save()") from None
        version = raw.decode() if isinstance(raw, bytes) else str(raw)
    return "tf_keras" if version.startswith("2.") else "keras3"


def _keras_module(flavour: KerasFlavour) -> Any:
    if flavour == "tf_keras":
        import tf_keras

        return tf_keras
    import keras

    return keras


def load_keras_model(source: "ModelSource") -> Any:
    """The Keras model of a ``.keras``/``.h5`` file, by the Keras that wrote it (gate first).

    Keras's own loader errors propagate unchanged, with their text."""
    if source.format == "saved_model":
        raise UsageError(f"{source.path} is a SavedModel, not a Keras model file")
    if source.format == "keras":
        checked_members(source.path, KERAS_ARCHIVE, hint="re-save it with model.save('model.keras')")
    admit(source)
    return _keras_module(keras_flavour(source)).models.load_model(str(source.path), compile=False)


def _write(model: Any, flavour: KerasFlavour, recipe: Recipe, out: Path) -> str:
    """Write ``model`` as a SavedModel at ``out`` by ``recipe``; returns the step's name."""
    if recipe == "concrete-function":
        import tensorflow as tf

        specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]

        @tf.function(input_signature=specs)
        def serve(*args: Any) -> Any:
            return model(list(args) if len(args) > 1 else args[0])

        module = tf.Module()
        module.model = model
        module.serve = serve
        tf.saved_model.save(module, str(out), signatures={"serving_default": serve})
        return "tf.saved_model.save(tf.function(model))"
    if recipe == "fixed-batch":
        import tensorflow as tf

        fixed = [tf.TensorSpec(t.shape, t.dtype, name=t.name.split(":")[0]) for t in model.inputs]
        model.export(str(out), verbose=False, input_signature=fixed)
        return "model.export(input_signature=<the inputs' fixed batch>)"
    if flavour == "keras3":
        model.export(str(out), verbose=False)
        return "model.export"
    model.save(str(out), save_format="tf")
    return "model.save(save_format='tf')"


def saved_model_of(cache: ArtifactCache, source: "ModelSource", *, recipe: Recipe = "export") -> Path:
    """``source`` as a SavedModel directory (cached; a SavedModel source is its own answer).

    ``recipe`` picks the flavour a target needs (see :data:`Recipe`); ``concrete-function`` is for
    a Keras 3 model.  Keras's and TensorFlow's own errors arrive as :class:`RuntimeFailure`
    carrying their text.
    """
    if recipe not in RECIPES:
        raise UsageError(f"unknown export recipe {recipe!r}: use one of {', '.join(RECIPES)}")
    if source.format == "saved_model":
        if recipe != "export":
            raise UsageError(f"recipe {recipe} needs a Keras model file, {source.path} is a SavedModel")
        admit(source)
        return source.path
    flavour = keras_flavour(source)
    if recipe in ("concrete-function", "fixed-batch") and flavour != "keras3":
        raise UsageError(f"recipe {recipe} is for a Keras 3 model; {source.path} was written by tf_keras")
    key = {"source": cache.source_key(source.path), "format": source.format, "flavour": flavour,
           "recipe": recipe, "revision": EXPORT_REVISION, "versions": library_versions(*EXPORT_DISTS)}

    def build(out: Path) -> None:
        library = "Keras 3" if flavour == "keras3" else "tf_keras"
        step = "load_model"
        try:
            model = load_keras_model(source)
            step = _write(model, flavour, recipe, out / "saved_model")
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - Keras's / TensorFlow's own error, kept with its text
            raise RuntimeFailure(library, str(exc), kind=type(exc).__name__,
                                 source=f"{library} {step} of {source.path.name}") from exc

    admit(source)
    return cache.get_or_build("saved_model", key, build) / "saved_model"
