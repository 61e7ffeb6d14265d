"""N examples as N requests vs one request holding a batch of N rows: latency measured.

The two ways are timed as benchmarks time them (:mod:`harness.timing`): after a warm-up pair, in
alternating pairs (loop, batch, batch, loop ...), with the verdict on the median of the paired
ratios.  Why the bound holds on a busy machine: a pair runs within a second, so a burst of other
work slows both of its halves, and the loop's extra cost is 63 more round trips of the same
per-request work, which a busy machine makes slower, not cheaper.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from typing import TYPE_CHECKING

from harness.compare import accuracy, max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import Server, serve_versions
from harness.timing import interleaved, record_ratios

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.tfserving.target import TfservingTarget

SPEC = ModelSpec("dense", "keras3")
ROWS = 64


def _served_rows(run: "Run[TfservingTarget]") -> tuple[Server, "np.ndarray", "np.ndarray"]:
    """The served model (warmed up) and ROWS labelled test examples."""
    x, y = trained_model(run.cache, SPEC).test_set()
    server = serve_versions(run, {1: saved_model(run.cache, SPEC)})
    server.predict({"instances": x[:2].tolist()})  # warm the session and the connection path
    return server, x[:ROWS], y[:ROWS]


def _figures(run: "Run[TfservingTarget]", one_request_per_row: "Callable[[], np.ndarray]",
             one_batch_request: "Callable[[], np.ndarray]", y: "np.ndarray") -> dict[str, float]:
    """Both ways' answers, then their times in interleaved pairs (the first pair a discarded warm-up)."""
    singles, batch = one_request_per_row(), one_batch_request()
    pairs = interleaved(one_request_per_row, one_batch_request, warmup=1, repeats=5, max_repeats=15)
    run.note("median_seconds", {"one_request_per_row": statistics.median(pairs.a_seconds),
                                "one_batch_request": statistics.median(pairs.b_seconds)})
    return {"slowdown_one_request_per_row": record_ratios(run, "slowdown_one_request_per_row", pairs),
            "batch_vs_single_max_abs_diff": max_abs_diff(batch, singles), "batch_accuracy": accuracy(batch, y)}


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    server, x, y = _served_rows(run)
    # The client's loop: one request per example, each paying the whole per-request cost.
    def one_request_per_row() -> "np.ndarray":
        return np.concatenate([server.predict({"instances": [row.tolist()]})["predictions"] for row in x])
    # The same rows in one request, timed only as the yardstick.
    def one_batch_request() -> "np.ndarray":
        return np.asarray(server.predict({"instances": x.tolist()})["predictions"])
    return _figures(run, one_request_per_row, one_batch_request, y)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    import numpy as np

    server, x, y = _served_rows(run)
    # One request holding all the rows: the signature's batch dimension is -1, one Session run.
    def one_batch_request() -> "np.ndarray":
        return np.asarray(server.predict({"instances": x.tolist()})["predictions"])
    # The one-row-per-request loop it replaces, timed for the comparison (and its answers for parity).
    def one_request_per_row() -> "np.ndarray":
        return np.concatenate([server.predict({"instances": [row.tolist()]})["predictions"] for row in x])
    return _figures(run, one_request_per_row, one_batch_request, y)


SCENARIO = Scenario(
    title=f"{ROWS} rows sent as {ROWS} REST requests vs one request with a batch of {ROWS}",
    targets=("tfserving",),
    figures={"batch_accuracy": "exact", "batch_vs_single_max_abs_diff": "parity",
             "slowdown_one_request_per_row": "ratio"},
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
