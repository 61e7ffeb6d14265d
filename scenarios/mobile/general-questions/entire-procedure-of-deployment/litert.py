"""Golden path on LiteRT: train -> export a SavedModel -> convert to TF Lite -> run on a device."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import ByVersion, Figure, Raises, Run, Scenario, succeeds
from harness.targets.base import ModelSource
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: Run[LitertTarget]) -> None:
    # A common first attempt: hand the interpreter the Keras file instead of a converted model.
    trained = trained_model(run.cache, SPEC)
    run.target.predict(trained.model_file, [trained.probe()[0][:1]], profile=PROFILES["host"])


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    # prepare: model.export(dir) then TFLiteConverter.from_saved_model(dir), cached.
    prepared = run.target.prepare(ModelSource.from_trained(trained), run.cache)
    run.note("conversion", prepared.notes["route"])
    run.note("model_bytes", prepared.sizes["artifact"])
    deployed = run.enter(run.target.load(prepared, options={"profile": "host"}))
    signature = run.note("signature", deployed.signature().to_json())  # as LiteRT reads the file
    x, expected = trained.probe()
    outputs = deployed.predict({signature["inputs"][0]["name"]: x})
    return {"max_abs_diff": max_abs_diff(outputs[signature["outputs"][0]["name"]], expected)}


SCENARIO = Scenario(
    title="Train, convert and run a model with LiteRT",
    targets=("litert",),
    figures={"max_abs_diff": "parity"},
    faulty=faulty,
    fixed=fixed,
    # the version matrix: LiteRT 2.1.6 and later verify the buffer; 1.4.0 to 2.1.5 read the file
    # identifier and quote its first byte (run: 1.4.0, 2.0.3, 2.1.0, 2.1.3-2.1.6, 2.2.0, 2.3.0)
    symptom=ByVersion((("ai-edge-litert>=2.1.6", Raises(r"The model is not a valid Flatbuffer buffer", runtime="litert")),
                       ("ai-edge-litert<2.1.6", Raises(r"^Model provided has model identifier '", runtime="litert")))),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5)),
    cause="A Keras model file (.keras, a zip archive) is not a TF Lite flatbuffer; LiteRT checks "
          "the file and refuses it with 'The model is not a valid Flatbuffer buffer'.",
    fix="Export a SavedModel (`model.export`), convert it with `tf.lite.TFLiteConverter."
        "from_saved_model`, and load the resulting `.tflite` file in the interpreter.",
    references=("https://ai.google.dev/edge/litert/models/convert_tf",),
)
