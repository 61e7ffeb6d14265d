"""What ``pitfalls check`` tries on TF Serving for a finding (see :mod:`harness.check.remedies`).

The dtype clients should send: for an input whose served dtype is not float32, the model is served
again and asked twice over gRPC, first as a client that builds its tensors from float arrays does
(the server's refusal is the evidence of the pitfall), then in the signature's dtype (its reply,
compared with the reference, is the verdict).  The export clients need: the Keras model exported
again with an explicit ``input_signature`` in float32 (cast to the model's dtype inside the graph),
served, and asked with float JSON as a JSON client sends (the model as given refuses it or not:
the evidence; the export's reply compared with the reference: the verdict).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.check.model import is_string
from harness.check.remedies import Remedy, describe_parity, not_applicable
from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.steps import Context, compare_outputs, feed_for, outputs_in_order
from harness.errors import RuntimeFailure
from harness.targets.base import Target

if TYPE_CHECKING:
    from pathlib import Path

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


#: bumped when the float-clients export changes (its cache key)
FLOAT_EXPORT_REVISION = 1


def float_clients_export(ctx: Context, inputs: "list[tuple[str, str, tuple[int | None, ...]]]",
                         outputs: list[str]) -> "Path":
    """The user's Keras model exported with an explicit ``input_signature`` that takes float32 for
    every numeric input (as JSON and float-array clients send) and casts to the model's dtype in
    the graph, outputs named as the served signature names them: a ``tf.Module`` with a
    ``serving_default`` function (Keras 3: ``keras.export.ExportArchive``; tf_keras: a ``tf.Module``
    saved with ``tf.saved_model.save``), cached."""
    from harness.artifacts import library_versions

    keras_model = ctx.model.keras_model
    key = {"source": ctx.cache.source_key(ctx.model.source.path), "inputs": [list(map(str, i)) for i in inputs],
           "outputs": outputs, "revision": FLOAT_EXPORT_REVISION, "flavour": ctx.model.flavour,
           "versions": library_versions("tensorflow", "keras", "tf-keras")}

    def build(out: "Path") -> None:
        import tensorflow as tf

        specs = [tf.TensorSpec(list(shape), tf.string if is_string(dtype) else tf.float32, name=name)
                 for name, dtype, shape in inputs]

        def serve(*values: Any) -> Any:
            cast = [value if is_string(dtype) else tf.cast(value, dtype)
                    for value, (_, dtype, _) in zip(values, inputs)]
            got = keras_model(cast if len(cast) > 1 else cast[0], training=False)
            if isinstance(got, dict):
                return dict(got)
            listed = list(got) if isinstance(got, (list, tuple)) else [got]
            return dict(zip(outputs, listed))

        if ctx.model.flavour == "keras3":  # Keras 3's own way to export a function of a model with its variables
            import keras

            archive = keras.export.ExportArchive()
            archive.track(keras_model)
            archive.add_endpoint("serve", serve, input_signature=specs)  # also serving_default
            archive.write_out(str(out / "saved_model"), verbose=False)
            return
        module = tf.Module()  # tf_keras: its layers are tf.Modules, tracked as attributes
        module.model = keras_model
        module.serve = tf.function(serve, input_signature=specs)
        tf.saved_model.save(module, str(out / "saved_model"), signatures={"serving_default": module.serve})

    return ctx.cache.get_or_build("check-remedy", key, build) / "saved_model"


def _float_signature_export(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    """Serve the model as given and send the inputs as float JSON (what a JSON client sends): the
    server's refusal is the evidence; then serve the export whose signature takes float32 and ask
    the same: its reply, compared with the reference, is the verdict."""
    from harness.targets.base import ModelSource

    if ctx.model.keras_model is None:
        return not_applicable(FLOAT_SIGNATURE_EXPORT, "the model is a SavedModel: its signature is what it was saved "
                              "with (no Keras model here to export again)")
    as_given = target.prepare(ctx.model.source, ctx.cache)
    with target.load(as_given) as deployed:
        signature = deployed.signature()
        feed = feed_for(deployed, ctx)
        floats = {name: value if value.dtype.kind in "USO" else value.astype("float32") for name, value in feed.items()}
        try:
            deployed.predict(floats)
            before = "the server took float JSON as given"
        except RuntimeFailure as exc:
            before = f"as given, float JSON refused: {exc.message.strip()[:400]}"
        inputs = [(t.name, t.dtype, tuple(t.shape)) for t in signature.inputs]
        output_names = [t.name for t in signature.outputs]
    exported = float_clients_export(ctx, inputs, output_names)
    prepared = target.prepare(ModelSource.from_path(exported, trusted=ctx.model.source.trusted), ctx.cache)
    with target.load(prepared) as served:
        got = served.predict(floats)
        takes = ", ".join(f"{t.name} {t.dtype}" for t in served.signature().inputs)
        outputs = outputs_in_order(got, served, ctx)
    scratch = TargetReport(report.target)
    label = f"{NAME} float-signature export"
    compare_outputs(scratch, label, outputs, ctx)
    change = (f"export with an explicit input_signature taking float32 ({takes} served), cast to "
              f"{', '.join(f'{n} {d}' for n, d, _ in inputs)} inside the graph")
    problems = [f for f in scratch.findings if f.severity in ("blocker", "warning")]
    if problems or label not in scratch.parity:
        shown = problems[0].text if problems else "no outputs to compare"
        return RemedyTried(FLOAT_SIGNATURE_EXPORT.name, "does not work", f"{before}; the export: {shown}", change)
    return RemedyTried(FLOAT_SIGNATURE_EXPORT.name, "works",
                       f"{before}; the export, float JSON: {describe_parity(label, scratch.parity[label], 'float32')}",
                       change)


def _dtype_finding(finding: Finding) -> bool:
    return finding.scenario == DTYPE_LESSON or (finding.step == "signature" and "JSON clients send floats" in finding.text)


SIGNATURE_DTYPE = Remedy(
    "send the signature's dtype", "the client builds each input tensor in the dtype the served signature declares",
    "a gRPC request in the signature's dtypes to the served model, its reply compared with the reference",
    _signature_dtype, when=_dtype_finding)

FLOAT_SIGNATURE_EXPORT = Remedy(
    "export a float32 signature", "the model exported with an explicit input_signature in float32, cast to the "
    "model's dtype inside the graph, so that JSON clients' floats are taken",
    "the export served; a REST request of float JSON values, its reply compared with the reference",
    _float_signature_export, when=_dtype_finding)

REMEDIES: tuple[Remedy, ...] = (SIGNATURE_DTYPE, FLOAT_SIGNATURE_EXPORT)
