"""What ``pitfalls check`` tries on LiteRT, and the converter/interpreter texts it knows (see
harness.check.steps).

The float32 conversion; parity, and the per-layer divergence table when it diverges; latency and parity under the
device profiles (arm64 under qemu: parity at batch 1, never timings); dynamic-range and
full-integer quantisation, fed as an app feeds an integer model.  What it tries for a finding
(Select TF ops when builtins refuse ops, selective int8, float16...) is in
:mod:`harness.targets.litert.remedies`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from harness.check.localise import OptionsFor, diverging_inputs, localisable, localise_path
from harness.check.report import Finding, TargetReport
from harness.check.rules import Rule
from harness.check.steps import (Context, IntegerIO, Progress, TargetChecks, deploy_and_compare, first_rows,
                                 prepare_path, recorded, representative)
from harness.targets.base import Deployment, Prepared, Target
from harness.targets.litert.kit import dequantize, quantize
from harness.targets.litert.remedies import REMEDIES

if TYPE_CHECKING:
    import numpy as np

NAME = "litert"

RULES: tuple[Rule, ...] = (
    Rule(NAME, r"Some ops are not supported by the native TFLite runtime",
         "mobile/model-conversion/conversion-of-unsupported-models/litert",
         "Rewrite the ops with TF Lite builtins, or convert with SELECT_TF_OPS and ship a runtime with the "
         "Flex delegate (the prebuilt ai-edge-litert wheel has none)."),
    Rule(NAME, r"Select TensorFlow op\(s\), included in the given model, is\(are\) not supported by this interpreter",
         "mobile/dl-library-compilation/usage-of-prebuilt-libraries/litert",
         "This LiteRT build has no Flex delegate: rewrite the listed ops with builtins, or link a runtime "
         "built with the Flex delegate."),
    Rule(NAME, r"Encountered unresolved custom op",
         "mobile/dl-library-compilation/register-of-unsupported-operators",
         "Register the custom op's kernel with the interpreter, or replace the op with builtins."),
    Rule(NAME, r"For full integer quantization, a `representative_dataset` must be specified",
         "mobile/model-conversion/model-quantization/litert",
         "Give the converter a representative_dataset drawn from real inputs."),
    Rule(NAME, r"The model is not a valid Flatbuffer buffer",
         "mobile/dl-integration-into-projects/importing-loading-models",
         "Ship the .tflite file byte for byte (no text-mode copy, no truncation, no compression by the build)."),
    Rule(NAME, r"Didn't find op for builtin opcode .* version",
         "mobile/dl-integration-into-projects/avoiding-version-incompatibility",
         "Use a runtime at least as new as the converter, or convert with the runtime's TF version."),
)


def runnable_profiles(profiles: Sequence[str], say: Progress) -> tuple[str, ...]:
    """The requested device profiles that exist; arm64 dropped (and said) where qemu cannot run it."""
    from harness.targets.litert.profiles import profile_named

    kept: list[str] = []
    for name in profiles:
        profile_named(name)  # an unknown name is a UsageError
        if name == "arm64":
            from harness.targets.litert.arm64 import arm64_unavailable_reason

            reason = arm64_unavailable_reason()
            if reason:
                say(f"{NAME}: profile arm64 left out: {reason}")
                continue
        kept.append(name)
    return tuple(kept)


def integer_io(target: Target, deployed: Deployment) -> IntegerIO | None:
    """Quantise inputs and dequantise outputs with the interpreter's own parameters (full-int8 models)."""
    sig = deployed.signature()
    if not any(t.dtype in ("int8", "uint8") for t in (*sig.inputs, *sig.outputs)):
        return None
    from harness.targets.litert import worker

    details = getattr(target, "call")(worker.inspect, str(deployed.prepared.artifact))
    by_side = {side: {d["name"]: d for d in details[side] if d["dtype"] in ("int8", "uint8", "int16")}
               for side in ("inputs", "outputs")}

    def encode(feed: "dict[str, np.ndarray]") -> "dict[str, np.ndarray]":
        # only the inputs LiteRT quantised are quantised: ids (int64) stay as they are
        return {name: quantize(value, by_side["inputs"][name]) if name in by_side["inputs"] else value
                for name, value in feed.items()}

    def decode(got: "dict[str, np.ndarray]") -> "dict[str, np.ndarray]":
        return {name: (dequantize(value, by_side["outputs"][name]) if name in by_side["outputs"] else value)
                for name, value in got.items()}

    return IntegerIO(encode, decode)


def extra_paths(target: Target, report: TargetReport, prepared: Prepared | None, ctx: Context) -> None:
    if prepared is None:
        return
    if NAME in report.parity and min(v.shape[0] for v in ctx.inputs.values()) > 1:
        # the batch an app on a phone runs: a model converted with a dynamic batch may fail at 1 alone
        deploy_and_compare(target, report, prepared, first_rows(replace(ctx, probes=())), f"{NAME} batch 1",
                           severity="warning")
    localise_divergence(target, report, prepared, ctx, NAME, f"{NAME} float32", "float32", lambda _arrays: {})
    latency(target, report, prepared, ctx, "host")
    for profile in ctx.profiles:
        if profile == "host":
            continue
        if profile == "arm64":  # the aarch64 LiteRT under qemu: parity only, at batch 1, never timings
            deploy_and_compare(target, report, prepared, first_rows(replace(ctx, probes=())), f"{NAME}@arm64",
                               load_options={"profile": "arm64"})
            continue
        deploy_and_compare(target, report, prepared, ctx, f"{NAME}@{profile}", load_options={"profile": profile})
        latency(target, report, prepared, ctx, profile)
    rep = representative(ctx)
    for mode, path in (("float16", "float16"), ("dynamic", "int8"), ("int8", "int8")):
        options: dict[str, Any] = {"quantize": mode}
        if mode == "int8":
            if rep is None:
                report.add(Finding("info", "full-integer quantisation skipped: it needs one input to draw a "
                                   "representative set from", "pitfalls check", "static", step="quantize"))
                continue
            options["representative"] = rep
        label = f"{NAME} {mode}"
        quantised = prepare_path(target, report, ctx, label, options, severity="warning")
        if quantised is None:
            continue
        got = deploy_and_compare(target, report, quantised, ctx, label, path=path)
        if got is not None:
            localise_divergence(target, report, quantised, ctx, label, label, path, _options_alone(mode))


