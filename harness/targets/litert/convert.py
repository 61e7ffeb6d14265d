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
from harness.targets.litert.calibrate import configure_converter, one_row_at_a_time
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
                      float_nodes: Sequence[str] = (), isolated: bool = False) -> Path:
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

    ``isolated``: an int8 calibration of a SavedModel on ``representative`` runs in a child process
    (:mod:`harness.targets.litert.calibrate`): TensorFlow's calibrator crashes the process on some
    models (a stateful LSTM: SIGSEGV in ``calibrator._feed_tensors``), and the crash becomes a
    :class:`~harness.errors.RuntimeFailure` instead of ending the caller.  The same artifact either way.
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
        if (isolated and quantize == "int8" and representative is not None and not from_keras and configure is None
                and not float_nodes):
            from harness.targets.litert.calibrate import convert_in_child

            convert_in_child(model.path, representative, out / "model.tflite", select_tf_ops=select_tf_ops,
                             extra=dict(extra or {}))
            return
        import tensorflow as tf

        if from_keras:
            converter = tf.lite.TFLiteConverter.from_keras_model(load_keras_model(model))
        else:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(model.path))
        if float_nodes:  # selective int8: the denylisted ops stay float (float builtins, float I/O)
            _selective_int8(converter, tf, representative, float_nodes, select_tf_ops, extra, out / "model.tflite")
            return
        configure_converter(converter, tf, quantize, representative, select_tf_ops, extra)
        if configure is not None:
            configure(converter, tf)
        (out / "model.tflite").write_bytes(converter.convert())

    return cache.get_or_build("tflite", key, build) / "model.tflite"


def _selective_int8(converter: Any, tf: Any, representative: "np.ndarray | None", float_nodes: Sequence[str],
                    select_tf_ops: bool, extra: Mapping[str, Any] | None, out: Path) -> None:
    """Write ``out``: int8 calibrated on ``representative`` with the ops of ``float_nodes`` kept in float
    (TF Lite's ``QuantizationDebugger`` denylist; in this process: the debugger needs the converter)."""
    assert representative is not None  # convert_to_tflite checked it
    # the optimisation, Select TF ops and flags as for any path, but not int8's integer-only ops and I/O
    configure_converter(converter, tf, "dynamic", None, select_tf_ops, extra)
    dataset = one_row_at_a_time(representative)
    converter.representative_dataset = dataset
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(float_nodes))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=converter, debug_dataset=dataset,
                                                          debug_options=options)
    out.write_bytes(debugger.get_nondebug_quantized_model())


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
        tflite = convert_to_tflite(cache, source, isolated=True, **settings)
    elif source.format == "h5":
        how = "tf_keras.models.load_model -> TFLiteConverter.from_keras_model"
        tflite = convert_to_tflite(cache, source, from_keras=True, **settings)
    elif route == "keras_model":
        how = "keras.models.load_model -> TFLiteConverter.from_keras_model"
        tflite = convert_to_tflite(cache, source, from_keras=True, **settings)
    else:
        how = "model.export -> TFLiteConverter.from_saved_model"
        exported = saved_model_of(cache, source)
        tflite = convert_to_tflite(cache, ModelSource.from_path(exported, trusted=source.trusted), isolated=True,
                                   **settings)
    return tflite, {"route": how, "quantize": settings["quantize"], "select_tf_ops": settings["select_tf_ops"]}
