"""A model whose operator version is newer than the LiteRT runtime in the app registers.

TF Lite records a version with every operator code; the converter raises it when a model uses
an operator feature that older kernels lack (new parameters, int16 activations, 4-bit weights).
An app whose bundled runtime is older than the converter then meets an op version it has no
kernel for.  Only one LiteRT runtime is installed here (ai-edge-litert 2.3.0, newer than TF
2.19's converter), so the newer converter's output is stood in for by a real edit of the
flatbuffer: the FULLY_CONNECTED operator code is given the lowest version that this runtime
does not register, found by asking the runtime itself.  The refusal is LiteRT's own check.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")
OP = "FULLY_CONNECTED"


def op_versions(model: bytes) -> dict[str, int]:
    """Builtin operator name -> version, as the flatbuffer's operator codes record them."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    return {names[max(c.builtinCode, c.deprecatedBuiltinCode)]: c.version for c in parsed.operatorCodes}


def with_op_version(model: bytes, op: str, version: int) -> bytes:
    """The same model with operator code ``op`` set to ``version`` (all else unchanged)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    code = getattr(schema.BuiltinOperator, op)
    parsed = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(model, 0))
    for entry in parsed.operatorCodes:
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            entry.version = version
    builder = flatbuffers.Builder(len(model) + 1024)
    builder.Finish(parsed.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def newest_registered(model_by_version: dict[int, bytes]) -> int:
    """In the LiteRT worker: the highest probed version for which the runtime builds the model."""
    from ai_edge_litert.interpreter import Interpreter

    newest = 0
    for version in sorted(model_by_version):
        try:
            Interpreter(model_content=model_by_version[version])
        except ValueError:
            break
        newest = version
    return newest


def _runtime_limits(run: Run[LitertTarget], model: bytes) -> dict[str, int]:
    """For every operator in ``model``: the newest version the runtime registers (probed)."""
    limits = {op: int(run.target.call(newest_registered, {v: with_op_version(model, op, v) for v in range(1, 41)}))
              for op in op_versions(model)}
    run.note("runtime_newest_versions", limits)
    return limits


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def faulty(run: Run[LitertTarget]) -> None:
    model = convert_to_tflite(run.cache, saved_model(run.cache, SPEC)).read_bytes()
    newer = with_op_version(model, OP, _runtime_limits(run, model)[OP] + 1)
    run.note("op_versions_shipped", op_versions(newer))
    x, _ = trained_model(run.cache, SPEC).probe()
    run.target.predict(_write(run.workdir / "model.tflite", newer), [x[:1]], profile=PROFILES["host"])


def fixed(run: Run[LitertTarget]) -> dict[str, Any]:
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    model = tflite.read_bytes()
    limits = _runtime_limits(run, model)
    versions = run.note("op_versions_shipped", op_versions(model))
    beyond = [op for op, v in versions.items() if v > limits[op]]  # the gate before shipping
    x, expected = trained_model(run.cache, SPEC).probe()
    got = run.target.predict(tflite, [x], profile=PROFILES["host"], resize=True)[0]
    return {"ops_newer_than_runtime": float(len(beyond)),
            "max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="Operator version newer than the app's LiteRT runtime supports",
    targets=("litert",),
    figures={"max_abs_diff": "parity", "ops_newer_than_runtime": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Didn't find op for builtin opcode 'FULLY_CONNECTED' version '\d+'\. An older "
                   r"version of this builtin might be supported\. Are you using an old TFLite binary "
                   r"with a newer model\?", runtime="litert"),
    remedy=succeeds(Figure("ops_newer_than_runtime", "<=", 0), Figure("max_abs_diff", "<=", 1e-5)),
    cause="The converter and the runtime in the app are versioned separately. Each operator in a "
          ".tflite file carries a version; when the converter is newer than the runtime linked "
          "into the app, it can emit an operator version the runtime has no kernel for, and "
          "building the interpreter fails with 'Didn't find op for builtin opcode ... version ...'. "
          "Here the newer converter is simulated by editing the version field (the runtime's "
          "newest registered version is probed first); the error is LiteRT's own.",
    fix="Keep converter and runtime in step: convert with the TF version that matches the app's "
        "LiteRT (or upgrade the runtime in the app), avoid converter options whose kernels the "
        "runtime lacks, and gate releases on a check that every operator version in the model is "
        "one the shipped runtime registers (the model's `min_runtime_version` metadata helps).",
    references=("https://ai.google.dev/edge/litert/models/ops_version",
                "https://github.com/tensorflow/tensorflow/issues/80736",
                "https://github.com/tensorflow/tensorflow/issues/50641",
                "https://github.com/tensorflow/tensorflow/issues/76743"),
)
