"""Run one TF Lite model with the aarch64 LiteRT; protocol files live in the call directory.

This file runs *inside* the arm64 root file system, under qemu, with the guest's Python 3.11,
which has only numpy and ai_edge_litert: it imports nothing from ``harness``.
:func:`harness.targets.litert.arm64.run_on_arm64` copies it into each call directory and runs

    python3 <call dir>/worker.py run <call dir> <num_threads>
    python3 <call dir>/worker.py versions <call dir>

Protocol (files in the call directory): ``model.tflite`` and ``inputs.npz`` (``arr_0``,
``arr_1``, ... in the order of ``get_input_details()``) in; ``outputs.npz`` (``output_0``, ...)
or ``error.json`` (origin ``runtime`` for LiteRT's own exception, ``harness`` for a bad call)
out; exit code 0, 3 (runtime error) or 4 (bad call).  ``versions`` writes ``versions.json``.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any


def write_error(call_dir: Path, origin: str, exc: BaseException) -> None:
    record = {
        "origin": origin,
        "kind": type(exc).__name__,
        "message": str(exc),
        "traceback": traceback.format_exc(),
    }
    (call_dir / "error.json").write_text(json.dumps(record))


def load_inputs(call_dir: Path) -> list[Any]:
    import numpy as np

    with np.load(call_dir / "inputs.npz", allow_pickle=False) as data:
        count = len(data.files)
        return [data[f"arr_{i}"] for i in range(count)]


def run(call_dir: Path, num_threads: int) -> int:
    import numpy as np

    try:
        inputs = load_inputs(call_dir)
        from ai_edge_litert.interpreter import Interpreter
    except Exception as exc:
        write_error(call_dir, "harness", exc)
        return 4
    try:
        interpreter = Interpreter(model_path=str(call_dir / "model.tflite"), num_threads=num_threads)
        interpreter.allocate_tensors()
        details = interpreter.get_input_details()
        if len(details) != len(inputs):
            mismatch = ValueError(
                f"model has {len(details)} inputs but {len(inputs)} arrays were given"
            )
            write_error(call_dir, "harness", mismatch)
            return 4
        for detail, value in zip(details, inputs):
            interpreter.set_tensor(detail["index"], value)
        interpreter.invoke()
        outputs = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    except Exception as exc:
        write_error(call_dir, "runtime", exc)
        return 3
    np.savez(call_dir / "outputs.npz", **{f"output_{i}": o for i, o in enumerate(outputs)})
    return 0


def versions(call_dir: Path) -> int:
    import importlib.metadata
    import platform

    record = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "numpy": importlib.metadata.version("numpy"),
        "litert": importlib.metadata.version("ai-edge-litert"),
        "debian": Path("/etc/debian_version").read_text().strip(),
    }
    (call_dir / "versions.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    command, directory = sys.argv[1], Path(sys.argv[2])
    if command == "run":
        sys.exit(run(directory, int(sys.argv[3])))
    sys.exit(versions(directory))
