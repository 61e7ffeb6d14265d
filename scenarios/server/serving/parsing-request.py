"""A request body the server cannot parse: both ``instances`` and ``inputs`` in one JSON object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfserving.kit import probe_diff, serve_spec

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")


def faulty(run: "Run[TfservingTarget]") -> None:
    server = serve_spec(run, SPEC)
    x, _ = trained_model(run.cache, SPEC).probe()
    # A truncated body (a client that streamed half a JSON document) is refused by the parser too.
    broken = server.request("POST", server.model_path() + ":predict", raw=b'{"instances": [[1.0, 2.0')
    run.observe(f"truncated JSON: HTTP {broken.status} {broken.text.strip()}")
    # Row format and columnar format mixed in one request: the server refuses to guess.
    server.predict({"instances": x[:2].tolist(), "inputs": x[:2].tolist()})


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    server = serve_spec(run, SPEC)
    x, expected = trained_model(run.cache, SPEC).probe()
    columns = server.predict({"inputs": x.tolist()})["outputs"]  # columnar format
    return {"max_abs_diff_instances": probe_diff(server, run.cache, SPEC),  # row format
            "max_abs_diff_inputs": max_abs_diff(columns, expected)}


SCENARIO = Scenario(
    title="Request body with both 'instances' and 'inputs' is rejected by the REST parser",
    targets=("tfserving",),
    figures={"max_abs_diff_inputs": "parity", "max_abs_diff_instances": "parity"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist",
                   runtime="tfserving"),
    remedy=succeeds(Figure("max_abs_diff_instances", "<=", 1e-5), Figure("max_abs_diff_inputs", "<=", 1e-5)),
    cause="TF Serving's REST handler parses the body itself (rapidjson, then json_tensor.cc): the body "
          "must be one JSON object holding exactly one of `instances` (row format: a list with one entry "
          "per example) or `inputs` (columnar format: one entry per named input). A client that sends "
          "both, e.g. by merging two request templates, gets HTTP 400 and the parser's message; a "
          "truncated or otherwise malformed body gets 'JSON Parse error: ...'.",
    fix="Send one format: `{\"instances\": [[...], ...]}` (answer under `predictions`) or "
        "`{\"inputs\": [[...], ...]}` (answer under `outputs`), serialised with a JSON library, never "
        "assembled by hand. Both give the Keras model's outputs.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/util/json_tensor.cc"),
)
