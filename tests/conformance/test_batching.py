"""Server-side batching (``--enable_batching`` + ``--batching_parameters_file``).

The example model's ``batch_probe`` signature returns, per row, the number of rows of the
Session run that computed it: concurrent one-row requests that come back with a larger number
were merged into one batch by the server.
"""

from __future__ import annotations

import concurrent.futures
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
