"""Core ML conversion and weight compression with coremltools, cached (runs everywhere).

coremltools' errors propagate unchanged, with their own text: a Keras 3 ``.keras`` file is
refused ("Input model path should be .h5/.hdf5 file or a directory"), a Keras 3 ``model.export``
SavedModel fails with "Only a single concrete function is supported", an op without a
translation with "Conversion for TF op ... not implemented".  coremltools is imported inside the
builders only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import HarnessError, UsageError
from harness.export import saved_model_of
from harness.trust import admit

if TYPE_CHECKING:
    from harness.targets.base import ModelSource


def convert_to_coreml(cache: ArtifactCache, source: Path, *, options: Mapping[str, Any] | None = None,
                      label: str = "", inputs: Callable[[Any], list[Any]] | None = None) -> Path:
    """Convert a SavedModel directory or a Keras ``.h5`` file with ``coremltools.convert``.

    ``options`` are passed to ``ct.convert`` (plain values only, e.g. ``convert_to``,
    ``minimum_deployment_target`` and ``compute_precision`` given by name).  ``inputs``, when given, is called with the
    ``coremltools`` module and returns ``ct.convert``'s ``inputs`` list (``ct.TensorType`` with a
    ``ct.RangeDim``, ``ct.ImageType(scale=...)`` ...); ``label`` must then name that choice, since
    it is what distinguishes the cached artifacts.  coremltools' errors propagate with their own
    text.
    """
    if inputs is not None and not label:
        raise HarnessError("convert_to_coreml: give a label that names the `inputs` choice (it keys the cache)")
    opts = dict(options or {})
    key = {"source": cache.source_key(source), "options": opts, "label": label, "recorded": WARNINGS_FILE,
           "versions": library_versions("coremltools", "tensorflow", "tf-keras")}

    def build(out: Path) -> None:
        import warnings

        import coremltools as ct

        kwargs = dict(opts)
        if inputs is not None:
            kwargs["inputs"] = inputs(ct)
        if isinstance(kwargs.get("minimum_deployment_target"), str):
            kwargs["minimum_deployment_target"] = getattr(ct.target, kwargs["minimum_deployment_target"])
        if isinstance(kwargs.get("compute_precision"), str):  # "float32" / "float16" by name
            kwargs["compute_precision"] = getattr(ct.precision, kwargs["compute_precision"].upper())
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            model = ct.convert(str(source), source="tensorflow", **kwargs)
        for w in said:  # shown as coremltools warned them (pytest's and the user's filters apply)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        suffix = ".mlmodel" if kwargs.get("convert_to") == "neuralnetwork" else ".mlpackage"
        model.save(str(out / f"model{suffix}"))
        texts = [str(w.message) for w in said if issubclass(w.category, UserWarning) and "coremltools" in w.filename]
        (out / WARNINGS_FILE).write_text(json.dumps(texts))

    built = cache.get_or_build("coreml", key, build)
    return next(p for p in built.iterdir() if p.name.startswith("model."))


#: the UserWarnings coremltools' converter gave, kept beside the converted model (a cached
#: conversion warns no more; its warnings still belong to the model)
WARNINGS_FILE = "conversion-warnings.json"
#: coremltools' warning when an input has unknown dimensions and it bounds them at 2 by itself
FLEXIBLE_DEFAULTS = r"Some dimensions in the input shape are unknown, hence they are set to flexible ranges"


def conversion_warnings(package: Path) -> list[str]:
    """The UserWarnings coremltools gave while converting ``package`` (its own text), ``[]`` if none
    were recorded."""
    recorded = package.parent / WARNINGS_FILE
    if not recorded.is_file():
        return []
    texts = json.loads(recorded.read_text())
    return [str(t) for t in texts] if isinstance(texts, list) else []


def compress_weights(cache: ArtifactCache, package: Path, *, method: str, config: Mapping[str, Any]) -> Path:
    """Compress an ML program's weights with ``ct.optimize.coreml`` and save it (cached).

    ``method`` is ``"linear"`` (``linear_quantize_weights`` with ``OpLinearQuantizerConfig``) or
    ``"palettize"`` (``palettize_weights`` with ``OpPalettizerConfig``); ``config`` holds that
    config's keyword arguments (e.g. ``mode``, ``nbits``, ``weight_threshold``).
    """
    key = {"source": cache.source_key(package), "method": method, "config": dict(config),
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


#: What ``CoremlTarget.prepare`` converts to unless its options say otherwise.
DEFAULT_CONVERSION: dict[str, Any] = {"convert_to": "mlprogram", "minimum_deployment_target": "iOS15"}
#: ``as-given``: the file as the user has it; ``concrete-function``: a Keras 3 model traced into a single
#: ``tf.function`` and saved with ``tf.saved_model.save`` — the path coremltools 9 reads where a Keras 3
#: ``model.export`` SavedModel ("Only a single concrete function is supported") and a ``.keras`` path fail.
ROUTES: tuple[str, ...] = ("as-given", "concrete-function")


def coreml_from_source(cache: ArtifactCache, source: "ModelSource", options: Mapping[str, Any], *,
                       inputs: Callable[[Any], list[Any]] | None = None,
                       label: str = "") -> tuple[Path, dict[str, Any]]:
    """Convert a user's model as given (an ML program for iOS 15+ unless ``options`` say
    otherwise; ``options`` are ``ct.convert`` keywords with plain values).

    A SavedModel directory and a ``.keras`` file go to ``ct.convert`` unchanged, so that
    coremltools' own refusal surfaces; an ``.h5`` file goes through its tf_keras SavedModel
    (coremltools 9 loads an ``.h5`` path with ``tf.keras``, which is Keras 3 under TF 2.16+ and
    cannot hand it a tf_keras model; the tf_keras SavedModel of the same model converts).  Every
    route passes the trust gate (:func:`harness.trust.admit`).  ``inputs`` and ``label`` are
    :func:`convert_to_coreml`'s (e.g. a bounded ``ct.RangeDim`` for a flexible input).
    """
    admit(source)
    if "inputs" in options:
        raise UsageError("prepare option `inputs` is not supported: call convert_to_coreml(..., inputs=, label=)")
    route = str(options.get("route", "as-given"))
    if route not in ROUTES:
        raise UsageError(f"unknown Core ML route {route!r}: use one of {', '.join(ROUTES)}")
    settings = {**DEFAULT_CONVERSION, **{k: v for k, v in options.items() if k != "route"}}
    if route == "concrete-function":
        if source.format != "keras":
            raise UsageError("route concrete-function is for a Keras 3 .keras file")
        package = convert_to_coreml(cache, saved_model_of(cache, source, recipe="concrete-function"), options=settings,
                                     inputs=inputs, label=label)
        return package, {"route": "Keras 3 model -> one tf.function concrete function (tf.saved_model.save) "
                                  "-> ct.convert", **settings}
    if source.format == "h5":
        package = convert_to_coreml(cache, saved_model_of(cache, source), options=settings, inputs=inputs, label=label)
        how = "tf_keras SavedModel of the .h5 -> ct.convert"
    else:
        package = convert_to_coreml(cache, source.path, options=settings, inputs=inputs, label=label)
        how = "ct.convert(source='tensorflow')"
    return package, {"route": how, **settings}
