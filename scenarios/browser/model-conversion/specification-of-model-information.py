"""A signature name the SavedModel does not have; the fix reads the signature from the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache
from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import run_converter
from harness.targets.tfjs.kit import MODEL_URL, model_page

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")

# Feed and fetch by the names read from the SavedModel's signature (input key, output key).
EXECUTE_BY_NAME = """async ({url, x, input, output}) => {
  const m = await tf.loadGraphModel(url);
  return m.execute({[input]: tf.tensor(x)}, output).array();
}"""


def serving_signatures(cache: ArtifactCache, saved_model_dir: Path) -> dict[str, list[list[str]]]:
    """Signature keys of the 'serve' graph with their input and output names (what
    `saved_model_cli show --dir DIR --tag_set serve` prints), read from saved_model.pb and cached."""

    def build(out: Path) -> None:
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((saved_model_dir / "saved_model.pb").read_bytes())
        graph = next(g for g in proto.meta_graphs if "serve" in g.meta_info_def.tags)
        found = {key: [sorted(sig.inputs), sorted(sig.outputs)] for key, sig in graph.signature_def.items()
                 if not key.startswith("__")}
        (out / "signatures.json").write_text(json.dumps(found, indent=1))

    built = cache.get_or_build("signatures", {"saved_model": cache.source_key(saved_model_dir)}, build)
    return dict(json.loads((built / "signatures.json").read_text()))


def faulty(run: Run[TfjsTarget]) -> None:
    # "predict" is the signature name of TF1 Estimator exports, copied from an old tutorial.
    run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
                              "--signature_name=predict"], saved_model(run.cache, SPEC))


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    source = saved_model(run.cache, SPEC)
    signatures = run.note("signatures", serving_signatures(run.cache, source))
    name, (inputs, outputs) = next(iter(signatures.items()))
    converted = run_converter(run.cache, ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
                                          f"--signature_name={name}"], source)
    page = model_page(run, converted)
    x, expected = trained_model(run.cache, SPEC).probe()
    got = page.evaluate(EXECUTE_BY_NAME, {"url": MODEL_URL, "x": x.tolist(),
                                          "input": inputs[0], "output": outputs[0]})
    return {"max_abs_diff": max_abs_diff(got, expected), "signatures": float(len(signatures))}


SCENARIO = Scenario(
    title="--signature_name that the SavedModel does not define",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity", "signatures": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r'ValueError: Signature "predict" does not exist in the saved model',
                   runtime="tensorflowjs converter"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4), Figure("signatures", ">=", 1)),
    cause="A SavedModel's entry points are named signatures, each with named inputs and outputs. "
          "tensorflowjs_converter converts exactly one (`--signature_name`, default serving_default); "
          "a name copied from another model or an old tutorial (Estimator exports used 'predict') "
          "does not exist in a Keras SavedModel, and the converter stops.",
    fix="Read the model's information instead of guessing it: `saved_model_cli show --dir DIR "
        "--tag_set serve` (or the signature_def map in saved_model.pb, as here) lists the signature "
        "keys with their input and output names. Convert with that signature and, in the page, feed "
        "and fetch with the same names: `model.execute({input_1: x}, 'dense_1')`.",
    references=("https://www.tensorflow.org/guide/saved_model#details_of_the_savedmodel_command_line_interface",
                "https://github.com/tensorflow/tfjs/tree/master/tfjs-converter",
                "https://js.tensorflow.org/api/latest/#class:GraphModel"),
)
