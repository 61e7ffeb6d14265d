"""The pre-flight itself: the user's model through every target's deploy path, for real.

For each target: prepare (convert/export), load, read the deployed signature, predict on the
sample inputs, compare with the Keras/TensorFlow reference; every error a runtime raises becomes a
finding with its own text (matched to a catalog lesson where a rule knows it), and the check goes
on to the next step or path instead of stopping.  Target-specific paths follow (LiteRT: Select TF
ops, quantisation, device profiles, arm64; Core ML: the conversion path that works, weight
compression; tf.js: backends, layers format, first vs warm predict; TF Serving: signature checks).
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from harness.check.model import (PROBES, LoadedModel, hash_inputs, inbound_layers, is_string, layer_outputs,
                                 load_model, read_inputs, reference_outputs, synthesise_inputs, synthesise_probes)
from harness.check.report import CheckReport, Finding, Severity, TargetReport
from harness.check.rules import rule_for
from harness.targets.litert.kit import dequantize, quantize
from harness.targets.tfjs.backends import check_backends
from harness.compare import Parity, is_classifier_output, non_finite, pair_outputs, parity, tolerance_for
from harness.errors import HarnessError, NotApplicable, RuntimeFailure, UsageError
from harness.targets import TARGET_NAMES, target_class
from harness.targets.base import Deployment, ModelSource, Prepared, Signature, Target
from harness.trust import Concern, ModelRefused, model_concerns

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache

Progress = Callable[[str], None]
DEFAULT_PROFILES: tuple[str, ...] = ("host", "low-end", "arm64")  # arm64 when it can run here


def _stderr(message: str) -> None:
    print(f"check: {message}", file=sys.stderr, flush=True)


@dataclass
class Context:
    model: LoadedModel
    inputs: "dict[str, np.ndarray]"
    reference: "list[np.ndarray] | None"  # None when TensorFlow could not run the model itself
    cache: "ArtifactCache"
    profiles: tuple[str, ...]
    say: Progress
    probe: str = "synthesised"  # which inputs these are: "synthesised", "--inputs FILE"; findings name it
    probes: "tuple[Probe, ...]" = ()  # further probes every path is also fed (wide, edge, calibration)
    calibration: "dict[str, np.ndarray] | None" = None  # --calibration: the int8 representative set


@dataclass(frozen=True)
class Probe:
    """A further set of inputs every path is fed besides the sample, with its own reference."""

    name: str  # "wide", "edge", "--calibration FILE"
    inputs: "dict[str, np.ndarray]"
    reference: "list[np.ndarray] | None"

    def rows(self, model: LoadedModel, rows: int) -> "Probe":
        inputs = {k: v[:rows] for k, v in self.inputs.items()}
        return Probe(f"{self.name}, first {rows} row{'s' if rows > 1 else ''}", inputs, _reference_or_none(model, inputs)[0])


def _text_of(exc: BaseException) -> tuple[str, str, bool]:
    """(text, source, from the runtime) of an exception met on a deploy path."""
    from harness.scenario import raised_by_project

    if isinstance(exc, RuntimeFailure):
        return exc.message, f"{exc.runtime} ({exc.source})" if exc.source else exc.runtime, True
    if not raised_by_project(exc):
        module = type(exc).__module__.split(".")[0]
        return f"{type(exc).__name__}: {exc}", f"raised in {module}", True
    return f"{type(exc).__name__}: {exc}", "pitfalls (a harness error, not a verdict on the model)", False


#: the fix of a finding that is pitfalls' own error: never a verdict on the model
HARNESS_LIMITATION = ("a limitation of pitfalls check, not a verdict on the model: this path was not checked; "
                      "please report it with the model's shape (inputs, outputs, layers)")


def finding_from(target: str, exc: BaseException, step: str, *, severity: Severity = "blocker",
                 fix: str = "") -> Finding:
    text, source, runtime = _text_of(exc)
    if not runtime:  # our own error: says what was not checked, never blocks the model
        return Finding(severity="info" if severity == "info" else "warning", text=text.strip()[:4000],
                       source=source, verified="static", fix=HARNESS_LIMITATION, step=step)
    rule = rule_for(target, text)
    return Finding(severity=rule.severity if rule and severity == "blocker" else severity,
                   text=text.strip()[:4000], source=source, verified="runtime" if runtime else "static",
                   taxonomy=rule.taxonomy if rule else None, scenario=rule.scenario if rule else None,
                   fix=(rule.fix if rule else fix), step=step)


@contextmanager
def recorded(report: TargetReport, step: str, *, severity: Severity = "blocker") -> Iterator[list[BaseException]]:
    """Run a step; an exception becomes a finding (NotApplicable an info) and the check goes on."""
    caught: list[BaseException] = []
    try:
        yield caught
    except NotApplicable as exc:
        report.add(finding_from(report.target, exc, step, severity="info"))
        caught.append(exc)
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        if isinstance(exc, UsageError):
            raise
        report.add(finding_from(report.target, exc, step, severity=severity))
        caught.append(exc)


def _feed(deployed: Deployment, ctx: Context, inputs: "dict[str, np.ndarray] | None" = None) -> "dict[str, np.ndarray]":
    """The sample inputs (or ``inputs``) keyed by the deployed model's input names (by name, else by position)."""
    names = deployed.signature().input_names()
    mine = [i.name for i in ctx.model.inputs]
    given = ctx.inputs if inputs is None else inputs
    if set(names) == set(mine):
        return {n: given[n] for n in names}
    if len(names) == len(mine):
        return {deployed_name: given[own] for deployed_name, own in zip(names, mine)}
    added = [n for n in names if n not in mine]
    raise HarnessError(f"the converted model takes inputs {names}, the model has {mine}: pitfalls check cannot "
                       f"feed {added} (the converter made them inputs; a lookup table's handle is one), so this "
                       "path was not run")


