"""What ``pitfalls check`` tries on TF Serving, and the serving texts it knows (see harness.check.steps).

One server per REST variant the check runs (the serving variant table,
:mod:`harness.targets.tfserving.variants`; by default ``rest``, the image's flags): the served
signature's metadata (what clients will get wrong), REST predict with first/warm timings, and on
the same server the request of each gRPC variant, built from the metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.check.model import is_string
from harness.check.report import Finding, TargetReport
from harness.check.rules import Rule
from harness.check.steps import (Context, Load, TargetChecks, compare_outputs, feed_for, outputs_in_order,
                                 recorded)
from harness.counts import count
from harness.targets.base import Deployment, ModelSource, Signature, Target
from harness.targets.tfserving.remedies import REMEDIES
from harness.targets.tfserving.variants import DEFAULT_VARIANT, check_variants

if TYPE_CHECKING:
    import numpy as np

    from harness.artifacts import ArtifactCache

NAME = "tfserving"

RULES: tuple[Rule, ...] = (
    Rule(NAME, r'Serving signature name: "serving_default" not found in signature def',
         "server/model-export/specification-of-model-information",
         "Export with a serving_default signature (Keras 3: model.export; tf.saved_model.save(..., signatures=...))."),
    Rule(NAME, r"Expects arg\[\d+\] to be \w+ but \w+ is provided",
         "server/data-processing/setting-format-datatype-of-input-data/grpc-float64-tensor",
         "Send tensors of the signature's dtype (cast on the client), or export a signature of the client's dtype."),
    Rule(NAME, r"Op type not registered '[^']+' in binary running on",
         "server/environment/avoiding-version-incompatibility",
         "Serve with a TF Serving at least as new as the TF that exported the model."),
    Rule(NAME, r"Could not find SavedModel \.pb or \.pbtxt|does not appear to contain a SavedModel bundle",
         "server/general-questions/limitations-of-platforms-frameworks",
         "Serve a SavedModel directory (saved_model.pb + variables/) under a numbered version directory."),
)


def keras3_file_note(report: TargetReport, ctx: Context) -> None:
    if ctx.model.flavour == "keras3" and ctx.model.source.format == "keras":
        report.add(Finding("info", "a Keras 3 .keras file is not a SavedModel: TF Serving needs model.export(dir) "
                           "(pitfalls exported it for you)", "Keras 3 file format", "static",
                           taxonomy="server/model-export/procedure", scenario="server/model-export/procedure",
                           fix="export with model.export('models/<name>/1')", step="prepare"))


def signature_findings(target: Target, report: TargetReport, deployed: Deployment, ctx: Context) -> None:
    """What the served metadata says clients will get wrong: non-float inputs, a fixed batch size."""
    sig: Signature = deployed.signature()
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


def grpc_parity(target: Target, report: TargetReport, deployed: Deployment, ctx: Context) -> None:
    """The sample's request over gRPC for each gRPC variant the check runs, built from the served
    metadata (dtypes as the signature says).

    The further probes go over REST only: REST turns every value into JSON text and back (the
    client's decimal digits to the signature's dtype, the outputs through TF Serving's float
    formatting, inf/NaN as bare ``Infinity``/``NaN`` tokens, integers as JSON numbers), so a value a probe
    brings can come out differently there; gRPC carries the tensors' bytes as the client made
    them, so what it can show apart from REST (the dtype the signature requires, a request
    built from the metadata) is the same on every probe: the sample shows it."""
    import numpy as np

    from harness.targets.tfserving.client import grpc_predict

    for variant in check_variants("grpc"):
        label = f"{NAME} {variant.name}"
        outputs: list[np.ndarray] | None = None
        with recorded(report, f"predict {label}"):
            sig = deployed.signature()
            feed = {name: np.asarray(value, dtype=None if is_string(spec.dtype) else spec.dtype) for (name, value), spec
                    in zip(feed_for(deployed, ctx).items(), sig.inputs)}
            count("predictions")
            count("rows predicted", int(next(iter(feed.values())).shape[0]) if feed else 0)
            reply = grpc_predict(getattr(deployed, "server"), feed)
            outputs = outputs_in_order(dict(reply.outputs), deployed, ctx)
        if outputs is not None:
            compare_outputs(report, label, outputs, ctx, variant.tolerance)


def served_early(target: Target, source: ModelSource, cache: "ArtifactCache", ready: Callable[[], bool]) -> None:
    """While the model loads for the reference: the SavedModel exported and served once per REST
    variant the check runs (:meth:`TfservingTarget.serve_early`)."""
    from harness.targets.tfserving.target import TfservingTarget

    assert isinstance(target, TfservingTarget)
    target.serve_early(source, cache, [v.name for v in check_variants("rest")], ready)


def rest_loads(ctx: Context) -> tuple[Load, ...]:
    """One served model per REST variant the check runs (``rest`` is labelled with the target's name)."""
    return tuple(Load(NAME if v.name == DEFAULT_VARIANT else f"{NAME}@{v.name}", {"variant": v.name},
                      tolerance=v.tolerance, timings=True, time_load=True) for v in check_variants("rest"))


CHECKS = TargetChecks(
    rules=RULES,
    notes=keras3_file_note,
    loads=rest_loads,
    inspect=signature_findings,
    after=grpc_parity,
    remedies=REMEDIES,
    probes_side_by_side=True,  # the server answers several requests at once
    early=served_early,
)
