"""TF Lite conversion with TensorFlow's ``TFLiteConverter``, cached (runs in the pytest process).

:func:`convert_to_tflite` converts one source with explicit converter settings;
:func:`tflite_from_source` picks the converter entry point for a :class:`ModelSource` (what
``LitertTarget.prepare`` does).  Converter errors propagate unchanged, with TensorFlow's text.
TensorFlow and Keras are imported inside the builders only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import HarnessError, UsageError
from harness.export import load_keras_model, saved_model_of
from harness.targets.base import ModelSource
from harness.trust import admit

if TYPE_CHECKING:
    import numpy as np

Quantization = Literal["none", "dynamic", "float16", "int8"]
QUANTIZATIONS: tuple[Quantization, ...] = ("none", "dynamic", "float16", "int8")
#: ``configure(converter, tf)``: sets converter attributes the way the user's own code would.
ConverterSetup = Callable[[Any, Any], None]
CONVERTER_VERSIONS = ("tensorflow", "keras", "tf-keras")


def _digest(data: "np.ndarray | None") -> str | None:
    return hashlib.sha256(data.tobytes()).hexdigest()[:16] if data is not None else None


def convert_to_tflite(cache: ArtifactCache, source: "Path | ModelSource", *, quantize: Quantization = "none",
                      representative: "np.ndarray | None" = None, select_tf_ops: bool = False,
                      from_keras: bool = False, extra: Mapping[str, Any] | None = None,
                      configure: ConverterSetup | None = None, label: str = "",
                      float_nodes: Sequence[str] = ()) -> Path:
    """Convert a SavedModel directory (or a Keras model file with ``from_keras``) to ``.tflite``.

    ``quantize`` picks a post-training quantisation (``int8`` calibrates on ``representative``
    when given); ``select_tf_ops`` adds the TF kernels (Flex); ``extra`` sets converter attributes
    by name (``{"allow_custom_ops": True}``); ``configure(converter, tf)``, called last, sets
    whatever a scenario spells out itself, and ``label`` must then name those settings, since it
    is what distinguishes the cached artifacts.  ``float_nodes`` (with ``int8``): selective
    quantisation, the ops whose output tensors have these names kept in float (TF Lite's
    ``QuantizationDebugger`` denylist; the model keeps float inputs and outputs).  Cached by the
    source's content key, the options, the representative data and the converter versions.

    ``source`` passes the trust gate first (:func:`harness.trust.admit`); a bare path is an
    untrusted :class:`ModelSource` (the catalog's files pass the gate's scan).
    """
    model = source if isinstance(source, ModelSource) else ModelSource.from_path(source)
    admit(model)
    if quantize not in QUANTIZATIONS:
        raise UsageError(f"unknown quantization {quantize!r}: use one of {', '.join(QUANTIZATIONS)}")
    if configure is not None and not label:
        raise HarnessError("convert_to_tflite: give a label that names the `configure` settings (it keys the cache)")
    key: dict[str, Any] = {"source": cache.source_key(model.path), "quantize": quantize,
                           "rep": _digest(representative), "select_tf_ops": select_tf_ops, "from_keras": from_keras,
                           "extra": dict(extra or {}), "label": label,
                           "versions": library_versions(*CONVERTER_VERSIONS)}
    if float_nodes:
        if quantize != "int8" or representative is None:
            raise UsageError("float_nodes (selective quantisation) needs quantize='int8' and a representative set")
        key["float_nodes"] = sorted(float_nodes)

    def build(out: Path) -> None:
        import tensorflow as tf

        if from_keras:
            converter = tf.lite.TFLiteConverter.from_keras_model(load_keras_model(model))
        else:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(model.path))
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            if representative is not None:
                rep = representative

                def dataset() -> Any:
                    for i in range(len(rep)):
                        yield [rep[i: i + 1]]

                converter.representative_dataset = dataset
            if float_nodes:  # the denylisted ops stay float: the model keeps float builtins and float I/O
                options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_nodes))
                debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset,
                                                                      debug_options=options)
                (out / "model.tflite").write_bytes(debugger.get_nondebug_quantized_model())
                return
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        if select_tf_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        for name, value in (extra or {}).items():
            setattr(converter, name, value)
        if configure is not None:
            configure(converter, tf)
        (out / "model.tflite").write_bytes(converter.convert())

    return cache.get_or_build("tflite", key, build) / "model.tflite"


#: The options ``LitertTarget.prepare`` takes.
PREPARE_OPTIONS = ("quantize", "representative", "select_tf_ops", "route", "converter_flags", "float_nodes")
ROUTES = ("export", "keras_model")


def tflite_from_source(cache: ArtifactCache, source: "ModelSource",
                       options: Mapping[str, Any]) -> tuple[Path, dict[str, Any]]:
    """Convert a user's model by the documented path for its format; returns (file, notes).

    ``.keras`` (Keras 3): ``model.export`` then ``from_saved_model`` (``route="export"``, the
    default) or ``from_keras_model`` (``route="keras_model"``); ``.h5`` (tf_keras):
    ``from_keras_model`` on the tf_keras model; a SavedModel directory: ``from_saved_model``.
    Options: ``quantize`` (none/dynamic/float16/int8), ``representative`` (an array of inputs,
    for int8), ``select_tf_ops`` (bool), ``converter_flags`` (converter attributes by name, e.g.
    ``{"_experimental_lower_tensor_list_ops": False}``), ``float_nodes`` (int8: tensor names whose
    ops stay float).
    """
    unknown = sorted(set(options) - set(PREPARE_OPTIONS))
    if unknown:
        raise UsageError(f"unknown LiteRT prepare option(s) {', '.join(unknown)}: use {', '.join(PREPARE_OPTIONS)}")
    route = options.get("route", "export")
    if route not in ROUTES:
        raise UsageError(f"unknown conversion route {route!r}: use one of {', '.join(ROUTES)}")
    settings: dict[str, Any] = {"quantize": options.get("quantize", "none"),
                                "representative": options.get("representative"),
                                "select_tf_ops": bool(options.get("select_tf_ops", False)),
                                "extra": dict(options.get("converter_flags") or {}),
                                "float_nodes": tuple(options.get("float_nodes") or ())}
    if source.format == "saved_model":
        how = "TFLiteConverter.from_saved_model"
        tflite = convert_to_tflite(cache, source, **settings)
    elif source.format == "h5":
        how = "tf_keras.models.load_model -> TFLiteConverter.from_keras_model"
        tflite = convert_to_tflite(cache, source, from_keras=True, **settings)
    elif route == "keras_model":
        how = "keras.models.load_model -> TFLiteConverter.from_keras_model"
        tflite = convert_to_tflite(cache, source, from_keras=True, **settings)
    else:
        how = "model.export -> TFLiteConverter.from_saved_model"
        exported = saved_model_of(cache, source)
        tflite = convert_to_tflite(cache, ModelSource.from_path(exported, trusted=source.trusted), **settings)
    return tflite, {"route": how, "quantize": settings["quantize"], "select_tf_ops": settings["select_tf_ops"]}