def _outputs_in_order(got: "Mapping[str, np.ndarray]", deployed: Deployment, ctx: Context) -> "list[np.ndarray]":
    """The target's outputs in the order of the model's (``ctx.model.outputs``): paired by name,
    then by shape, then in the deployed signature's order (:func:`harness.compare.pair_outputs`)."""
    order = [n for n in deployed.signature().output_names() if n in got] + [n for n in got
                                                                          if n not in deployed.signature().output_names()]
    ordered = {n: got[n] for n in order}
    shapes = [tuple(r.shape) for r in ctx.reference] if ctx.reference is not None else []
    paired = pair_outputs(ordered, ctx.model.outputs, shapes) if len(shapes) == len(ctx.model.outputs) else None
    return [ordered[n] for n in paired] if paired is not None else list(ordered.values())


def compare_outputs(report: TargetReport, label: str, outputs: "list[np.ndarray]", ctx: Context,
                    path: str = "float32", severity: Severity = "blocker") -> Parity | None:
    """Parity of ``outputs`` with the reference, output by output (by name, in the model's order),
    each judged against the path's tolerance scaled by that output's own magnitude; a divergence,
    an overflow to inf/NaN or a classifier whose top-1 label moves is a finding naming the output
    and the probe.  ``report.parity[label]`` is the worst output's figures (``outputs``: each one's)."""
    import numpy as np

    if ctx.reference is None:
        report.add(Finding("info", "outputs not compared: TensorFlow could not run the model itself to give a "
                           "reference (see the model's findings)", label, "static", step="parity"))
        return None
    if len(outputs) != len(ctx.reference):
        report.add(Finding("blocker", f"{len(outputs)} outputs, the reference has {len(ctx.reference)}",
                           label, "runtime", step="parity"))
        return None
    tolerance = tolerance_for(path)
    probe = ctx.probe
    worst: Parity | None = None
    each: dict[str, Any] = {}
    for name, got, want in zip(ctx.model.outputs, outputs, ctx.reference):
        p = parity(got, want, on_shape_mismatch="inf")
        each[name] = p.to_json()
        if worst is None or _badness(p) > _badness(worst):
            worst = p
        which = f"output {name!r}" if len(outputs) > 1 else "outputs"
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if not p.shape_match:
            report.add(Finding("blocker", f"{which}: shape {list(p.shape)} differs from the reference's "
                               f"{list(want.shape)} (probe {probe})", label, "runtime", step="parity"))
            continue
        overflow = non_finite(got, want)
        if overflow:
            report.add(Finding(severity if path == "float32" else "warning",
                               f"{which} overflow: {overflow} of {got.size} values are inf or NaN where the reference "
                               f"is finite (largest reference magnitude {scale:.3g}; probe {probe})", label, "runtime",
                               step="parity", fix="a float16 or int8 path cannot hold these magnitudes: keep float32 "
                                                  "for this layer or scale the activations down"))
        elif not p.within(tolerance, scale):
            agreement = (f", top-1 agreement {p.label_agreement:.0%}"
                         if p.label_agreement is not None and is_classifier_output(want) else "")
            report.add(Finding(severity if path == "float32" else "warning",
                               f"{which} diverge from the reference: max |diff| {p.max_abs_diff:.3g} "
                               f"(tolerance {tolerance.atol:g} + {tolerance.rtol:g}*{scale:.3g} for {path}){agreement}; "
                               f"probe {probe}", label, "runtime", step="parity",
                               fix="see the divergence table for the first layer that fails"))
        elif is_classifier_output(want) and p.label_agreement is not None and p.label_agreement < 1.0:
            report.add(Finding("warning", f"{which}: the top-1 class differs on {1 - p.label_agreement:.0%} of the rows "
                               f"though values are within tolerance (max |diff| {p.max_abs_diff:.3g}; probe {probe})",
                               label, "runtime", step="parity", fix="compare the decisions your app makes, not only "
                               "the scores: near-ties flip between runtimes"))
    assert worst is not None  # at least one output: the reference always has one
    report.parity[label] = worst.to_json()
    if len(each) > 1:
        report.parity[label]["outputs"] = each
    return worst


