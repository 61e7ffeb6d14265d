"""A model with ops outside the TF Lite builtin set: string parsing inside the serving function."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.artifacts import ArtifactCache, library_versions
from harness.errors import RuntimeFailure
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("dense", "keras3")


def csv_saved_model(cache: ArtifactCache) -> Path:
    """The dense model behind a serving function that takes raw CSV lines (a TF Serving habit)."""
    trained = trained_model(cache, SPEC)
    key = {"csv_parsing_over": trained.dir.name, "versions": library_versions("tensorflow", "keras")}

    def build(out: Path) -> None:
        import tensorflow as tf

        class CsvModel(tf.Module):
            def __init__(self, model: Any) -> None:
                super().__init__()
                self.model = model

            @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="csv")])
            def serve(self, lines: tf.Tensor) -> dict[str, tf.Tensor]:
                fields = tf.strings.split(lines, ",").to_tensor()
                features = tf.reshape(tf.strings.to_number(fields, tf.float32), [-1, 8])
                return {"probabilities": self.model(features)}

        module = CsvModel(trained.load())
        tf.saved_model.save(module, str(out / "saved_model"), signatures={"serving_default": module.serve})

    return cache.get_or_build("saved_model", key, build) / "saved_model"


def csv_lines(x: "np.ndarray") -> list[str]:
    return [",".join(f"{v:.9g}" for v in row) for row in x]


def parse_csv_on_device(lines: list[str]) -> "np.ndarray":
    """The rewrite: parsing moves out of the model into app code (here numpy in the worker)."""
    import numpy as np

    return np.array([[float(v) for v in line.split(",")] for line in lines], dtype="float32")


def predict_from_csv(model_path: str, lines: list[str]) -> "np.ndarray":
    from harness.targets.litert.worker import predict

    probabilities: "np.ndarray" = predict(model_path, [parse_csv_on_device(lines)], resize=True)[0]
    return probabilities


def faulty(run: Run[LitertTarget]) -> None:
    convert_to_tflite(run.cache, csv_saved_model(run.cache))


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    import numpy as np
    import tensorflow as tf

    trained = trained_model(run.cache, SPEC)
    lines = csv_lines(trained.probe()[0])
    source = csv_saved_model(run.cache)
    expected = tf.saved_model.load(str(source)).signatures["serving_default"](
        csv=tf.constant(lines))["probabilities"].numpy()

    # Option 1, Select TF ops: the converter embeds the TF kernels as Flex ops. It converts, but
    # the device runtime must link the Flex delegate; the plain LiteRT interpreter refuses it.
    flex = convert_to_tflite(run.cache, source, select_tf_ops=True)
    run.note("select_tf_ops_bytes", flex.stat().st_size)
    try:
        run.target.predict(flex, [np.array([s.encode() for s in lines], dtype=object)], resize=True)
        refused = 0.0
    except RuntimeFailure as exc:
        run.observe(exc.message)
        refused = float("Flex delegate" in exc.message)
    run.figure("select_tf_ops_refused_by_litert", refused)

    # Option 2, the rewrite: parse on the device, convert only the numeric model (builtins only).
    numeric = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    got = run.target.call(predict_from_csv, str(numeric), lines, profile=PROFILES["host"])
    run.note("builtin_only_bytes", numeric.stat().st_size)
    return {"max_abs_diff": max_abs_diff(got, expected)}


SCENARIO = Scenario(
    title="String parsing inside the model: ops outside the TF Lite builtin set",
    targets=("litert",),
    figures={"max_abs_diff": "parity", "select_tf_ops_refused_by_litert": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Some ops are not supported by the native TFLite runtime, you can enable TF "
                   r"kernels fallback using TF Select\..*TF Select ops: RaggedTensorToTensor, StringSplitV2, StringToNumber"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-5),
                    Figure("select_tf_ops_refused_by_litert", ">=", 1)),
    cause="TF Lite implements a fixed set of builtin ops. A SavedModel whose serving function "
          "parses raw strings (tf.strings.split, tf.strings.to_number), a habit from TF Serving, "
          "uses TensorFlow ops that have no TF Lite kernel, and the converter stops with "
          "'Some ops are not supported by the native TFLite runtime' followed by the list "
          "'TF Select ops: ...'. Converting with SELECT_TF_OPS makes a model that embeds Flex "
          "ops, but a runtime without the Flex delegate (the plain LiteRT interpreter, or an app "
          "without the tensorflow-lite-select-tf-ops dependency) refuses it at allocation: "
          "'Select TensorFlow op(s) ... are not supported by this interpreter'.",
    fix="Rewrite the model so that only builtin ops remain: parse the text in the app and feed "
        "the model float features (here the parsing runs next to the interpreter and the outputs "
        "match the TF model on the same CSV lines). Use SELECT_TF_OPS only when the app ships the "
        "Flex delegate, which adds megabytes to the binary; both paths are shown here.",
    references=("https://ai.google.dev/edge/litert/models/ops_select",
                "https://ai.google.dev/edge/litert/models/ops_compatibility",
                "https://github.com/tensorflow/tensorflow/issues/62097"),
)
