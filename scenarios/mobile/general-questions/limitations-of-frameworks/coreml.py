"""Core ML runs only on Apple platforms: a Linux CI cannot check a converted model's predictions.

coremltools converts, inspects, compresses and saves models anywhere, but prediction calls into
Core ML.framework, which exists only on macOS/iOS.  A pipeline that validates its Core ML model
on a Linux runner therefore fails at the first ``predict``.  The fixed variant validates what a
Linux host can (the Core ML spec against the Keras model, and the same network's numbers on
LiteRT, which runs here) and runs Core ML's own prediction where the runtime exists (the macOS
CI job, ``.github/workflows/macos-coreml.yml``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.coreml.convert import convert_to_coreml
from harness.targets.coreml.kit import on_macos, spec_summary
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.target import LitertTarget

if TYPE_CHECKING:
    from harness.targets.coreml.target import CoremlTarget

SPEC = ModelSpec("dense", "tf_keras")


def faulty(run: Run[CoremlTarget]) -> None:
    import coremltools as ct

    if on_macos():
        run.skip("this limitation exists off Apple platforms; on macOS Core ML predicts (see the fixed variant)")
    package = convert_to_coreml(run.cache, saved_model(run.cache, SPEC))
    x, _ = trained_model(run.cache, SPEC).probe()
    name = spec_summary(package)["inputs"][0]["name"]
    ct.models.MLModel(str(package), skip_model_load=True).predict({name: x[:1]})  # the Linux CI's check


def fixed(run: Run[CoremlTarget]) -> dict[str, float]:
    trained = trained_model(run.cache, SPEC)
    package = convert_to_coreml(run.cache, saved_model(run.cache, SPEC))
    summary = run.note("spec", spec_summary(package))
    x, expected = trained.probe()
    figures = {"spec_input_features": float(summary["inputs"][0]["shape"][-1])}
    litert = run.enter(LitertTarget())
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    got = litert.predict(tflite, [x], resize=True)[0]
    figures["litert_max_abs_diff"] = max_abs_diff(got, expected)
    if on_macos():
        figures["coreml_max_abs_diff"] = max_abs_diff(run.target.predict_array(package, x[:1]), expected[:1])
    return figures


SCENARIO = Scenario(
    title="Core ML prediction is not available on Linux",
    targets=("coreml",),
    figures={"litert_max_abs_diff": "parity", "spec_input_features": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"^Model prediction is only supported on macOS version 10\.13 or later\.$"),
    remedy=succeeds(Figure("spec_input_features", ">=", 8), Figure("spec_input_features", "<=", 8),
                    Figure("litert_max_abs_diff", "<=", 1e-5)),
    cause="Core ML is a closed Apple framework; coremltools on Linux has no runtime to call, so "
          "`MLModel.predict` raises 'Model prediction is only supported on macOS version 10.13 or "
          "later.' A team whose CI runs on Linux cannot check its converted model's numbers there, "
          "and mobile frameworks in general run only where their runtime exists (Core ML on Apple "
          "devices, NNAPI on Android, the Flex delegate only where it was linked).",
    fix="Split the checks by where their runtime exists: on Linux, check the Core ML spec (input "
        "and output shapes and types) against the trained model and the network's numbers on a "
        "runtime that runs there (LiteRT); run Core ML prediction parity on a macOS runner (the "
        "project's macOS workflow) or a device.",
    references=("https://apple.github.io/coremltools/docs-guides/source/model-prediction.html",
                "https://github.com/apple/coremltools/issues/2658",
                "https://github.com/onnx/onnx-coreml/issues/405"),
)