def _badness(p: Parity) -> tuple[bool, bool, float]:
    """Order of outputs from the least to the most wrong: shape, then NaN, then max |diff|."""
    nan = math.isnan(p.max_abs_diff)
    return (not p.shape_match, nan, 0.0 if nan else p.max_abs_diff)


def _deploy_and_compare(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, label: str,
                        *, path: str = "float32", load_options: Mapping[str, Any] | None = None,
                        timings: bool = False, severity: Severity = "blocker") -> "list[np.ndarray] | None":
    """Load, predict, compare; ``severity`` is that of a failure on this path (an alternative path
    that fails while the default one works is a warning, not a blocker)."""
    outputs: list[np.ndarray] | None = None
    with recorded(report, f"load {label}", severity=severity):
        with target.load(prepared, options=load_options) as deployed:
            outputs = _predict_and_compare(target, report, deployed, ctx, label, path=path, timings=timings,
                                           severity=severity)
    return outputs


def _predict_and_compare(target: Target, report: TargetReport, deployed: Deployment, ctx: Context, label: str,
                         *, path: str = "float32", timings: bool = False,
                         severity: Severity = "blocker") -> "list[np.ndarray] | None":
    """Predict the sample on a loaded model and compare it with the reference (see _deploy_and_compare);
    then each further probe (``ctx.probes``), whose divergences are warnings naming the probe."""
    outputs: list[np.ndarray] | None = None
    report.figures.setdefault(f"{label}.inputs", float(len(deployed.signature().inputs)))
    integer_io = _integer_io(target, deployed)
    feed = _quantised_feed(_feed(deployed, ctx), integer_io)
    with recorded(report, f"predict {label}", severity=severity):
        started = time.perf_counter()
        got = deployed.predict(feed)
        first = time.perf_counter() - started
        outputs = _outputs_in_order(_dequantised(got, integer_io), deployed, ctx)
        if timings:
            started = time.perf_counter()
            deployed.predict(feed)
            report.figures[f"{label}.first_predict_s"] = round(first, 4)
            report.figures[f"{label}.warm_predict_s"] = round(time.perf_counter() - started, 4)
    if outputs is not None:
        p = compare_outputs(report, label, outputs, ctx, path, severity=severity)
        if label == report.target or report.max_abs_diff is None:
            report.max_abs_diff = p.max_abs_diff if p is not None and p.shape_match else report.max_abs_diff
    for probe in ctx.probes if outputs is not None else ():  # a path that cannot predict the sample: said once
        probed: list[np.ndarray] | None = None
        with recorded(report, f"predict {label} [{probe.name}]", severity="warning"):
            got = deployed.predict(_quantised_feed(_feed(deployed, ctx, probe.inputs), integer_io))
            probed = _outputs_in_order(_dequantised(got, integer_io), deployed, ctx)
        if probed is not None:
            compare_outputs(report, f"{label} [{probe.name}]", probed,
                            replace(ctx, inputs=probe.inputs, reference=probe.reference, probe=probe.name, probes=()),
                            path, severity="warning")
    return outputs


