"""Golden path to Core ML: train -> SavedModel -> coremltools -> inspect -> predict (macOS only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Raises, Run, Scenario
from harness.targets.base import ModelSource
from harness.targets.coreml.kit import spec_summary

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget


def faulty(run: Run[CoremlTarget]) -> None:
    # Keras 3's model.export writes a SavedModel with several concrete functions.
    exported = ModelSource.from_path(saved_model(run.cache, ModelSpec("dense", "keras3")))
    run.target.prepare(exported, run.cache)


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    spec = ModelSpec("dense", "tf_keras")
    trained = trained_model(run.cache, spec)
    # prepare: the tf_keras model's SavedModel through ct.convert (an ML program for iOS 15+).
    prepared = run.target.prepare(ModelSource.from_trained(trained), run.cache)
    run.note("spec", spec_summary(prepared.artifact))
    run.note("sizes", prepared.sizes)
    deployed = run.enter(run.target.load(prepared))
    signature = run.note("signature", deployed.signature().to_json())  # from the Core ML spec
    x, expected = trained.probe()
    outputs = deployed.predict({signature["inputs"][0]["name"]: x[:1]})  # skips off macOS, quoting coremltools
    return {"max_abs_diff": max_abs_diff(next(iter(outputs.values())), expected[:1])}


SCENARIO = Scenario(
    title="Train and convert a model to Core ML",
    targets=("coreml",),
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Only a single concrete function is supported"),
    cause="coremltools 9 reads a TensorFlow SavedModel through a single concrete function; "
          "Keras 3's `model.export` writes several (serve and serving_default), and coremltools "
          "declares TF 2.12 as its newest tested version.",
    fix="Train or save with tf_keras (TF_USE_LEGACY_KERAS=1 or `import tf_keras`) and convert its "
        "SavedModel, then inspect the spec; run predictions on macOS.",
    references=("https://apple.github.io/coremltools/docs-guides/source/tensorflow-2.html",),
)
