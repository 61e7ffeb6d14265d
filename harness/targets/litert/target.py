"""TF Lite on LiteRT, under emulated device profiles.

Conversion uses TensorFlow's ``TFLiteConverter`` in the pytest process
(:mod:`harness.targets.litert.convert`); inference runs in a separate worker process per device
profile (:mod:`~harness.targets.litert.worker`: LiteRT only, no TensorFlow), with the profile's
thread count, XNNPACK on or off, CPU pinning and memory limit
(:mod:`~harness.targets.litert.profiles`).  The ``arm64`` profile runs the aarch64 LiteRT wheel
under qemu (``harness.targets.litert.arm64``): for parity, never for timings.

The deploy interface::

    with LitertTarget() as target:
        prepared = target.prepare(ModelSource.from_path("model.keras"), cache, options={"quantize": "dynamic"})
        with target.load(prepared, options={"profile": "low-end"}) as deployed:
            deployed.signature()              # as LiteRT reads the flatbuffer, -1 dimensions as None
            deployed.predict({"serving_default_input_layer:0": x})

A LiteRT scenario imports this module (:class:`LitertTarget`: the deploy interface, plus the moves
a lesson on a device needs: ``call`` a function in a profile's worker, ``predict``/``inspect``/
``time_invoke``/``runtime_state`` on a ``.tflite`` path, ``profile_unavailable_reason`` and
``profile_versions``), the converter (:mod:`harness.targets.litert.convert`) and the scenarios'
helpers (:mod:`harness.targets.litert.kit`: profiles, quantisation, and the in-worker API), never
``worker``, ``arm64`` or ``arm64_worker``.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.artifacts import ArtifactCache, library_versions
from harness.counts import count
from harness.errors import HarnessError, RuntimeFailure, UsageError, WaitTimeout
from harness.paths import REPO_ROOT
from harness.targets.base import Deployment, ModelSource, Prepared, Signature, Target, TensorSpec
from harness.targets.litert import worker as litert_worker
from harness.targets.litert.convert import convert_to_tflite, tflite_from_source
from harness.targets.litert.profiles import PROFILES, DeviceProfile, profile_named

if TYPE_CHECKING:
    import numpy as np


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

    def warm_up(self) -> None:
        """Start the host profile's worker process (its imports) before the first model comes."""
        self.call(litert_worker.versions)

    def deactivate_impl(self) -> None:
        for pool in self._pools.values():
            _shutdown(pool)
        self._pools.clear()

    # deploy interface ----------------------------------------------------------------------
    def prepare_impl(self, source: ModelSource, cache: ArtifactCache, options: dict[str, Any]) -> Prepared:
        """Convert ``source`` to ``.tflite`` (cached) by its format's documented path; options
        ``quantize`` (none/dynamic/float16/int8), ``representative`` (int8 calibration inputs),
        ``select_tf_ops`` and ``route`` (``export`` or ``keras_model`` for a ``.keras`` file)."""
        tflite, notes = tflite_from_source(cache, source, options)
        return Prepared(self.name, source, tflite, sizes={"artifact": tflite.stat().st_size}, notes=notes)

    def load_impl(self, prepared: Prepared, options: dict[str, Any]) -> "LitertDeployment":
        """The prepared model on the device profile ``options["profile"]`` (default ``host``)."""
        unknown = sorted(set(options) - {"profile"})
        if unknown:
            raise UsageError(f"unknown LiteRT load option(s) {', '.join(unknown)}: use profile")
        return LitertDeployment(self, prepared, profile_named(str(options.get("profile", "host"))))

    # worker processes ----------------------------------------------------------------------
    def _pool(self, profile: DeviceProfile) -> ProcessPoolExecutor:
        pool = self._pools.get(profile.name)
        if pool is None:
            count("worker processes started")
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
        if profile.arch != "x86_64":  # the arm64 runner is a fixed script under qemu
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
        dimension (see :func:`litert_worker.predict`); a profile whose ``resizes_inputs`` is false
        (``arm64``) refuses both rather than run the model at another shape than asked.
        """
        import numpy as np

        if (resize or batch) and not profile.resizes_inputs:
            raise HarnessError(f"profile {profile.name} runs a model at its allocated input shape: "
                               "predict(resize=True or batch=True) cannot be honoured there",
                               hint="feed arrays of the model's input shape (batch 1 for a converted Keras model)")
        if profile.arch == "arm64":
            from harness.targets.litert.arm64 import run_on_arm64

            return run_on_arm64(model_path, inputs, num_threads=profile.num_threads, timeout=self.timeout)
        outputs = self.call(litert_worker.predict, str(model_path), inputs, profile.num_threads,
                            profile.xnnpack, resize, batch, profile=profile)
        return [np.asarray(o) for o in outputs]

    def inspect(self, model_path: Path) -> dict[str, Any]:
        details: dict[str, Any] = self.call(litert_worker.inspect, str(model_path))
        return details

    def time_invoke(self, model_path: Path, inputs: "list[np.ndarray]", *,
                    profile: DeviceProfile = PROFILES["host"], runs: int = 30) -> dict[str, float]:
        if not profile.timings:
            raise HarnessError(f"timings on profile {profile.name} mean nothing ({profile.summary}); "
                               "use a profile whose timings field is true")
        timing: dict[str, float] = self.call(litert_worker.time_invoke, str(model_path), inputs, profile.num_threads,
                                             profile.xnnpack, 3, runs, profile=profile)
        return timing

    def runtime_state(self, model_path: Path, *, profile: DeviceProfile = PROFILES["host"]) -> dict[str, Any]:
        """What ``profile`` does in its worker: XNNPACK-delegated nodes, threads, CPUs, memory limit."""
        state: dict[str, Any] = self.call(litert_worker.runtime_state, str(model_path), profile.num_threads,
                                          profile.xnnpack, profile=profile)
        return state

    def profile_unavailable_reason(self, profile: DeviceProfile) -> str | None:
        """None when ``profile`` runs here, else the exact reason: the ``arm64`` profile needs its
        root file system, qemu and a binfmt entry (:mod:`harness.targets.litert.arm64`); the x86-64
        profiles run wherever the target does (:meth:`DeviceProfile.unavailable_reason`)."""
        return profile.unavailable_reason()

    def profile_versions(self, profile: DeviceProfile) -> dict[str, str]:
        """Versions of what runs ``profile``: for ``arm64`` the aarch64 LiteRT, numpy, Python and Debian
        inside the root file system, qemu's, and the host's for comparison; else :meth:`versions`."""
        if profile.arch == "arm64":
            from harness.targets.litert.arm64 import arm64_versions

            return arm64_versions()
        return self.versions()

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (one pool per profile used so far)."""
        return [p.pid for pool in self._pools.values()
                for p in getattr(pool, "_processes", {}).values() if p.pid is not None]


