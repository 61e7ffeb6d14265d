"""Code that runs inside the LiteRT worker process (never in the pytest process).

LiteRT is kept apart from TensorFlow: crashes have been reported when both load together.  The
worker imports ``ai_edge_litert`` and numpy only.  Every call returns a tagged tuple so that the
parent can tell the runtime's exceptions from bugs in our own code by where they were raised.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import resource
import time
import traceback
from pathlib import Path
from typing import Any, Callable

_LOADED: dict[str, Any] = {}


def apply_profile(cpus: tuple[int, ...] | None, memory_limit_mb: int | None) -> None:
    """Process initializer: CPU pinning and an address-space limit, as a device profile asks."""
    if cpus:
        os.sched_setaffinity(0, set(cpus))
    if memory_limit_mb:
        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def interpreter(model_path: str | None = None, *, model_content: bytes | None = None,
                num_threads: int = 1, xnnpack: bool = True) -> Any:
    """A LiteRT interpreter; ``xnnpack=False`` uses the builtin kernels without default delegates."""
    from ai_edge_litert import interpreter as litert

    kwargs: dict[str, Any] = {"num_threads": num_threads}
    if not xnnpack:
        kwargs["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    if model_content is not None:
        return litert.Interpreter(model_content=model_content, **kwargs)
    return litert.Interpreter(model_path=model_path, **kwargs)


def predict(model_path: str, inputs: list[Any], num_threads: int = 1, xnnpack: bool = True,
            resize: bool = False, batch: bool = False) -> list[Any]:
    """Run the model once: set every input, invoke, read every output.

    ``resize`` resizes each input tensor to the shape of the array given; ``batch`` resizes only
    the first (batch) dimension and keeps the model's other dimensions, as app code does, so that
    a wrong image size or channel count still meets LiteRT's own check in set_tensor.
    """
    interp = interpreter(model_path, num_threads=num_threads, xnnpack=xnnpack)
    details = interp.get_input_details()
    if resize or batch:
        for d, x in zip(details, inputs):
            shape = list(x.shape) if resize else [len(x), *[int(n) for n in d["shape"][1:]]]
            interp.resize_tensor_input(d["index"], shape)
    interp.allocate_tensors()
    for d, x in zip(details, inputs):
        interp.set_tensor(d["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def _resized_shape(detail: dict[str, Any], x: Any) -> list[int]:
    """The shape to resize an input to for array ``x``: its batch (first) dimension and every
    dimension the model's ``shape_signature`` leaves dynamic (-1); the model's own elsewhere, so
    that a wrong feature size still meets LiteRT's check in set_tensor."""
    shape = [int(n) for n in detail["shape"]]
    if len(x.shape) != len(shape):
        return shape
    dynamic = [int(n) == -1 for n in detail["shape_signature"]]
    return [int(x.shape[i]) if (i == 0 or dynamic[i]) else shape[i] for i in range(len(shape))]


def predict_named(model_path: str, inputs: dict[str, Any], num_threads: int = 1,
                  xnnpack: bool = True) -> dict[str, Any]:
    """Run the model once on inputs by tensor name; outputs by tensor name (``Deployment.predict``).

    Each input is resized to its array's batch (and dynamic dimensions) before allocation.
    """
    interp = interpreter(model_path, num_threads=num_threads, xnnpack=xnnpack)
    details = interp.get_input_details()
    for d in details:
        wanted = _resized_shape(d, inputs[d["name"]])
        if wanted != [int(n) for n in d["shape"]]:
            interp.resize_tensor_input(d["index"], wanted)
    interp.allocate_tensors()
    for d in details:
        interp.set_tensor(d["index"], inputs[d["name"]])
    interp.invoke()
    return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}


