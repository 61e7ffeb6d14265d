"""An int8 calibration of a SavedModel in a child process, so that a converter crash is a finding.

TensorFlow's calibrator (``tf.lite.python.optimize.calibrator``) runs the model's kernels in C++ on
the representative set; on some models it dies of a signal (a stateful LSTM: SIGSEGV in
``_feed_tensors``), which in the caller's process would end ``pitfalls check`` and every target
with it.  :func:`convert_in_child` runs the same converter settings
(:func:`configure_converter`, which :mod:`harness.targets.litert.convert` uses in its own process) in ``python -m
harness.targets.litert.calibrate`` (a new session, watched by the reaper, killed with its group if
the caller is) and raises a
:class:`~harness.errors.RuntimeFailure` with the child's own last words when it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.errors import RuntimeFailure

if TYPE_CHECKING:
    import numpy as np

#: how much of the child's stderr a failure quotes (its faulthandler dump or TensorFlow's error)
STDERR_TAIL = 4000


def convert_in_child(saved_model: Path, representative: "np.ndarray", out: Path, *, select_tf_ops: bool,
                     extra: dict[str, Any]) -> None:
    """Write ``out`` (a ``.tflite``): ``saved_model`` converted to int8, calibrated on ``representative``."""
    import numpy as np

    from harness.environments.reaper import forget_process_group, watch_process_group
    from harness.paths import REPO_ROOT

    with tempfile.TemporaryDirectory(prefix="pitfalls-calibrate-") as work:
        rep = Path(work) / "representative.npy"
        np.save(rep, representative, allow_pickle=False)
        job = Path(work) / "job.json"
        job.write_text(json.dumps({"saved_model": str(saved_model), "representative": str(rep), "out": str(out),
                                   "select_tf_ops": select_tf_ops, "extra": extra}))
        with open(Path(work) / "stderr", "w+") as err:
            proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "harness.targets.litert.calibrate",
                                     str(job)], stdout=subprocess.DEVNULL, stderr=err, cwd=str(REPO_ROOT),
                                    env=_child_env(), start_new_session=True)
            try:
                watch_process_group(proc.pid)  # killed by the watchdog if this process is killed
                code = proc.wait()
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                forget_process_group(proc.pid)
            err.seek(0)
            said = err.read()
        if code == 0 and out.is_file():
            return
        failure = Path(work) / "failure.json"
        if failure.is_file():
            raised = json.loads(failure.read_text())
            # as the caller's process would have shown it: the converter's exception type, then its text
            raise RuntimeFailure("TFLiteConverter", f"{raised['kind']}: {raised['message']}", kind=str(raised["kind"]),
                                 source="int8 calibration in a child process")
        how = (f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}")
        raise RuntimeFailure("TFLiteConverter", f"the int8 calibration process was {how}:\n"
                             f"{_interesting(said)[-STDERR_TAIL:]}", kind=how.split()[-1],
                             source="int8 calibration in a child process")


def one_row_at_a_time(representative: "np.ndarray") -> Callable[[], Iterator[list["np.ndarray"]]]:
    """The converter's ``representative_dataset``: ``representative`` one row (batch of 1) at a time."""
    def dataset() -> Iterator[list["np.ndarray"]]:
        for i in range(len(representative)):
            yield [representative[i: i + 1]]

    return dataset


def configure_converter(converter: Any, tf: Any, quantize: Literal["none", "dynamic", "float16", "int8"], representative: "np.ndarray | None",
                        select_tf_ops: bool, extra: Mapping[str, Any] | None) -> None:
    """Set a ``TFLiteConverter`` for ``quantize`` (int8: calibrated on ``representative`` one row at a
    time), Select TF ops and the ``extra`` attributes (in this process or the calibration child)."""
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        if representative is not None:
            converter.representative_dataset = one_row_at_a_time(representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    if select_tf_ops:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    for name, value in (extra or {}).items():
        setattr(converter, name, value)


def _child_env() -> dict[str, str]:
    from harness.paths import REPO_ROOT

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _interesting(stderr: str) -> str:
    """The child's stderr from Python's fatal-error report on (the start-up noise before it dropped)."""
    start = stderr.find("Fatal Python error")
    said = stderr[start:] if start >= 0 else stderr
    return said.split("\nExtension modules:")[0].rstrip()


def main(job_path: str) -> int:
    import numpy as np
    import tensorflow as tf

    job = json.loads(Path(job_path).read_text())
    representative = np.load(job["representative"], allow_pickle=False)
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(job["saved_model"])
        configure_converter(converter, tf, "int8", representative, bool(job["select_tf_ops"]), job["extra"])
        Path(job["out"]).write_bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - the converter's own error, handed to the parent with its text
        (Path(job_path).parent / "failure.json").write_text(json.dumps({"kind": type(exc).__name__,
                                                                         "message": str(exc)}))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