def _quantised_feed(feed: "dict[str, np.ndarray]", integer_io: dict[str, dict[str, Any]] | None) -> "dict[str, np.ndarray]":
    """As an app does with a full-integer model: the inputs LiteRT quantised are quantised (ids,
    int64, stay as they are)."""
    if integer_io is None:
        return feed
    quantised = integer_io["inputs"]
    return {name: quantize(value, quantised[name]) if name in quantised else value for name, value in feed.items()}


def _dequantised(got: "dict[str, np.ndarray]", integer_io: dict[str, dict[str, Any]] | None) -> "dict[str, np.ndarray]":
    if integer_io is None:
        return got
    return {name: (dequantize(value, integer_io["outputs"][name]) if name in integer_io["outputs"] else value)
            for name, value in got.items()}


def _integer_io(target: Target, deployed: Deployment) -> dict[str, dict[str, Any]] | None:
    """LiteRT input/output details by name when the model takes or gives integers (full-int8)."""
    if target.name != "litert":
        return None
    sig = deployed.signature()
    if not any(t.dtype in ("int8", "uint8") for t in (*sig.inputs, *sig.outputs)):
        return None
    from harness.targets.litert import worker

    details = getattr(target, "call")(worker.inspect, str(deployed.prepared.artifact))
    return {side: {d["name"]: d for d in details[side] if d["dtype"] in ("int8", "uint8", "int16")}
            for side in ("inputs", "outputs")}


# ------------------------------------------------------------------------------------ per target

def _prepare(target: Target, report: TargetReport, ctx: Context, label: str,
             options: Mapping[str, Any] | None = None, *, severity: Severity = "blocker") -> Prepared | None:
    with recorded(report, f"prepare {label}", severity=severity):
        prepared = target.prepare(ctx.model.source, ctx.cache, options=options)
        for name, value in prepared.sizes.items():
            report.figures[f"{label}.{name}_bytes" if not name.endswith("bytes") else f"{label}.{name}"] = float(value)
        return prepared
    return None


def check_tfserving(target: Target, report: TargetReport, ctx: Context) -> None:
    if ctx.model.flavour == "keras3" and ctx.model.source.format == "keras":
        report.add(Finding("info", "a Keras 3 .keras file is not a SavedModel: TF Serving needs model.export(dir) "
                           "(pitfalls exported it for you)", "Keras 3 file format", "static",
                           taxonomy="server/model-export/procedure", scenario="server/model-export/procedure",
                           fix="export with model.export('models/<name>/1')", step="prepare"))
    prepared = _prepare(target, report, ctx, "tfserving")
    if prepared is None:
        return
    started = time.perf_counter()
    with recorded(report, "load tfserving"):
        with target.load(prepared) as deployed:  # one server for the signature checks, REST and gRPC
            report.figures["tfserving.load_s"] = round(time.perf_counter() - started, 3)
            _signature_findings(report, deployed.signature())
            _predict_and_compare(target, report, deployed, ctx, "tfserving", timings=True)
            _grpc_parity(report, deployed, ctx)


def _signature_findings(report: TargetReport, sig: Signature) -> None:
    """What the served metadata says clients will get wrong: non-float inputs, a fixed batch size."""
    for spec in sig.inputs:
        if spec.dtype != "float32" and not is_string(spec.dtype):
            report.add(Finding("warning", f"input {spec.name} is {spec.dtype}: JSON clients send floats "
                               "that TF Serving must convert, gRPC clients must build this dtype",
                               "served metadata", "static",
                               taxonomy="server/data-processing/setting-format-datatype-of-input-data",
                               scenario="server/data-processing/setting-format-datatype-of-input-data/grpc-float64-tensor",
                               fix="export a float32 signature, or cast on the client", step="signature"))
        if spec.shape and spec.shape[0] is not None:
            report.add(Finding("warning", f"input {spec.name} has a fixed batch dimension {spec.shape[0]}: "
                               "requests of another batch size fail", "served metadata", "static",
                               taxonomy="server/data-processing/setting-size-shape-of-input-data",
                               scenario="server/data-processing/setting-size-shape-of-input-data",
                               fix="export with a None batch dimension", step="signature"))