def signature(model_path: str) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs as LiteRT reports them: name, dtype name, shape signature (-1 = dynamic)."""
    import numpy as np

    interp = interpreter(model_path)

    def spec(d: dict[str, Any]) -> dict[str, Any]:
        return {"name": d["name"], "dtype": np.dtype(d["dtype"]).name,
                "shape": [int(n) for n in d["shape_signature"]]}

    return {"inputs": [spec(d) for d in interp.get_input_details()],
            "outputs": [spec(d) for d in interp.get_output_details()]}


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, type) and issubclass(value, np.generic):
        return np.dtype(value).name
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def inspect(model_path: str) -> dict[str, Any]:
    """Input and output details (names, shapes, dtypes, quantization) of a converted model."""
    interp = interpreter(model_path)
    keep = ("name", "index", "shape", "shape_signature", "dtype", "quantization")
    return {
        "inputs": [{k: _plain(d[k]) for k in keep} for d in interp.get_input_details()],
        "outputs": [{k: _plain(d[k]) for k in keep} for d in interp.get_output_details()],
        "signatures": _plain(interp.get_signature_list()),
    }


def time_invoke(model_path: str, inputs: list[Any], num_threads: int = 1, xnnpack: bool = True,
                warmup: int = 3, runs: int = 30) -> dict[str, float]:
    """Median and minimum invoke latency in milliseconds, after warm-up runs."""
    import statistics

    started = time.perf_counter()
    interp = interpreter(model_path, num_threads=num_threads, xnnpack=xnnpack)
    details = interp.get_input_details()
    for d, x in zip(details, inputs):  # a dynamic dimension (a sequence length) takes the array's size
        wanted = _resized_shape(d, x)
        if wanted != [int(n) for n in d["shape"]]:
            interp.resize_tensor_input(d["index"], wanted)
    interp.allocate_tensors()
    load_ms = (time.perf_counter() - started) * 1000
    for d, x in zip(details, inputs):
        interp.set_tensor(d["index"], x)
    for _ in range(warmup):
        interp.invoke()
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        samples.append((time.perf_counter() - t0) * 1000)
    return {"load_ms": load_ms, "median_ms": statistics.median(samples), "min_ms": min(samples)}


def runtime_state(model_path: str, num_threads: int = 1, xnnpack: bool = True) -> dict[str, Any]:
    """What a device profile did to this worker: delegation, threads, CPU affinity, memory limit.

    The interpreter is built and invoked once on zeros; ``delegated_nodes`` counts the nodes that
    XNNPACK took over, ``threads`` the threads of the worker process while the interpreter lives.
    """
    import numpy as np

    interp = interpreter(model_path, num_threads=num_threads, xnnpack=xnnpack)
    interp.allocate_tensors()
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], np.zeros(d["shape"], dtype=d["dtype"]))
    interp.invoke()
    ops = [o["op_name"] for o in interp._get_ops_details()]  # noqa: SLF001 - the only view of delegation
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return {"delegated_nodes": ops.count("DELEGATE"), "ops": ops,
            "threads": len(os.listdir("/proc/self/task")),
            "cpus": sorted(os.sched_getaffinity(0)),
            "memory_limit_mb": None if soft == resource.RLIM_INFINITY else soft // (1024 * 1024),
            "pid": os.getpid()}


def versions() -> dict[str, str]:
    from importlib import metadata

    import numpy as np

    return {"ai-edge-litert": metadata.version("ai-edge-litert"), "numpy": np.__version__}


def _resolve(ref: tuple[str, str, str]) -> Callable[..., Any]:
    kind, where, name = ref
    if kind == "module":
        found: Callable[..., Any] = getattr(importlib.import_module(where), name)
        return found
    module = _LOADED.get(where)
    if module is None:
        spec = importlib.util.spec_from_file_location(f"pitfalls_worker_{len(_LOADED)}", where)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {where}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _LOADED[where] = module
    loaded: Callable[..., Any] = getattr(module, name)
    return loaded


def call(ref: tuple[str, str, str], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, Any]:
    """Entry point used by the parent: ("ok", result) or ("error", details of the exception)."""
    try:
        return "ok", _resolve(ref)(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the parent classifies it
        frames = traceback.extract_tb(exc.__traceback__)
        origin = frames[-1].filename if frames else ""
        return "error", {"kind": type(exc).__name__, "message": str(exc), "origin": origin,
                         "traceback": "".join(traceback.format_exception(exc)),
                         "pid": os.getpid()}


def file_is_ours(origin: str, repo_root: str) -> bool:
    try:
        rel = Path(origin).resolve().relative_to(Path(repo_root).resolve())
    except ValueError:
        return False
    return not str(rel).startswith(".venv")