def latency(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, profile: str) -> None:
    """Median invoke time of one row on ``profile`` (LiteRT's own timing loop in the worker)."""
    from harness.targets.litert.profiles import profile_named

    with recorded(report, f"latency {NAME}@{profile}", severity="info"):
        feed = [ctx.inputs[i.name][:1] for i in ctx.model.inputs]
        timing = getattr(target, "time_invoke")(prepared.artifact, feed, profile=profile_named(profile), runs=10)
        for key in ("median_ms", "min_ms", "load_ms"):
            if key in timing:
                report.figures[f"{NAME}@{profile}.{key}"] = float(timing[key])


def interpreter_tensors(model_path: str, inputs: list[Any]) -> dict[str, Any]:
    """Run in the LiteRT worker: every op's output tensor (dequantised), in execution order.

    No delegate (XNNPACK would compute intermediate tensors inside itself and not keep them).
    Returns ``{"ops": [[tensor name, array]...], "outputs": [array...], "output_names": [tensor name...]}``.
    """
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_path=model_path, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    details = interp.get_input_details()
    for detail, value in zip(details, inputs):
        if list(detail["shape"]) != list(np.shape(value)):
            interp.resize_tensor_input(detail["index"], list(np.shape(value)))
    interp.allocate_tensors()
    for detail, value in zip(interp.get_input_details(), inputs):
        scale, zero = detail["quantization"]
        if scale:
            value = np.clip(np.round(np.asarray(value) / scale + zero), np.iinfo(detail["dtype"]).min,
                            np.iinfo(detail["dtype"]).max)
        interp.set_tensor(detail["index"], np.asarray(value).astype(detail["dtype"]))
    interp.invoke()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}

    def value_of(index: int) -> Any:
        t = tensors[index]
        raw = interp.get_tensor(index)
        scale, zero = t["quantization"]
        return (raw.astype("float64") - zero) * scale if scale else raw.astype("float64")

    ops: list[list[Any]] = []
    for op in interp._get_ops_details():  # noqa: SLF001 - the only API that lists ops and their outputs
        if op["op_name"] == "DELEGATE":
            continue
        for index in op["outputs"]:
            if index >= 0 and tensors[index]["dtype"] in (np.float32, np.float16, np.int8, np.uint8, np.int16):
                ops.append([tensors[index]["name"], value_of(index)])
    outputs = [value_of(d["index"]) for d in interp.get_output_details()]
    return {"ops": ops, "outputs": outputs, "output_names": [str(d["name"]) for d in interp.get_output_details()]}


def _options_alone(mode: str) -> OptionsFor:
    """The quantisation ``mode``'s converter options for a layer run alone (int8: calibrated on the
    reference's inputs to that layer, as the whole model is on the sample)."""
    def options(arrays: "list[np.ndarray]") -> dict[str, Any]:
        if mode == "int8":
            return {"quantize": mode, "representative": arrays[0]}
        return {"quantize": mode}
    return options


def localise_divergence(target: Target, report: TargetReport, prepared: Prepared, ctx: Context, compared: str,
                        label: str, path: str, options_alone: OptionsFor) -> None:
    """When the path compared as ``compared`` diverged (on the sample, else on the first probe that
    showed it): the per-layer table on those inputs, every interpreter tensor against the Keras layer
    it belongs to; then the suspect layers run alone, converted with ``options_alone`` (the path's
    own conversion, calibrated as the model was)."""
    found = diverging_inputs(report, compared, ctx)
    if found is None or not localisable(report, ctx.model):
        return
    probe, inputs = found
    rep = representative(ctx)
    with recorded(report, f"localise {label}{probe}", severity="warning"):
        feed = [inputs[i.name] for i in ctx.model.inputs]
        tensors = getattr(target, "call")(interpreter_tensors, str(prepared.artifact), feed)
        localise_path(target, report, ctx.model, inputs, ctx.cache, label + probe, path, tensors["ops"],
                      tensors["outputs"], options_for=options_alone, output_names=tensors["output_names"],
                      calibration={ctx.model.inputs[0].name: rep} if rep is not None else None)


def unsupported_ops(text: str) -> list[str]:
    """The TF op types the converter names: "TF Select ops: Softsign, ...", "Flex ops: FlexSoftsign, ...",
    "Custom ops: ..." and "'tf.Softsign' op is neither a custom op nor a flex op"."""
    named = [op.strip().removeprefix("Flex") for listed in re.findall(r"(?:TF Select|Flex|Custom) ops: ([^\n]+)", text)
             for op in listed.split(",")]
    named += re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)
    return list(dict.fromkeys(op for op in named if re.fullmatch(r"\w+", op)))


CHECKS = TargetChecks(rules=RULES, integer_io=integer_io, paths=extra_paths, remedies=REMEDIES,
                      unsupported_ops=unsupported_ops,
                      profiles=runnable_profiles, default_profiles=("host", "low-end", "arm64"))  # arm64 when it can run here
