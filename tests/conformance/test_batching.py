"""Server-side batching (``--enable_batching`` + ``--batching_parameters_file``).

The example model's ``batch_probe`` signature returns, per row, the number of rows of the
Session run that computed it: concurrent one-row requests that come back with a larger number
were merged into one batch by the server.
"""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path
from typing import Callable

import pytest

from .conftest import ModelStore
from .support import ServerProcess, http

StartServer = Callable[..., ServerProcess]
PARAMETERS = """
max_batch_size { value: 8 }
batch_timeout_micros { value: 400000 }
max_enqueued_batches { value: 4 }
num_batch_threads { value: 1 }
"""

pytestmark = pytest.mark.slow  # starts TensorFlow server processes


def _probe(server: ServerProcess, rows: int) -> tuple[int, dict[str, object]]:
    reply = http("POST", f"{server.rest_url}/v1/models/half:predict",
                 {"signature_name": "batch_probe", "instances": [[1.0]] * rows})
    return reply.status, reply.json()


def test_concurrent_requests_are_merged(start_server: StartServer, model_store: ModelStore, tmp_path: Path) -> None:
    parameters = tmp_path / "batching.pbtxt"
    parameters.write_text(PARAMETERS)
    server = start_server(["--model_name=half", f"--model_base_path={model_store.example_base}",
                           "--enable_batching", f"--batching_parameters_file={parameters}"])
    server.wait_ready("half")
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: _probe(server, 1), range(8)))
    assert all(status == 200 for status, _ in replies), replies
    batch_sizes = [body["predictions"][0]["batch_size"] for _, body in replies]  # type: ignore[index]
    assert max(batch_sizes) > 1, batch_sizes
    assert all(body["predictions"][0]["y"] == [2.5] for _, body in replies)  # type: ignore[index]

    status, body = _probe(server, 9)
    assert status == 400
    assert body == {"error": "Task size 9 is larger than maximum input batch size 8"}


def test_full_queue_counts_the_open_batch(start_server: StartServer, model_store: ModelStore,
                                          tmp_path: Path) -> None:
    """ValidateBatchTaskQueueCapacity (TF 2.19 shared_batch_scheduler.h): with one batch allowed,
    a task that does not fit the waiting open batch is refused; the open batch counts."""
    parameters = tmp_path / "batching.pbtxt"
    parameters.write_text("max_batch_size { value: 8 }\nbatch_timeout_micros { value: 3000000 }\n"
                          "max_enqueued_batches { value: 1 }\nnum_batch_threads { value: 1 }\n")
    server = start_server(["--model_name=half", f"--model_base_path={model_store.example_base}",
                           "--enable_batching", f"--batching_parameters_file={parameters}"])
    server.wait_ready("half")
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        waiting = pool.submit(_probe, server, 1)  # opens a batch that waits 3 s for more rows
        time.sleep(0.5)
        status, body = _probe(server, 8)  # 1 + 8 rows do not fit in 8: a new batch would be needed
        first = waiting.result(timeout=30)
    assert first[0] == 200
    assert status == 503
    assert body == {"error": "The batch scheduling queue to which this task was submitted is full; currently 1 "
                             "batches enqueued and max_enqueued_batches is 1"}