class LitertDeployment(Deployment):
    """A ``.tflite`` model on one device profile of a running :class:`LitertTarget`.

    Nothing is held between calls: every ``predict`` builds an interpreter in the profile's
    worker (as the worker functions do), so a deployment costs nothing to keep or close.  On the
    ``arm64`` profile the model runs at its allocated input shape (no resizing): feed the batch
    size its signature allows, usually 1.
    """

    def __init__(self, target: LitertTarget, prepared: Prepared, profile: DeviceProfile) -> None:
        super().__init__(prepared)
        self.target = target
        self.profile = profile

    def signature_impl(self) -> Signature:
        """Input and output details read by LiteRT in a worker (the x86-64 one for ``arm64``,
        which reads the same flatbuffer)."""
        reader = self.profile if self.profile.arch == "x86_64" else PROFILES["host"]
        found = self.target.call(litert_worker.signature, str(self.prepared.artifact), profile=reader)

        def specs(entries: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
            return tuple(TensorSpec(e["name"], e["dtype"], tuple(None if n < 0 else n for n in e["shape"]))
                         for e in entries)

        return Signature(specs(found["inputs"]), specs(found["outputs"]))

    def predict(self, inputs: "Mapping[str, np.ndarray]") -> "dict[str, np.ndarray]":
        """Outputs by output name; LiteRT's own errors (wrong dtype or shape) as RuntimeFailure."""
        import numpy as np

        if self.closed:
            raise HarnessError("predict() on a closed LiteRT deployment")
        signature = self.signature()
        names = signature.input_names()
        if sorted(inputs) != sorted(names):
            raise UsageError(f"inputs {sorted(inputs)} do not match the model's inputs {names}: "
                             "pass one array per input name of signature()")
        path = self.prepared.artifact
        if self.profile.arch == "arm64":
            from harness.targets.litert.arm64 import run_on_arm64

            outputs = run_on_arm64(path, [np.asarray(inputs[n]) for n in names],
                                   num_threads=self.profile.num_threads, timeout=self.target.timeout)
            return dict(zip(signature.output_names(), outputs))
        found = self.target.call(litert_worker.predict_named, str(path), {n: np.asarray(inputs[n]) for n in names},
                                 self.profile.num_threads, self.profile.xnnpack, profile=self.profile)
        return {name: np.asarray(value) for name, value in found.items()}


def _shutdown(pool: ProcessPoolExecutor) -> None:
    """Stop a worker pool at once, killing a worker that hangs."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)


__all__ = ["LitertDeployment", "LitertTarget", "convert_to_tflite"]
