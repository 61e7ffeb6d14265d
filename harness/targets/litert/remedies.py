"""What ``pitfalls check`` tries on LiteRT for a finding (see :mod:`harness.check.remedies`).

Each remedy re-converts the user's model with the change the lessons teach and runs it on this
LiteRT (the check's worker), so the verdict is the runtime's: builtins refused ops → Select TF
ops (and whether this LiteRT runs them); tensor lists the converter cannot lower → keep them
(``_experimental_lower_tensor_list_ops=False``) with Select TF ops; full-integer outputs that
diverge → selective quantisation keeping the localised layers in float (TF Lite's
``QuantizationDebugger`` denylist), and float16 instead, each with size and parity after.
"""

from __future__ import annotations

from harness.check.localise import _layer_in_name
from harness.check.remedies import Remedy, not_applicable, path_of, path_result, trial_path
from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.steps import Context, representative
from harness.targets.base import Target

NAME = "litert"

#: the lesson a converter refusal of non-builtin ops is matched to (harness.targets.litert.checks.RULES)
UNSUPPORTED_OPS = "mobile/model-conversion/conversion-of-unsupported-models/litert"


def _select_tf_ops(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    return trial_path(SELECT_TF_OPS, target, ctx, f"{NAME} select_tf_ops", {"select_tf_ops": True})


def _keep_tensor_lists(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    return trial_path(KEEP_TENSOR_LISTS, target, ctx, f"{NAME} tensor lists kept",
                      {"select_tf_ops": True, "converter_flags": {"_experimental_lower_tensor_list_ops": False}})


def _float16(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    """The check's own float16 path when it ran (its verdict on the same sample), else run here."""
    label = f"{NAME} float16"
    return (path_result(FLOAT16, report, label, "float16")
            or trial_path(FLOAT16, target, ctx, label, {"quantize": "float16"}, path="float16"))


def tensor_names(model_path: str) -> list[str]:
    """Run in the LiteRT worker: the names of the model's tensors, in LiteRT's order."""
    from ai_edge_litert.interpreter import Interpreter

    return [str(t["name"]) for t in Interpreter(model_path=model_path).get_tensor_details()]


def localised_layers(report: TargetReport) -> tuple[list[str], str]:
    """The layers the divergence table names as local causes (the first layer first), and the path
    it localised (the check localises one quantised path: the int8 one or the dynamic-range one)."""
    d = report.divergence
    if d is None or not d.first_layer:
        return [], ""
    local = [row.layer for row in d.layers if not row.passes and row.attribution == "local"]
    return [d.first_layer] + [layer for layer in local if layer != d.first_layer], d.path


def _selective_int8(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    layers, localised = localised_layers(report)
    keras_model = ctx.model.keras_model
    rep = representative(ctx)
    if not layers or keras_model is None or rep is None:
        return not_applicable(SELECTIVE_INT8, "the divergence table names no layer that fails on its own, so "
                              "there is no layer to keep in float")
    quantised = target.prepare(ctx.model.source, ctx.cache, options={"quantize": "int8", "representative": rep})
    names = getattr(target, "call")(tensor_names, str(quantised.artifact))
    every = {layer.name for layer in keras_model.layers}
    nodes = [n for n in names if _layer_in_name(n, every, keras_model.name) in layers]
    if not nodes:
        return not_applicable(SELECTIVE_INT8, f"no tensor of the int8 model belongs to {', '.join(layers)}")
    tried = trial_path(SELECTIVE_INT8, target, ctx, f"{NAME} int8, {', '.join(layers)} in float",
                       {"quantize": "int8", "representative": rep, "float_nodes": tuple(nodes)}, path="int8")
    full = quantised.sizes.get("artifact")
    extra = f" (full int8: {full / 1e3:.1f} kB)" if full else ""
    where = "" if localised == path_of(finding) else f", as localised on {localised}"
    return RemedyTried(tried.name, tried.verdict, tried.evidence + extra,
                       f"{SELECTIVE_INT8.change}: {', '.join(layers)} ({len(nodes)} ops{where})")


def _int8_or_dynamic(finding: Finding) -> bool:
    """A full-integer or dynamic-range path that diverged or did not convert."""
    path = path_of(finding)
    return (finding.step == "parity" and path in (f"{NAME} int8", f"{NAME} dynamic")) or \
        finding.step in (f"prepare {NAME} int8", f"load {NAME} int8", f"predict {NAME} int8")


SELECT_TF_OPS = Remedy(
    "Select TF ops", "convert with supported_ops=[TFLITE_BUILTINS, SELECT_TF_OPS] (the Flex delegate's TF kernels)",
    "converted and run on this LiteRT: it says whether it runs Select TF ops", _select_tf_ops,
    scenarios=(UNSUPPORTED_OPS,), step=f"prepare {NAME}")
KEEP_TENSOR_LISTS = Remedy(
    "keep tensor lists", "converter._experimental_lower_tensor_list_ops = False with Select TF ops",
    "converted and run on this LiteRT", _keep_tensor_lists,
    pattern=r"_experimental_lower_tensor_list_ops", step=f"prepare {NAME}")
SELECTIVE_INT8 = Remedy(
    "selective int8", "full-integer quantisation with the localised layers kept in float "
    "(tf.lite.experimental.QuantizationDebugger denylisted_nodes; float inputs and outputs)",
    "converted and run on this LiteRT, parity on the int8 tolerance", _selective_int8,
    step="parity", source=f"{NAME} int8")
FLOAT16 = Remedy(
    "float16 instead", "float16 weight quantisation (target_spec.supported_types=[tf.float16])",
    "converted and run on this LiteRT, parity on the float16 tolerance", _float16, when=_int8_or_dynamic)

REMEDIES: tuple[Remedy, ...] = (SELECT_TF_OPS, KEEP_TENSOR_LISTS, SELECTIVE_INT8, FLOAT16)
