"""TF Lite on LiteRT, under emulated device profiles.

Conversion uses TensorFlow's ``TFLiteConverter`` in the pytest process; inference runs in a
separate worker process per device profile (LiteRT only, no TensorFlow), with the profile's
thread count, XNNPACK on or off, CPU pinning and memory limit.  The ``arm64`` profile runs the
aarch64 LiteRT wheel under qemu (``harness.targets.litert.arm64``): for parity, never for timings.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import HarnessError, RuntimeFailure, WaitTimeout
from harness.paths import REPO_ROOT
from harness.targets.litert import worker as litert_worker
from harness.targets.base import Target
from harness.targets.litert.worker import dequantize, quantize, resize_bilinear

if TYPE_CHECKING:
    import numpy as np

Quantization = Literal["none", "dynamic", "float16", "int8"]


@dataclass(frozen=True)
class DeviceProfile:
    """An emulated device: what the LiteRT worker runs under, recorded with every result."""

    name: str
    arch: Literal["x86_64", "arm64"] = "x86_64"
    num_threads: int = 1
    xnnpack: bool = True
    cpus: tuple[int, ...] | None = None
    memory_limit_mb: int | None = None


PROFILES: dict[str, DeviceProfile] = {
    "host": DeviceProfile("host", num_threads=2),
    "low-end": DeviceProfile("low-end", num_threads=1, cpus=(0,), memory_limit_mb=2048),
    "no-xnnpack": DeviceProfile("no-xnnpack", num_threads=1, xnnpack=False),
    "arm64": DeviceProfile("arm64", arch="arm64", num_threads=1),
}


def convert_to_tflite(cache: ArtifactCache, source: Path, *, quantize: Quantization = "none",
                      representative: "np.ndarray | None" = None, select_tf_ops: bool = False,
                      from_keras: bool = False, extra: dict[str, Any] | None = None) -> Path:
    """Convert a SavedModel directory (or a Keras model file with ``from_keras``) to ``.tflite``.

    Cached by the source artifact, the options, the representative data and the TF version.
    Converter errors propagate with TensorFlow's own text.
    """
    rep_hash = hashlib.sha256(representative.tobytes()).hexdigest()[:16] if representative is not None else None
    key = {"source": str(source), "quantize": quantize, "rep": rep_hash, "select_tf_ops": select_tf_ops,
           "from_keras": from_keras, "extra": extra or {},
           "versions": library_versions("tensorflow", "keras", "tf-keras")}

    def build(out: Path) -> None:
        import tensorflow as tf

        if from_keras:
            import keras

            converter = tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(source, compile=False))
        else:
            converter = tf.lite.TFLiteConverter.from_saved_model(str(source))
        if quantize != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantize == "int8":
            if representative is not None:
                rep = representative

                def dataset() -> Any:
                    for i in range(len(rep)):
                        yield [rep[i: i + 1]]

                converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        if select_tf_ops:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        for name, value in (extra or {}).items():
            setattr(converter, name, value)
        (out / "model.tflite").write_bytes(converter.convert())

    return cache.get_or_build("tflite", key, build) / "model.tflite"


def _ref(fn: Callable[..., Any]) -> tuple[str, str, str]:
    """How the worker finds ``fn``: by module, or by file for scenario files (not importable)."""
    module = getattr(fn, "__module__", "")
    if module.startswith("pitfalls_scenarios."):
        return ("file", fn.__code__.co_filename, fn.__name__)
    return ("module", module, fn.__qualname__)


class LitertTarget(Target):
    """LiteRT interpreters in worker processes, one pool per device profile."""

    name = "litert"

    def __init__(self, timeout: float = 120.0) -> None:
        super().__init__()
        self.timeout = timeout
        self._pools: dict[str, ProcessPoolExecutor] = {}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = [d for d, v in library_versions("ai-edge-litert", "tensorflow").items() if v == "missing"]
        return f"Python packages not installed: {', '.join(missing)} (run the README set-up)" if missing else None

    def versions(self) -> dict[str, str]:
        return library_versions("ai-edge-litert", "tensorflow", "numpy")

    def deactivate_impl(self) -> None:
        for pool in self._pools.values():
            _shutdown(pool)
        self._pools.clear()

    # worker processes ----------------------------------------------------------------------
    def _pool(self, profile: DeviceProfile) -> ProcessPoolExecutor:
        pool = self._pools.get(profile.name)
        if pool is None:
            pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"),
                                       initializer=litert_worker.apply_profile,
                                       initargs=(profile.cpus, profile.memory_limit_mb))
            self._pools[profile.name] = pool
        return pool

    def call(self, fn: Callable[..., Any], *args: Any, profile: DeviceProfile = PROFILES["host"],
             timeout: float | None = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in the worker of ``profile`` and return its result.

        An exception raised by LiteRT (or numpy) in the worker comes back as a
        :class:`RuntimeFailure` with the exact text; one raised by our own code as HarnessError.
        """
        self.require_active()
        if profile.arch != "x86_64":
            raise HarnessError(f"profile {profile.name} runs only predict(), not arbitrary calls")
        pool = self._pool(profile)
        future = pool.submit(litert_worker.call, _ref(fn), args, kwargs)
        try:
            status, payload = future.result(timeout=timeout or self.timeout)
        except FutureTimeout:
            _shutdown(self._pools.pop(profile.name))
            raise WaitTimeout(f"LiteRT worker ({profile.name}) did not finish {fn.__name__} in {timeout or self.timeout}s",
                              hint="the interpreter may hang; the worker was killed") from None
        except BrokenProcessPool as exc:
            self._pools.pop(profile.name, None)
            raise RuntimeFailure("litert", str(exc), kind="BrokenProcessPool",
                                 source=f"the LiteRT worker process ({profile.name}) died while running {fn.__name__}") from None
        if status == "ok":
            return payload
        if litert_worker.file_is_ours(payload["origin"], str(REPO_ROOT)):
            raise HarnessError(f"code of pitfalls failed inside the LiteRT worker: {payload['kind']}: {payload['message']}",
                               evidence=payload["traceback"])
        raise RuntimeFailure("litert", payload["message"], kind=payload["kind"],
                             source=f"exception in the LiteRT worker process (profile {profile.name}, "
                                    f"raised at {payload['origin']})")

    # the common operations -----------------------------------------------------------------
    def predict(self, model_path: Path, inputs: "list[np.ndarray]", *,
                profile: DeviceProfile = PROFILES["host"], resize: bool = False,
                batch: bool = False) -> "list[np.ndarray]":
        """Run ``model_path`` once on ``inputs`` in the worker of ``profile``.

        ``resize=True`` resizes every input to the array's shape; ``batch=True`` only its batch
        dimension (see :func:`litert_worker.predict`).
        """
        import numpy as np

        if profile.arch == "arm64":
            from harness.targets.litert.arm64 import run_on_arm64

            return run_on_arm64(model_path, inputs, num_threads=profile.num_threads, timeout=self.timeout)
        outputs = self.call(litert_worker.predict, str(model_path), inputs, profile.num_threads,
                            profile.xnnpack, resize, batch, profile=profile)
        return [np.asarray(o) for o in outputs]

    def inspect(self, model_path: Path) -> dict[str, Any]:
        return self.call(litert_worker.inspect, str(model_path))  # type: ignore[no-any-return]

    def time_invoke(self, model_path: Path, inputs: "list[np.ndarray]", *,
                    profile: DeviceProfile = PROFILES["host"], runs: int = 30) -> dict[str, float]:
        if profile.arch != "x86_64":
            raise HarnessError("timings under qemu emulation mean nothing; use a host profile")
        return self.call(litert_worker.time_invoke, str(model_path), inputs, profile.num_threads,  # type: ignore[no-any-return]
                         profile.xnnpack, 3, runs, profile=profile)

    def runtime_state(self, model_path: Path, *, profile: DeviceProfile = PROFILES["host"]) -> dict[str, Any]:
        """What ``profile`` does in its worker: XNNPACK-delegated nodes, threads, CPUs, memory limit."""
        return self.call(litert_worker.runtime_state, str(model_path), profile.num_threads,  # type: ignore[no-any-return]
                         profile.xnnpack, profile=profile)

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (one pool per profile used so far)."""
        return [p.pid for pool in self._pools.values()
                for p in getattr(pool, "_processes", {}).values() if p.pid is not None]


def _shutdown(pool: ProcessPoolExecutor) -> None:
    """Stop a worker pool at once, killing a worker that hangs."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)


__all__ = ["DeviceProfile", "LitertTarget", "PROFILES", "convert_to_tflite", "dequantize", "quantize",
           "resize_bilinear"]