def _grpc_parity(report: TargetReport, deployed: Deployment, ctx: Context) -> None:
    """The same request over gRPC, built from the served metadata (dtypes as the signature says)."""
    import numpy as np

    from harness.targets.tfserving.client import grpc_predict

    outputs: list[np.ndarray] | None = None
    with recorded(report, "predict tfserving grpc"):
        sig = deployed.signature()
        feed = {name: np.asarray(value, dtype=spec.dtype if not is_string(spec.dtype) else None) for (name, value), spec
                in zip(_feed(deployed, ctx).items(), sig.inputs)}
        reply = grpc_predict(getattr(deployed, "server"), feed)
        outputs = _outputs_in_order(dict(reply.outputs), deployed, ctx)
    if outputs is not None:
        compare_outputs(report, "tfserving grpc", outputs, ctx)


def _representative(ctx: Context) -> "np.ndarray | None":
    """The int8 representative set: the --calibration set, else the sample (one float input only)."""
    if len(ctx.model.inputs) != 1:
        return None
    return (ctx.calibration or ctx.inputs)[ctx.model.inputs[0].name]


def check_litert(target: Target, report: TargetReport, ctx: Context) -> None:
    prepared = _prepare(target, report, ctx, "litert")
    if prepared is None:
        # Builtins refused some ops: convert with Select TF ops and see whether this LiteRT runs it.
        flex = _prepare(target, report, ctx, "litert select_tf_ops", {"select_tf_ops": True})
        if flex is not None:
            _deploy_and_compare(target, report, flex, ctx, "litert select_tf_ops")
        return
    outputs = _deploy_and_compare(target, report, prepared, ctx, "litert")
    if outputs is not None and min(v.shape[0] for v in ctx.inputs.values()) > 1:
        # the batch an app on a phone runs: a model converted with a dynamic batch may fail at 1 alone
        _deploy_and_compare(target, report, prepared, _first_rows(replace(ctx, probes=())), "litert batch 1",
                            severity="warning")
    if outputs is not None and _diverged(report, "litert"):
        _localise_litert(target, report, prepared, ctx, "litert float32", "float32")
    _latency(target, report, prepared, ctx, "host")
    for profile in ctx.profiles:
        if profile == "host":
            continue
        if profile == "arm64":  # the aarch64 LiteRT under qemu: parity only, at batch 1, never timings
            _deploy_and_compare(target, report, prepared, _first_rows(replace(ctx, probes=())), "litert@arm64",
                                load_options={"profile": "arm64"})
            continue
        _deploy_and_compare(target, report, prepared, ctx, f"litert@{profile}", load_options={"profile": profile})
        _latency(target, report, prepared, ctx, profile)
    rep = _representative(ctx)
    for mode, path in (("dynamic", "int8"), ("int8", "int8")):
        options: dict[str, Any] = {"quantize": mode}
        if mode == "int8":
            if rep is None:
                report.add(Finding("info", "full-integer quantisation skipped: it needs one input to draw a "
                                   "representative set from", "pitfalls check", "static", step="quantize"))
                continue
            options["representative"] = rep
        quantised = _prepare(target, report, ctx, f"litert {mode}", options, severity="warning")
        if quantised is None:
            continue
        got = _deploy_and_compare(target, report, quantised, ctx, f"litert {mode}", path=path)
        label = f"litert {mode}"
        if got is not None and _diverged(report, label):
            _localise_litert(target, report, quantised, ctx, label, path)


def _first_rows(ctx: Context, rows: int = 1) -> Context:
    """The context of a path fed the first ``rows`` rows only: its reference is the model run on
    exactly those rows (not the whole batch's reference sliced: a model whose output depends on
    the batch would show a divergence that is not there)."""
    inputs = {k: v[:rows] for k, v in ctx.inputs.items()}
    return replace(ctx, inputs=inputs, reference=_reference_or_none(ctx.model, inputs)[0],
                   probe=f"{ctx.probe}, first {rows} row{'s' if rows > 1 else ''}",
                   probes=tuple(probe.rows(ctx.model, rows) for probe in ctx.probes))


