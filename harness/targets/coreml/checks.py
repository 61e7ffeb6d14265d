"""What ``pitfalls check`` tries on Core ML, and the coremltools texts it knows (see harness.check.steps).

The conversion as given; when a Keras 3 file does not convert, the path that works (a single
tf.function concrete function); the spec's inputs; prediction (macOS only: elsewhere an info
quoting coremltools); coremltools' warning that it bounded an unknown dimension at 2 (the
bounded-range remedy is tried); the weight sizes after linear int8 and 6-bit palettisation; the
per-layer localisation of a diverging path (:mod:`harness.targets.coreml.localise`: prediction
on macOS; elsewhere not run, quoting coremltools' own refusal).
"""

from __future__ import annotations

import re
from dataclasses import replace

from harness.check.report import Finding, TargetReport
from harness.check.rules import Rule
from harness.check.steps import Context, TargetChecks, prepare_path, recorded
from harness.targets.base import Deployment, Prepared, Target
from harness.targets.coreml.convert import FLEXIBLE_DEFAULTS
from harness.targets.coreml.kit import OFF_MACOS
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
    Rule(NAME, FLEXIBLE_DEFAULTS,
         "mobile/model-conversion/specification-of-model-information/coreml",
         "Declare the range the app needs: ct.TensorType(shape=(ct.RangeDim(1, N), ...)) (see the remedy tried).",
         severity="warning"),
    Rule(NAME, OFF_MACOS,
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




def flexible_inputs(report: TargetReport, prepared: Prepared | None) -> None:
    """coremltools' own warning that it gave an unknown dimension the range 1..2, as a finding naming
    the inputs the spec records with such a range (the conversion's warnings are kept with it)."""
    if prepared is None:
        return
    from harness.check.rules import rule_for
    from harness.targets.coreml.convert import conversion_warnings
    from harness.targets.coreml.kit import spec_summary

    for text in conversion_warnings(prepared.artifact):
        if not re.search(FLEXIBLE_DEFAULTS, text):
            continue
        flexible = [f"{f['name']} {list(f['shape'])} ranges {f['ranges']}" for f in spec_summary(prepared.artifact)["inputs"]
                    if any(low != high for low, high in f.get("ranges") or [])]
        rule = rule_for(NAME, text)
        report.add(Finding("warning", text, "coremltools", "runtime", taxonomy=rule.taxonomy if rule else None,
                           scenario=rule.scenario if rule else None, fix=rule.fix if rule else "", step="prepare",
                           where=("input " + "; input ".join(flexible)) if flexible else "", quoted=True))


def localisation(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    """Per-layer Core ML localisation of a Core ML path that diverged (:mod:`harness.targets.coreml.localise`,
    macOS).  Where coremltools refused to predict (off macOS) nothing can diverge: not run, quoting that
    refusal, and the per-layer model is not converted for nothing."""
    from harness.targets.coreml.localise import NOT_RUN, localise_coreml

    refused = next((f for f in report.findings if OFF_MACOS in f.text and not f.step.startswith("localise")), None)
    if refused is not None:
        said = refused.text[refused.text.index(OFF_MACOS):].strip()  # coremltools' own words, from its predict
        report.add(Finding("info", f"{NOT_RUN}, and coremltools refused them here: {said[:500]}", "coremltools",
                           "runtime", step=f"localise {NAME}"))
        return
    localise_coreml(target, report, prepared, ctx)


def coreml_paths(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    flexible_inputs(report, prepared)
    compression(target, report, prepared, ctx)
    localisation(target, report, prepared, ctx)


def unsupported_ops(text: str) -> list[str]:
    """The TF op types of coremltools' "Conversion for TF op 'X' not implemented"."""
    return list(dict.fromkeys(re.findall(r"Conversion for TF op '([^']+)' not implemented", text)))


CHECKS = TargetChecks(rules=RULES, fallback=concrete_function_route, inspect=spec_figures,
                      paths=coreml_paths,
                      unsupported_ops=unsupported_ops, remedies=REMEDIES)
