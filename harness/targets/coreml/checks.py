"""What ``pitfalls check`` tries on Core ML, and the coremltools texts it knows (see harness.check.steps).

The conversion as given; when a Keras 3 file does not convert, the path that works (a single
tf.function concrete function); the spec's inputs; prediction (macOS only: elsewhere an info
quoting coremltools); the weight sizes after linear int8 and 6-bit palettisation; localisation
not run, with the reason (off macOS: coremltools' own refusal to predict).
"""

from __future__ import annotations

import re
from dataclasses import replace

from harness.check.report import Finding, TargetReport
from harness.check.rules import Rule
from harness.check.steps import Context, TargetChecks, prepare_path, recorded
from harness.targets.base import Deployment, Prepared, Target
from harness.targets.coreml.remedies import REMEDIES

NAME = "coreml"

RULES: tuple[Rule, ...] = (
    Rule(NAME, r"Only a single concrete function is supported",
         "mobile/general-questions/entire-procedure-of-deployment/coreml",
         "coremltools does not read a Keras 3 model.export SavedModel: convert the tf_keras model (or its "
         "SavedModel) instead."),
    Rule(NAME, r"Input model path should be \.h5/\.hdf5 file or a directory",
         "mobile/model-conversion/saving-models/coreml",
         "coremltools reads no .keras file: give it a SavedModel directory, a tf_keras .h5, or (Keras 3) "
         "a single traced tf.function."),
    Rule(NAME, r"Conversion for TF op '[^']+' not implemented",
         "mobile/model-conversion/conversion-of-unsupported-models/coreml",
         "Rewrite the op with supported ones (or register a composite operator with coremltools)."),
    Rule(NAME, r"Model prediction is only supported on macOS",
         "mobile/general-questions/limitations-of-frameworks/coreml",
         "Core ML predictions run on Apple platforms only: check parity on a macOS runner.", severity="info"),
)


def concrete_function_route(target: Target, report: TargetReport, ctx: Context) -> Prepared | None:
    """A Keras 3 file that does not convert as given: the single-concrete-function route."""
    if not (ctx.model.flavour == "keras3" and ctx.model.source.format == "keras"):
        return None
    as_given = report.findings[-1] if report.findings else None
    prepared = prepare_path(target, report, ctx, f"{NAME} concrete-function", {"route": "concrete-function"})
    if prepared is not None:
        if as_given is not None and as_given.severity == "blocker":  # another path works: not a blocker
            report.findings[report.findings.index(as_given)] = replace(as_given, severity="warning")
        report.add(Finding("warning", "converted through a single tf.function concrete function: the model "
                           "as given (a Keras 3 model / its model.export SavedModel) does not convert",
                           "coremltools", "runtime",
                           taxonomy="mobile/general-questions/entire-procedure-of-deployment",
                           scenario="mobile/general-questions/entire-procedure-of-deployment/coreml",
                           fix="convert `[tf.function(model).get_concrete_function(spec)]` with "
                               "source='tensorflow', or the tf_keras model", step="prepare"))
    return prepared


def spec_figures(target: Target, report: TargetReport, deployed: Deployment, ctx: Context) -> None:
    sig = deployed.signature()
    report.figures[f"{NAME}.spec_inputs"] = float(len(sig.inputs))
    report.figures[f"{NAME}.flexible_shapes"] = 1.0 if any(None in t.shape for t in sig.inputs) else 0.0


def compression(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    """The weight bytes after coremltools' own compressions (info only: sizes, not verdicts)."""
    if prepared is None:
        return
    from harness.targets.coreml.convert import compress_weights
    from harness.targets.coreml.kit import weight_bytes

    for label, method, config in (("linear int8", "linear", {"mode": "linear_symmetric"}),
                                  ("palettize 6-bit", "palettize", {"mode": "uniform", "nbits": 6})):
        with recorded(report, f"compress {label}", severity="info"):
            package = compress_weights(ctx.cache, prepared.artifact, method=method, config=config)
            report.figures[f"{NAME} {label}.weights_bytes"] = float(weight_bytes(package))


#: coremltools' own refusal to predict off macOS (the text its MLModel.predict raises)
OFF_MACOS = "Model prediction is only supported on macOS"


def localisation(report: TargetReport) -> None:
    """Core ML localisation is not run, with the exact reason: off macOS, coremltools' own refusal
    to predict (a per-layer comparison needs Core ML's predictions, as coremltools'
    MLModelComparator does, on macOS only); on macOS, a Core ML path that diverged is named as not
    localised (no per-layer Core ML table yet)."""
    refused = next((f for f in report.findings if OFF_MACOS in f.text), None)
    if refused is not None:
        report.add(Finding("info", "localisation not run on Core ML: the per-layer comparison needs Core ML's "
                           f"predictions, and coremltools refused them here: {refused.text.strip()[:500]}",
                           refused.source, "runtime", step=f"localise {NAME}"))
        return
    diverged = [f for f in report.findings if f.step == "parity" and f.severity in ("blocker", "warning")
                and f.source.startswith(NAME)]
    if diverged:
        report.add(Finding("info", f"localisation not run on Core ML: {diverged[0].source} diverges, and pitfalls "
                           "has no per-layer Core ML comparison yet (LiteRT's and tf.js' tables localise the "
                           "same model)", "pitfalls", "static", step=f"localise {NAME}"))


def compression_and_localisation(target: Target, report: TargetReport, prepared: Prepared | None,
                                 ctx: Context) -> None:
    compression(target, report, prepared, ctx)
    localisation(report)


def unsupported_ops(text: str) -> list[str]:
    """The TF op types of coremltools' "Conversion for TF op 'X' not implemented"."""
    return list(dict.fromkeys(re.findall(r"Conversion for TF op '([^']+)' not implemented", text)))


CHECKS = TargetChecks(rules=RULES, fallback=concrete_function_route, inspect=spec_figures,
                      paths=compression_and_localisation,
                      unsupported_ops=unsupported_ops, remedies=REMEDIES)