def _reference_or_none(model: LoadedModel, inputs: "dict[str, np.ndarray]") -> "tuple[list[np.ndarray] | None, Finding | None]":
    """The reference on ``inputs``, or None and the finding that says why TensorFlow could not give it."""
    try:
        return reference_outputs(model, inputs), None
    except Exception as exc:  # noqa: BLE001 - the model's own run failing is a finding, not a crash
        text, source, runtime = _text_of(exc)
        return None, Finding("warning", f"the reference could not be computed: {text.strip()[:3000]}", source,
                             "runtime" if runtime else "static", step="reference",
                             fix="outputs are not compared on any path; check that the model runs with "
                                 "TensorFlow/Keras in a fresh process (saved functions, custom objects)")


def _latency(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, profile: str) -> None:
    """Median invoke time of one row on ``profile`` (LiteRT's own timing loop in the worker)."""
    from harness.targets.litert.profiles import profile_named

    with recorded(report, f"latency litert@{profile}", severity="info"):
        feed = [ctx.inputs[i.name][:1] for i in ctx.model.inputs]
        timing = getattr(target, "time_invoke")(prepared.artifact, feed, profile=profile_named(profile), runs=10)
        for key in ("median_ms", "min_ms", "load_ms"):
            if key in timing:
                report.figures[f"litert@{profile}.{key}"] = float(timing[key])


def _diverged(report: TargetReport, label: str) -> bool:
    """Whether the path ``label``'s outputs left their tolerance (compare_outputs said so)."""
    return any(f.step == "parity" and f.source == label for f in report.findings)


def _localise_litert(target: Target, report: TargetReport, prepared: Prepared, ctx: Context,
                     label: str, path: str) -> None:
    from harness.check.localise import litert_tensors, localise, map_to_layers

    keras_model = ctx.model.keras_model
    if keras_model is None:
        report.add(Finding("info", "divergence not localised: a SavedModel has no Keras layers to compare with",
                           "pitfalls check", "static", step="localise"))
        return
    with recorded(report, f"localise {label}", severity="warning"):
        reference = layer_outputs(ctx.model, ctx.inputs)
        feed = [ctx.inputs[i.name] for i in ctx.model.inputs]
        call = getattr(target, "call")
        tensors = call(litert_tensors, str(prepared.artifact), feed)
        shapes = {name: tuple(value.shape) for name, value in reference.items()}
        output_layers = [t._keras_history[0].name for t in keras_model.outputs]  # noqa: SLF001
        mapped = map_to_layers(tensors["ops"], shapes, keras_model.name, output_layers, tensors["outputs"])
        order = [layer.name for layer in keras_model.layers]
        divergence = localise(label, order, reference, mapped, inbound_layers(ctx.model), tolerance_for(path))
        if report.divergence is None or (divergence.first_layer and not report.divergence.first_layer):
            report.divergence = divergence


def check_coreml(target: Target, report: TargetReport, ctx: Context) -> None:
    prepared = _prepare(target, report, ctx, "coreml")
    if prepared is None and ctx.model.flavour == "keras3" and ctx.model.source.format == "keras":
        as_given = report.findings[-1] if report.findings else None
        prepared = _prepare(target, report, ctx, "coreml concrete-function", {"route": "concrete-function"})
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
    if prepared is None:
        return
    with recorded(report, "load coreml"):
        with target.load(prepared) as deployed:  # one model for the spec and the prediction
            sig = deployed.signature()
            report.figures["coreml.spec_inputs"] = float(len(sig.inputs))
            report.figures["coreml.flexible_shapes"] = 1.0 if any(None in t.shape for t in sig.inputs) else 0.0
            _predict_and_compare(target, report, deployed, ctx, "coreml")
    from harness.targets.coreml.convert import compress_weights
    from harness.targets.coreml.kit import weight_bytes

    for label, method, config in (("linear int8", "linear", {"mode": "linear_symmetric"}),
                                  ("palettize 6-bit", "palettize", {"mode": "uniform", "nbits": 6})):
        with recorded(report, f"compress {label}", severity="info"):
            package = compress_weights(ctx.cache, prepared.artifact, method=method, config=config)
            report.figures[f"coreml {label}.weights_bytes"] = float(weight_bytes(package))


#: rows the browser backends predict (the software WebGL and the cpu backend of a 224x224 CNN take
#: seconds per row; parity needs a few rows, not the whole sample)
BROWSER_ROWS = 2


