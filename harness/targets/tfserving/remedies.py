"""What ``pitfalls check`` tries on TF Serving for a finding (see :mod:`harness.check.remedies`).

The dtype clients should send: for an input whose served dtype is not float32, the model is served
again and asked twice over gRPC, first as a client that builds its tensors from float arrays does
(the server's refusal is the evidence of the pitfall), then in the signature's dtype (its reply,
compared with the reference, is the verdict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.check.model import is_string
from harness.check.remedies import Remedy, describe_parity
from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.steps import Context, compare_outputs, feed_for, outputs_in_order
from harness.errors import RuntimeFailure
from harness.targets.base import Target

if TYPE_CHECKING:
    import numpy as np

NAME = "tfserving"

#: the lesson of a client tensor whose dtype the signature does not take
DTYPE_LESSON = "server/data-processing/setting-format-datatype-of-input-data/grpc-float64-tensor"


def _signature_dtype(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    import numpy as np

    from harness.targets.tfserving.client import grpc_predict

    prepared = target.prepare(ctx.model.source, ctx.cache)
    with target.load(prepared) as deployed:
        specs = {spec.name: spec for spec in deployed.signature().inputs}
        feed = feed_for(deployed, ctx)
        typed = {name: np.asarray(value, dtype=None if is_string(specs[name].dtype) else specs[name].dtype)
                 for name, value in feed.items()}
        as_floats = {name: (np.asarray(value, dtype="float32") if not is_string(specs[name].dtype) else value)
                     for name, value in feed.items()}
        server = getattr(deployed, "server")
        try:
            grpc_predict(server, as_floats)
            refused = "the server also took float32 tensors"
        except RuntimeFailure as exc:
            refused = f"float32 tensors refused: {exc.message.strip()[:500]}"
        reply = grpc_predict(server, typed)
        outputs: list[np.ndarray] = outputs_in_order(dict(reply.outputs), deployed, ctx)
    scratch = TargetReport(report.target)
    label = f"{NAME} grpc in signature dtypes"
    compare_outputs(scratch, label, outputs, ctx)
    sent = ", ".join(f"{n} as {s.dtype}" for n, s in specs.items())
    change = f"build the request tensors in the signature's dtypes ({sent})"
    problems = [f for f in scratch.findings if f.severity in ("blocker", "warning")]
    if problems or label not in scratch.parity:
        shown = problems[0].text if problems else "no outputs to compare"
        return RemedyTried(SIGNATURE_DTYPE.name, "does not work", f"{refused}; in the signature's dtypes: {shown}",
                           change)
    return RemedyTried(SIGNATURE_DTYPE.name, "works",
                       f"{refused}; {describe_parity(label, scratch.parity[label], 'float32')}", change)


def _dtype_finding(finding: Finding) -> bool:
    return finding.scenario == DTYPE_LESSON or (finding.step == "signature" and "JSON clients send floats" in finding.text)


SIGNATURE_DTYPE = Remedy(
    "send the signature's dtype", "the client builds each input tensor in the dtype the served signature declares",
    "a gRPC request in the signature's dtypes to the served model, its reply compared with the reference",
    _signature_dtype, when=_dtype_finding)

REMEDIES: tuple[Remedy, ...] = (SIGNATURE_DTYPE,)
