"""The LiteRT target: worker errors, timeouts, clean-up and device profiles, on the real LiteRT.

The model is the zoo's dense Keras 3 model converted once through the artifact cache (TensorFlow
runs in this process only on a cache miss; LiteRT always runs in the target's worker processes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from harness.artifacts import ArtifactCache
from harness.errors import HarnessError, RuntimeFailure, WaitTimeout
from harness.models import ModelSpec, saved_model
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES, DeviceProfile, dequantize, quantize
from harness.targets.litert.target import LitertTarget

pytestmark = pytest.mark.skipif(LitertTarget.unavailable_reason() is not None,
                                reason=str(LitertTarget.unavailable_reason()))


def sleep_in_worker(seconds: float) -> float:
    """A call that hangs (module level, so the worker can import it)."""
    time.sleep(seconds)
    return seconds


def fail_in_our_code() -> None:
    """A bug in pitfalls' own code, raised inside the worker."""
    raise KeyError("a key our code forgot")


def process_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


@pytest.fixture(scope="module")
def dense_tflite() -> Path:
    cache = ArtifactCache()
    return convert_to_tflite(cache, saved_model(cache, ModelSpec("dense", "keras3")))


@pytest.fixture()
def target() -> Iterator[LitertTarget]:
    with LitertTarget(timeout=60) as t:
        yield t


def test_runtime_error_comes_back_as_runtime_failure_with_litert_text(target: LitertTarget,
                                                                      dense_tflite: Path) -> None:
    with pytest.raises(RuntimeFailure) as info:
        target.predict(dense_tflite, [np.zeros((1, 7), "float32")])
    assert info.value.runtime == "litert"
    assert info.value.kind == "ValueError"
    assert info.value.message.startswith(
        "Cannot set tensor: Dimension mismatch. Got 7 but expected 8 for dimension 1 of input 0.")
    assert "ai_edge_litert" in info.value.source


def test_batch_resizing_keeps_the_model_dimensions(target: LitertTarget, dense_tflite: Path) -> None:
    (out,) = target.predict(dense_tflite, [np.zeros((16, 8), "float32")], batch=True)
    assert out.shape == (16, 3)
    with pytest.raises(RuntimeFailure, match=r"Dimension mismatch\. Got 7 but expected 8 for dimension 1"):
        target.predict(dense_tflite, [np.zeros((16, 7), "float32")], batch=True)


def test_error_of_our_own_code_is_a_harness_error(target: LitertTarget) -> None:
    with pytest.raises(HarnessError) as info:
        target.call(fail_in_our_code)
    assert not isinstance(info.value, RuntimeFailure)
    assert "KeyError" in info.value.message
    assert "fail_in_our_code" in info.value.evidence


def test_hanging_call_times_out_and_its_worker_is_killed(target: LitertTarget) -> None:
    assert target.call(sleep_in_worker, 0.0) == 0.0
    (pid,) = target.worker_pids()
    started = time.perf_counter()
    with pytest.raises(WaitTimeout, match="did not finish sleep_in_worker"):
        target.call(sleep_in_worker, 60.0, timeout=1.5)
    assert time.perf_counter() - started < 15
    assert process_gone(pid)
    assert target.call(sleep_in_worker, 0.0) == 0.0  # a fresh worker serves the next call
    assert target.worker_pids() != [pid]


def test_no_worker_process_is_left_after_deactivate(dense_tflite: Path) -> None:
    with LitertTarget() as t:
        t.predict(dense_tflite, [np.zeros((1, 8), "float32")], profile=PROFILES["host"])
        t.predict(dense_tflite, [np.zeros((1, 8), "float32")], profile=PROFILES["no-xnnpack"])
        pids = t.worker_pids()
        assert len(pids) == 2 and all(not process_gone(p) for p in pids)
    assert all(process_gone(p) for p in pids)
    assert t.worker_pids() == []