def check_tfjs(target: Target, report: TargetReport, ctx: Context) -> None:
    prepared = _prepare(target, report, ctx, "tfjs")
    browser_ctx = _first_rows(ctx, BROWSER_ROWS)
    if prepared is not None:
        for backend in check_backends():  # the tf.js backend table: names and tolerance paths
            _deploy_and_compare(target, report, prepared, browser_ctx, f"tfjs@{backend.name}",
                                path=backend.tolerance, load_options={"backend": backend.name}, timings=True)
    if ctx.model.flavour == "tf_keras":
        layers = _prepare(target, report, ctx, "tfjs layers", {"format": "layers"}, severity="warning")
        if layers is not None:
            _deploy_and_compare(target, report, layers, browser_ctx, "tfjs layers@cpu", load_options={"backend": "cpu"},
                                severity="warning")


CHECKS: dict[str, Callable[[Target, TargetReport, Context], None]] = {
    "tfserving": check_tfserving, "litert": check_litert, "coreml": check_coreml, "tfjs": check_tfjs,
}


class ActiveTargets(Protocol):
    """Targets already active in this process (the pytest plugin's session pool): ``get(name)``."""

    def get(self, name: str) -> Target: ...


def check(path: str | Path, *, targets: Sequence[str] | None = None, inputs: str | Path | None = None,
          profiles: Sequence[str] = DEFAULT_PROFILES, cache: "ArtifactCache | None" = None,
          imports: Sequence[str] = (), progress: Progress | None = _stderr,
          active: ActiveTargets | None = None, trust: bool = False, probes: Sequence[str] | None = None,
          calibration: str | Path | None = None) -> CheckReport:
    """Check the model at ``path`` on ``targets`` (default: all); see ``docs/check-schema.md``.

    Unless ``trust``, the model file is scanned first (:mod:`harness.trust`, nothing is loaded):
    a Keras file that carries Python code is refused (:class:`~harness.trust.ModelRefused`, a
    UsageError); a SavedModel with ops that touch the file system, the network or Python gets
    one finding per op and is not run (every target skipped, with the reason).

    ``active`` lends targets that are already running in this process (inside pytest, the
    session's: a second browser target would start a second sync Playwright, which Playwright
    refuses); without it each target is started and stopped here.

    Besides the sample (``inputs`` or synthesised), every path is fed the synthetic ``probes``
    (default: every one of :data:`~harness.check.model.PROBES`; ``()`` none) and the
    ``calibration`` set (an ``.npz`` like ``inputs``; also LiteRT int8's representative set),
    each compared with its own reference; a finding names the probe that showed it.
    """
    from harness.artifacts import ArtifactCache

    say = progress or (lambda message: None)
    started = time.perf_counter()
    wanted = list(targets or TARGET_NAMES)
    unknown = [t for t in wanted if t not in TARGET_NAMES]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(unknown)}: choose from {', '.join(TARGET_NAMES)}")
    probe_names = list(PROBES) if probes is None else list(probes)
    unknown = [p for p in probe_names if p not in PROBES]
    if unknown:
        raise UsageError(f"unknown probe(s) {', '.join(unknown)}: choose from {', '.join(PROBES)} (or none)")
    source = ModelSource.from_path(path, trusted=trust, imports=tuple(imports))
    if not trust:
        say(f"scanning {source.path} ({source.format}) for code it carries")
        concerns = model_concerns(source)
        if concerns and source.format != "saved_model":
            raise ModelRefused(source.path, concerns)
        if concerns:
            return _not_run(source, concerns, wanted, started)
    say(f"loading {source.path} ({source.format})")
    model = load_model(source)
    report = CheckReport(model=model.describe(), inputs={}, created=_now(), trusted=trust)
    report.findings.extend(model.notes)
    probe = "synthesised"
    if inputs is not None:
        feed = read_inputs(Path(inputs), model)
        how: dict[str, Any] = {"file": str(Path(inputs).resolve())}
        probe = f"--inputs {Path(inputs).name}"
    else:
        try:
            feed = synthesise_inputs(model)
        except Exception as exc:  # noqa: BLE001 - an input this check cannot make yet: say so, run nothing
            report.findings.append(finding_from("check", exc, "inputs", severity="warning"))
            reason = "not run: pitfalls check cannot synthesise this model's inputs yet; pass --inputs FILE.npz"
            for name in wanted:
                report.targets[name] = TargetReport(name, verdict="skipped", reason=reason)
            report.seconds = time.perf_counter() - started
            return report
        how = {"synthesised": {i.name: i.kind for i in model.inputs}}
    how.update({"digest": hash_inputs(feed), "rows": int(next(iter(feed.values())).shape[0])})
    report.inputs = how
    reference, failed = _reference_or_none(model, feed)
    if failed is not None:
        report.findings.append(failed)
    further: list[Probe] = []
    calibration_set = None
    if calibration is not None:
        calibration_set = read_inputs(Path(calibration), model)
        further.append(Probe(f"--calibration {Path(calibration).name}", calibration_set,
                             _reference_or_none(model, calibration_set)[0]))
        how["calibration"] = {"file": str(Path(calibration).resolve()), "digest": hash_inputs(calibration_set)}
    try:
        synthetic = synthesise_probes(model)
    except Exception as exc:  # noqa: BLE001 - the sample still runs; say which probes did not
        report.findings.append(finding_from("check", exc, "probes", severity="info"))
        synthetic = {}
    for name, probe_inputs in synthetic.items():
        if name in probe_names:
            further.append(Probe(name, probe_inputs, _reference_or_none(model, probe_inputs)[0]))
    how["probes"] = {p.name: PROBES.get(p.name, "the file's arrays") for p in further}
    ctx = Context(model, feed, reference, cache or ArtifactCache(), _runnable(profiles, say), say, probe,
                  tuple(further), calibration_set)
    for name in wanted:
        report.targets[name] = check_one(name, ctx, active)
    report.seconds = time.perf_counter() - started
    return report


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _not_run(source: ModelSource, concerns: "list[Concern]", wanted: list[str], started: float) -> CheckReport:
    """The report of an untrusted SavedModel whose scan found denied ops: one finding per op, every
    target skipped (nothing loaded, converted or run)."""
    from harness.check.model import digest_of

    model: dict[str, Any] = {"path": str(source.path), "format": source.format, "flavour": "saved_model",
                             "digest": digest_of(source.path), "inputs": [], "outputs": [], "parameters": None, "layers": 0}
    report = CheckReport(model=model, inputs={}, created=_now(), trusted=False)
    for concern in concerns:
        report.findings.append(Finding("blocker", concern.describe(), "pitfalls trust scan of saved_model.pb",
                                       "static", fix="compute it with TensorFlow ops in the serving function, "
                                       "or pass --trust-model if you trust this file", step="scan"))
    reason = (f"not run: the SavedModel holds {len(concerns)} op(s) that touch the file system, the network or "
              "Python (see the model's findings); --trust-model runs it")
    for name in wanted:
        report.targets[name] = TargetReport(name, verdict="skipped", reason=reason)
    report.seconds = time.perf_counter() - started
    return report


