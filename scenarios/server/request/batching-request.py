"""N examples as N requests vs one request holding a batch of N rows: latency measured."""

from __future__ import annotations

from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import serve_versions

SPEC = ModelSpec("dense", "keras3")
ROWS = 64


def _measure(run: Run) -> dict[str, float]:
    """Time the same ROWS examples sent one per request and as one batch, on one server."""
    import time

    import numpy as np

    x, y = trained_model(run.cache, SPEC).test_set()
    x, y = x[:ROWS], y[:ROWS]
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    server.predict({"instances": x[:2].tolist()})  # warm the session and the connection path
    started = time.perf_counter()
    singles = np.concatenate([server.predict({"instances": [row.tolist()]})["predictions"] for row in x])
    one_per_request = time.perf_counter() - started
    started = time.perf_counter()
    batch = np.asarray(server.predict({"instances": x.tolist()})["predictions"])
    one_batch = time.perf_counter() - started
    run.note("seconds", {"one_request_per_row": one_per_request, "one_batch_request": one_batch})
    return {"slowdown_one_request_per_row": one_per_request / one_batch,
            "batch_vs_single_max_abs_diff": float(np.max(np.abs(batch - singles))),
            "batch_accuracy": float(np.mean(np.argmax(batch, axis=1) == y))}


def faulty(run: Run) -> dict[str, float]:
    # Judged on the cost of the one-row-per-request loop, relative to one batch.
    return _measure(run)


def fixed(run: Run) -> dict[str, float]:
    # Judged on the batch: same predictions as the one-row replies, right labels, and faster.
    return _measure(run)


SCENARIO = Scenario(
    title=f"{ROWS} rows sent as {ROWS} REST requests vs one request with a batch of {ROWS}",
    targets=("tfserving",),
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("slowdown_one_request_per_row", ">=", 3.0),
    remedy=succeeds(Figure("batch_vs_single_max_abs_diff", "<=", 1e-5), Figure("batch_accuracy", ">=", 0.85),
                    Figure("slowdown_one_request_per_row", ">=", 3.0)),
    cause="Every REST request pays a fixed cost: a connection, HTTP and JSON parsing, a lookup "
          "of the servable, one Session run with its own thread hand-offs, JSON writing. For a "
          "small model that overhead dwarfs the arithmetic, so sending examples one per request "
          "makes the client wait many times longer than one request that carries them all "
          f"(measured here on the same server: {ROWS} requests vs one batch).",
    fix="Put the examples in one request, as the `instances` list (or the first dimension of the "
        "`inputs` tensors): the signature's batch dimension is -1, so one Session run computes all "
        "rows, and the reply has one prediction per row, equal to the one-row replies. For many "
        "independent clients, server-side batching (--enable_batching) merges their requests.",
    references=("https://www.tensorflow.org/tfx/serving/api_rest",
                "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/batching/README.md"),
)
