"""N examples as N requests vs one request holding a batch of N rows: latency measured."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from harness.compare import accuracy, max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, serve_versions

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfserving.target import TfservingTarget

T = TypeVar("T")

SPEC = ModelSpec("dense", "keras3")
ROWS = 64


def _served_rows(run: "Run[TfservingTarget]") -> tuple[Server, "np.ndarray", "np.ndarray"]:
    """The served model (warmed up) and ROWS labelled test examples."""
    x, y = trained_model(run.cache, SPEC).test_set()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    server.predict({"instances": x[:2].tolist()})  # warm the session and the connection path
    return server, x[:ROWS], y[:ROWS]


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _figures(run: "Run[TfservingTarget]", singles: "np.ndarray", one_per_request: float, batch: "np.ndarray",
             one_batch: float, y: "np.ndarray") -> dict[str, float]:
    run.note("seconds", {"one_request_per_row": one_per_request, "one_batch_request": one_batch})
    return {"slowdown_one_request_per_row": one_per_request / one_batch,
            "batch_vs_single_max_abs_diff": max_abs_diff(batch, singles), "batch_accuracy": accuracy(batch, y)}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    server, x, y = _served_rows(run)
    # The client's loop: one request per example, each paying the whole per-request cost.
    singles, one_per_request = _timed(lambda: np.concatenate(
        [server.predict({"instances": [row.tolist()]})["predictions"] for row in x]))
    # The same rows in one request, timed only as the yardstick.
    batch, one_batch = _timed(lambda: np.asarray(server.predict({"instances": x.tolist()})["predictions"]))
    return _figures(run, singles, one_per_request, batch, one_batch, y)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    server, x, y = _served_rows(run)
    # One request holding all the rows: the signature's batch dimension is -1, one Session run.
    batch, one_batch = _timed(lambda: np.asarray(server.predict({"instances": x.tolist()})["predictions"]))
    # The one-row-per-request loop it replaces, timed for the comparison (and its answers for parity).
    singles, one_per_request = _timed(lambda: np.concatenate(
        [server.predict({"instances": [row.tolist()]})["predictions"] for row in x]))
    return _figures(run, singles, one_per_request, batch, one_batch, y)


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