def test_no_worker_process_is_left_when_the_block_fails(dense_tflite: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeFailure):
        with LitertTarget() as t:
            t.predict(dense_tflite, [np.zeros((1, 8), "float32")])
            pids = t.worker_pids()
            t.predict(dense_tflite, [np.zeros((2, 9), "float32")])
    assert pids and all(process_gone(p) for p in pids)


def test_profiles_apply_threads_xnnpack_affinity_and_memory_limit(target: LitertTarget,
                                                                  dense_tflite: Path) -> None:
    low_end = target.runtime_state(dense_tflite, profile=PROFILES["low-end"])
    assert low_end["cpus"] == [0]
    assert low_end["memory_limit_mb"] == 2048
    assert low_end["delegated_nodes"] >= 1  # XNNPACK took the graph over

    plain = target.runtime_state(dense_tflite, profile=PROFILES["no-xnnpack"])
    assert plain["delegated_nodes"] == 0
    assert "FULLY_CONNECTED" in plain["ops"]
    assert plain["memory_limit_mb"] is None
    assert plain["cpus"] == sorted(os.sched_getaffinity(0))

    one = target.runtime_state(dense_tflite, profile=DeviceProfile("t1", num_threads=1))
    four = target.runtime_state(dense_tflite, profile=DeviceProfile("t4", num_threads=4))
    assert four["threads"] >= one["threads"] + 3  # XNNPACK's pool: num_threads - 1 extra threads
    assert len({low_end["pid"], plain["pid"], one["pid"], four["pid"]}) == 4  # one worker per profile


def test_memory_limit_is_enforced_in_the_worker(target: LitertTarget) -> None:
    tight = DeviceProfile("tight", num_threads=1, memory_limit_mb=900)
    with pytest.raises(RuntimeFailure) as info:
        target.call(np.ones, (1024, 1024, 1024), profile=tight)
    assert info.value.kind == "MemoryError"


def test_time_invoke_reports_latencies(target: LitertTarget, dense_tflite: Path) -> None:
    timing = target.time_invoke(dense_tflite, [np.zeros((1, 8), "float32")], runs=5)
    assert set(timing) == {"load_ms", "median_ms", "min_ms"}
    assert 0 < timing["min_ms"] <= timing["median_ms"]


def test_quantize_and_dequantize_follow_the_tensor_parameters() -> None:
    detail = {"dtype": "int8", "quantization": (1 / 256, -128)}
    q = quantize(np.array([0.0, 0.5, 0.999, 2.0]), detail)
    assert q.dtype == np.int8 and q.tolist() == [-128, 0, 127, 127]
    assert np.allclose(dequantize(q, detail), [0.0, 0.5, 0.99609375, 0.99609375])


def test_profiles_are_data_read_by_their_fields(target: LitertTarget, dense_tflite: Path) -> None:
    """What a profile is good for comes from its fields: a made-up profile without timings is refused by
    time_invoke, one that cannot resize refuses resize/batch before any runner starts, and every
    entry of the table states what it is."""
    x = np.zeros((3, 8), dtype="float32")
    no_timings = DeviceProfile("made-up", num_threads=1, timings=False, summary="an emulator")
    with pytest.raises(HarnessError, match=r"timings on profile made-up mean nothing \(an emulator\)"):
        target.time_invoke(dense_tflite, [x[:1]], profile=no_timings, runs=2)
    fixed_shape = DeviceProfile("fixed", num_threads=1, resizes_inputs=False)
    for kwargs in ({"resize": True}, {"batch": True}):
        with pytest.raises(HarnessError, match="runs a model at its allocated input shape"):
            target.predict(dense_tflite, [x], profile=fixed_shape, **kwargs)
    assert target.predict(dense_tflite, [x[:1]], profile=fixed_shape)[0].shape == (1, 3)
    assert all(p.summary for p in PROFILES.values())
    assert [name for name, p in PROFILES.items() if not p.timings] == ["arm64"]
    assert DeviceProfile("x").unavailable_reason() is None