def _runnable(profiles: Sequence[str], say: Progress) -> tuple[str, ...]:
    """The requested LiteRT profiles that exist; arm64 dropped (and said) where qemu cannot run it."""
    from harness.targets.litert.profiles import profile_named

    kept: list[str] = []
    for name in profiles:
        profile_named(name)  # an unknown name is a UsageError
        if name == "arm64":
            from harness.targets.litert.arm64 import arm64_unavailable_reason

            reason = arm64_unavailable_reason()
            if reason:
                say(f"litert: profile arm64 left out: {reason}")
                continue
        kept.append(name)
    return tuple(kept)


def check_one(name: str, ctx: Context, active: ActiveTargets | None = None) -> TargetReport:
    report = TargetReport(name)
    cls = target_class(name)
    reason = cls.unavailable_reason()
    if reason:
        report.verdict, report.reason = "skipped", reason
        ctx.say(f"{name}: skipped ({reason})")
        return report
    started = time.perf_counter()
    ctx.say(f"{name}: checking")
    try:
        with ExitStack() as stack:
            target = active.get(name) if active is not None else stack.enter_context(cls())
            report.versions = target.versions()
            CHECKS[name](target, report, ctx)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - a target's check never ends the whole check
        report.add(finding_from(name, exc, "check", severity="warning"))
    report.settle()
    report.seconds = time.perf_counter() - started
    ctx.say(f"{name}: {report.verdict} in {report.seconds:.1f}s ({len(report.findings)} findings)")
    return report
