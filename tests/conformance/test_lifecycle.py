"""Server lifecycle like ``tensorflow_model_server``: flags, startup failures, model discovery,
version switching without failed requests, version labels, shutdown.

These start our server with particular flags, so they are skipped against an external server.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from .conftest import ModelStore, write_model_config
from .support import ServerProcess, grpc_stubs, http, wait_for

pytestmark = pytest.mark.slow  # starts TensorFlow server processes


@dataclasses.dataclass(frozen=True)
class Exited:
    code: int
    stdout: str
    log: str


def _copy_version(source: Path, base: Path, version: int) -> None:
    """Copy a version directory in atomically (copy aside, then rename), as TF Serving advises."""
    staging = base.parent / f".staging-{base.name}-{version}"
    shutil.copytree(source, staging)
    base.mkdir(parents=True, exist_ok=True)
    staging.rename(base / str(version))


# ------------------------------------------------------------------ servers


@dataclasses.dataclass(frozen=True)
class Launched:
    """Every server this module needs, started at once so their start-ups overlap."""

    failing: dict[str, ServerProcess]
    late: ServerProcess
    late_base: Path
    swap: ServerProcess
    swap_base: Path
    labelled: ServerProcess


def _failing_cases(root: Path, store: ModelStore) -> dict[str, list[str]]:
    broken = root / "broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    labels = write_model_config(root / "labels.config", {"tiny": store.keras_base},
                                '    version_labels { key: "stable" value: 1 }\n')
    keras_file = root / "keras_file"
    (keras_file / "1").mkdir(parents=True)
    (keras_file / "1" / "model.keras").write_bytes(b"PK\x03\x04 a zip, not a SavedModel")
    batching = root / "allowed_sizes.pbtxt"
    batching.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
    return {
        "no_saved_model": ["--model_name=keras_file", f"--model_base_path={keras_file}", "--max_num_load_retries=0"],
        "allowed_batch_sizes": ["--model_name=tiny", f"--model_base_path={store.keras_base}", "--enable_batching",
                                f"--batching_parameters_file={batching}", "--max_num_load_retries=0"],
        "no_model": [],
        "bad_port": ["--port=abc"],
        "help": ["--help"],
        "labels_unavailable": [f"--model_config_file={labels}"],
        "load_error": ["--model_name=broken", f"--model_base_path={broken}", "--max_num_load_retries=0"],
        "bad_config": [f"--model_config_file={root / 'missing.config'}"],
        "batching_file_without_batching": ["--model_name=tiny", f"--model_base_path={store.keras_base}",
                                           f"--batching_parameters_file={labels}"],
        "relative_base_path": ["--model_name=tiny", "--model_base_path=relative/path"],
        "wrong_tags": ["--model_name=tiny", f"--model_base_path={store.keras_base}", "--saved_model_tags=gpu",
                       "--max_num_load_retries=0"],
    }


@pytest.fixture(scope="module")
def launched(model_store: ModelStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launched]:
    from .conftest import _external

    if _external():
        pytest.skip("needs to start the TF Serving-compatible server with particular flags")
    root = tmp_path_factory.mktemp("lifecycle")
    failing = {name: ServerProcess(args, root / name).start()
               for name, args in _failing_cases(root, model_store).items()}
    late_base = root / "models" / "late"
    swap_base = root / "swap"
    _copy_version(model_store.keras_base / "1", swap_base, 1)
    labelled_base = root / "labelled"
    for version in (1, 2):
        _copy_version(model_store.example_base / "1", labelled_base, version)
    config = write_model_config(
        root / "labelled.config", {"labelled": labelled_base},
        "    model_version_policy { all {} }\n"
        '    version_labels { key: "stable" value: 1 }\n    version_labels { key: "canary" value: 2 }\n')
    servers = Launched(
        failing=failing,
        late=ServerProcess(["--model_name=late", f"--model_base_path={late_base}", "--no_such_flag=1"],
                           root / "late").start(),
        late_base=late_base,
        swap=ServerProcess(["--model_name=swap", f"--model_base_path={swap_base}",
                            "--file_system_poll_wait_seconds=1"], root / "swap-server").start(),
        swap_base=swap_base,
        labelled=ServerProcess([f"--model_config_file={config}", "--allow_version_labels_for_unavailable_models",
                                "--max_num_load_retries=0"], root / "labelled-server").start())
    yield servers
    for server in [servers.late, servers.swap, servers.labelled, *failing.values()]:
        server.terminate()


# ------------------------------------------------------------------ startup failures


@pytest.fixture(scope="module")
def startup_failures(launched: Launched) -> dict[str, Exited]:
    results = {}
    # one budget for the whole set, started together: a guard against a hang, not a timed check. The
    # first test that reads this pays for every server of `launched` (a bad flag alone exits in 0.1 s);
    # the failing servers stop before TensorFlow is imported, the three that serve import it at once
    # (over 120 s each beside other work on 2 cores, when all fourteen did)
    deadline = time.monotonic() + 900
    for name, server in launched.failing.items():
        code = server.wait_exit(timeout=deadline - time.monotonic())
        results[name] = Exited(code, server.stdout_text(), server.log_text())
    return results


def test_bad_flag_value_exits_255(startup_failures: dict[str, Exited]) -> None:
    result = startup_failures["bad_port"]
    assert result.code == 255
    assert "Couldn't interpret value abc for flag port." in result.log
    assert result.stdout.startswith("usage: ")


def test_help_exits_255_with_usage(startup_failures: dict[str, Exited]) -> None:
    result = startup_failures["help"]
    assert result.code == 255
    assert "--model_base_path" in result.stdout


@pytest.mark.parametrize(("case", "error"), [
    ("no_saved_model", "UNKNOWN: 1 servable(s) did not become available: {{{name: keras_file version: 1} due to "
                       "error: NOT_FOUND: Specified file path does not appear to contain a SavedModel bundle (should "
                       "have a file called `saved_model.pb`)\nSpecified file path: "),
    ("allowed_batch_sizes", "UNKNOWN: 1 servable(s) did not become available: {{{name: tiny version: 1} due to "
                            "error: INVALID_ARGUMENT: Last entry in allowed_batch_sizes must match max_batch_size; "
                            "last entry was 4; expected 8}, }"),
    ("no_model", "INVALID_ARGUMENT: Both server_options.model_base_path and server_options.model_config_file "
                 "are empty!"),
    ("labels_unavailable", "FAILED_PRECONDITION: Request to assign label to version 1 of model tiny, which is "
                           "not currently available for inference"),
    ("load_error", "UNKNOWN: 1 servable(s) did not become available: {{{name: broken version: 1} due to error: "
                   "DATA_LOSS: Can't parse "),
    ("bad_config", "NOT_FOUND: "),
    ("batching_file_without_batching", "INVALID_ARGUMENT: server_options.batching_parameters_file is set without "
                                       "setting server_options.enable_batching to true."),
    ("relative_base_path", "INVALID_ARGUMENT: Expected model tiny to have an absolute path or URI; "
                           "got base_path()=relative/path"),
    ("wrong_tags", "UNKNOWN: 1 servable(s) did not become available: {{{name: tiny version: 1} due to error: "
                   "NOT_FOUND: Could not find meta graph def matching supplied tags: { gpu }. To inspect available "
                   "tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`}, }"),
])
def test_startup_failure(startup_failures: dict[str, Exited], case: str, error: str) -> None:
    result = startup_failures[case]
    assert result.code == 255, result.log[-2000:]
    assert f"Failed to start server. Error: {error}" in result.stdout, result.stdout


# ------------------------------------------------------------------ discovery


def test_waits_for_a_version_then_serves(launched: Launched, model_store: ModelStore) -> None:
    """Missing base path, then empty base path: logged, ports closed; a version appears: served."""
    server, base = launched.late, launched.late_base
    wait_for(lambda: "Could not find base path" in server.log_text(), 60, "missing base path logged")
    assert (f"FileSystemStoragePathSource encountered a filesystem access error: Could not find base path {base} "
            f"for servable late with error NOT_FOUND: {base} not found") in server.log_text()
    with pytest.raises(OSError):  # TF Serving opens its ports only after the initial load
        http("GET", f"{server.rest_url}/v1/models/late", timeout=1)
    base.mkdir(parents=True)
    wait_for(lambda: "No versions of servable late" in server.log_text(), 30, "empty base path logged")
    assert (f"No versions of servable late found under base path {base}. Did you forget to name your leaf "
            "directory as a number (eg. '/1/')?") in server.log_text()
    _copy_version(model_store.keras_base / "1", base, 7)
    server.wait_ready("late", timeout=60)
    (entry,) = http("GET", f"{server.rest_url}/v1/models/late").json()["model_version_status"]
    assert (entry["version"], entry["state"]) == ("7", "AVAILABLE")
    assert server.stdout_text().startswith("unknown argument: --no_such_flag=1\n")


def test_new_version_swaps_in_without_failed_requests(launched: Launched, model_store: ModelStore) -> None:
    server, base = launched.swap, launched.swap_base
    server.wait_ready("swap")
    channel, prediction, _ = grpc_stubs(server.grpc_address)
    seen: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "swap"
        request.inputs["keras_tensor"].CopyFrom(tf.make_tensor_proto(np.ones((2, 8), np.float32)))
        while not stop.is_set():
            try:
                seen.append(prediction.Predict(request, timeout=30).model_spec.version.value)
            except Exception as error:  # noqa: BLE001 - every failure is evidence
                failures.append(repr(error))

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(seen) > 20, 30, "requests served by version 1")
        _copy_version(model_store.keras_base / "1", base, 2)

        def swapped() -> bool:
            states = {e["version"]: e["state"] for e in
                      http("GET", f"{server.rest_url}/v1/models/swap").json()["model_version_status"]}
            return states == {"2": "AVAILABLE", "1": "END"}

        wait_for(swapped, 60, "version 2 AVAILABLE and version 1 END")
        count = len(seen)
        wait_for(lambda: len(seen) > count + 20, 30, "requests after the swap")
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        channel.close()
    assert failures == []
    assert seen[0] == 1 and seen[-1] == 2
    assert "Quiescing servable version {name: swap version: 1}" in server.log_text()
    elapsed = server.terminate()
    assert elapsed < 2.0
    assert server.returncode() == 0


def test_version_policy_all_and_labels(launched: Launched, model_store: ModelStore) -> None:
    server = launched.labelled
    server.wait_ready("labelled")
    wait_for(lambda: [e["state"] for e in http("GET", f"{server.rest_url}/v1/models/labelled").json()[
        "model_version_status"]] == ["AVAILABLE", "AVAILABLE"], 60, "both versions loaded")
    states = [(e["version"], e["state"]) for e in
              http("GET", f"{server.rest_url}/v1/models/labelled").json()["model_version_status"]]
    assert states == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
    for label in ("stable", "canary"):
        reply = http("POST", f"{server.rest_url}/v1/models/labelled/labels/{label}:predict", {"instances": [[2.0]]})
        assert reply.json() == {"predictions": [[3.0]]}
    channel, prediction, _ = grpc_stubs(server.grpc_address)
    try:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.version_label = "labelled", "stable"
        request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([[1.0]], np.float32)))
        assert prediction.Predict(request, timeout=30).model_spec.version.value == 1
        _reload_config_swaps_models(server, model_store, channel)
    finally:
        channel.close()


def _reload_config_swaps_models(server: ServerProcess, model_store: ModelStore, channel: Any) -> None:
    """``ModelService.HandleReloadConfigRequest``: the new list replaces the old one."""
    import grpc
    from google.protobuf import text_format
    from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

    stub = model_service_pb2_grpc.ModelServiceStub(channel)
    tiny = f'config {{ name: "tiny" base_path: "{model_store.keras_base}" model_platform: "tensorflow" }}'
    # A reload waits for the models new in the config (ServerCore::WaitUntilModelsAvailable): one
    # that cannot load makes the reload fail, counted as "model(s)", not "servable(s)".
    broken = server.workdir / "reload-broken"
    (broken / "1").mkdir(parents=True)
    (broken / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    failing = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(f'model_config_list {{ {tiny} config {{ name: "broken" base_path: "{broken}" '
                      'model_platform: "tensorflow" } }', failing.config)
    with pytest.raises(grpc.RpcError) as caught:
        stub.HandleReloadConfigRequest(failing, timeout=120)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert caught.value.details().startswith(
        "1 model(s) did not become available: {{{name: broken version: 1} due to error: DATA_LOSS: Can't parse ")
    request = model_management_pb2.ReloadConfigRequest()
    text_format.Parse(f"model_config_list {{ {tiny} }}", request.config)
    response = stub.HandleReloadConfigRequest(request, timeout=60)
    assert response.status.error_code == 0
    assert http("GET", f"{server.rest_url}/v1/models/tiny").json()["model_version_status"][0]["state"] == "AVAILABLE"
    wait_for(lambda: {e["state"] for e in http("GET", f"{server.rest_url}/v1/models/labelled").json()[
        "model_version_status"]} == {"END"}, 30, "the removed model unloaded")
