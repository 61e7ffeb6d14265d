"""The load procedure: model.json fetched, then its weight shards by paths relative to model.json."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.page import PREDICT_LAYERS_JS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("dense", "tf_keras")


def faulty(run: Run[TfjsTarget]) -> None:
    # The deploy step copied model.json into the app folder, but the shards stayed in /static/model/.
    trained = trained_model(run.cache, SPEC)
    converted = convert_layers_model(run.cache, trained)
    page = run.enter(run.target.page({"/static/model/": converted}, observe=run.observe,
                                     files={"/app/model.json": (converted / "model.json").read_bytes()}))
    try:
        page.evaluate(PREDICT_LAYERS_JS, {"url": "/app/model.json", "x": trained.probe()[0].tolist()})
    finally:
        run.note("requests", [f"{r.path} {r.status}" for r in page.server.requests if r.path.startswith(("/app/", "/static/"))])


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    import json

    trained = trained_model(run.cache, SPEC)
    converted = convert_layers_model(run.cache, trained)
    page = run.enter(run.target.page({"/static/model/": converted}, observe=run.observe))
    x, expected = trained.probe()
    got = page.evaluate(PREDICT_LAYERS_JS, {"url": "/static/model/model.json", "x": x.tolist()})
    manifest = json.loads((converted / "model.json").read_text())["weightsManifest"]
    shards = {p for group in manifest for p in group["paths"]}
    fetched = {r.path.rsplit("/", 1)[-1] for r in page.server.served("/static/model/") if r.status == 200}
    run.note("requests", [f"{r.path} {r.status}" for r in page.server.served("/static/")])
    return {"max_abs_diff": max_abs_diff(got, expected),
            "shards_not_fetched": float(len(shards - fetched))}


SCENARIO = Scenario(
    title="Weight shards not found next to model.json",
    targets=("tfjs",),
    figures={"max_abs_diff": "parity", "shards_not_fetched": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"byte length of Float32Array should be a multiple of 4.*status of 404 \(Not Found\)",
                   runtime="tfjs"),
    remedy=succeeds(Figure("max_abs_diff", "<=", 1e-4), Figure("shards_not_fetched", "<=", 0)),
    cause="model.json lists its weight files (`weightsManifest[].paths`, e.g. "
          "group1-shard1of1.bin) relative to its own URL. When model.json is deployed without its "
          "shards beside it, every shard request returns 404; tf.js does not check the status of "
          "weight responses and decodes the 9-byte error body as float32 weights, failing with "
          "'RangeError: byte length of Float32Array should be a multiple of 4' (with another error "
          "page length it would fail on the tensor size instead).",
    fix="Deploy the converter's output directory as a whole and load model.json from it (or pass "
        "`{weightPathPrefix: '/static/model/'}` to loadLayersModel when shards live elsewhere); "
        "check the network panel that every shard answers 200.",
    references=("https://www.tensorflow.org/js/guide/save_load",
                "https://js.tensorflow.org/api/latest/#loadLayersModel",
                "https://github.com/tensorflow/tfjs/issues/3509"),
)
