"""The part every reproducer script shares, copied into each script where its template imports this
module (:func:`harness.reduce.api.filled_script` puts this file's code in place of that import line,
so the written script imports nothing of pitfalls).  Standard library and numpy only."""

import json
import os
from typing import Any, Callable


def keras_reference(here: str, settings: dict[str, Any]) -> tuple[Any, list[Any], list[Any]]:
    """The Keras model beside the script, its inputs (``inputs/<name>.npy`` in the settings' order)
    and its own outputs on them (float64).  For a SavedModel (``settings["keras"] == "saved_model"``)
    the model is its directory's path and the outputs are its ``serving_default`` signature's, in
    the order of their names."""
    import numpy as np

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if settings["keras"] == "saved_model":
        import tensorflow as tf

        path = os.path.join(here, settings["model"])
        inputs = [np.load(os.path.join(here, "inputs", name + ".npy"), allow_pickle=False)
                  for name in settings["inputs"]]
        loaded = tf.saved_model.load(path)  # kept alive while its signature runs
        got = loaded.signatures["serving_default"](**{n: tf.constant(x) for n, x in zip(settings["inputs"], inputs)})
        return path, inputs, [np.asarray(got[name], dtype="float64") for name in sorted(got)]
    keras = __import__(settings["keras"])
    model = keras.models.load_model(os.path.join(here, settings["model"]), compile=False)
    inputs = [np.load(os.path.join(here, "inputs", name + ".npy"), allow_pickle=False) for name in settings["inputs"]]
    want = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    want = [np.asarray(w, dtype="float64") for w in (want if isinstance(want, (list, tuple)) else [want])]
    return model, inputs, want


def calibration_inputs(here: str, settings: dict[str, Any], inputs: list[Any]) -> list[Any]:
    """The set int8 quantisation is calibrated on: ``calibration/<name>.npy`` when it is beside the
    script (the inputs are a probe of ``pitfalls check``, which calibrates on its sample), else the
    inputs themselves."""
    import numpy as np

    folder = os.path.join(here, "calibration")
    if not os.path.isdir(folder):
        return inputs
    return [np.load(os.path.join(folder, name + ".npy"), allow_pickle=False) for name in settings["inputs"]]


def output_position(tensor_name: str) -> tuple[int, int, str]:
    """Sort key of a runtime's output names: ``output_0, output_1, ... output_10`` by number."""
    digits = "".join(ch for ch in tensor_name.rsplit("_", 1)[-1].split(":")[0] if ch.isdigit())
    return (0, int(digits), tensor_name) if digits else (1, 0, tensor_name)


def compare_outputs(got: list[Any], want: list[Any], atol: float, rtol: float) -> dict[str, Any]:
    """The worst output: ``divergence`` when ``|got - want| > atol + rtol * max|want|`` (or the
    shapes differ), else ``none``, with the figures."""
    import numpy as np

    worst: dict[str, Any] = {"kind": "none", "max_abs_diff": 0.0, "bound": 0.0, "output": 0}
    for index, (g, w) in enumerate(zip(got, want)):
        if g.shape != w.shape:
            return {"kind": "divergence", "text": f"output {index} has shape {list(g.shape)}, Keras gives "
                    f"{list(w.shape)}", "max_abs_diff": None, "bound": None, "output": index}
        diff = float(np.abs(g - w).max()) if g.size else 0.0
        bound = atol + rtol * (float(np.abs(w).max()) if w.size else 0.0)
        if diff > bound and (worst["kind"] == "none" or diff - bound > worst["max_abs_diff"] - worst["bound"]):
            worst = {"kind": "divergence", "max_abs_diff": diff, "bound": bound, "output": index}
        elif worst["kind"] == "none" and diff >= worst["max_abs_diff"]:
            worst = {"kind": "none", "max_abs_diff": diff, "bound": bound, "output": index}
    return worst


def report(found: dict[str, Any], runtime: str) -> int:
    """Print what the runtime did (its own text, or the figures) and the observation as JSON on the
    last line; the exit code: 1 when the finding shows, 0 when it does not."""
    if found["kind"] in ("converter", "runtime"):
        print(f"{found['kind']} error ({found['error']}):\n{found['text']}")
    elif found["kind"] == "divergence":
        print(found.get("text") or f"output {found['output']}: max |{runtime} - Keras| = {found['max_abs_diff']:.6g} "
              f"> atol + rtol * max|Keras| = {found['bound']:.6g}")
    elif found["kind"] == "skipped":  # the runtime refused to run here (Core ML predicts on macOS only)
        print(f"not compared: {runtime} refused to run here ({found['error']}): {found['text']}")
    else:
        print(found.get("text") or
              f"no finding: max |{runtime} - Keras| = {found['max_abs_diff']:.6g} <= {found['bound']:.6g}")
    print("REPRODUCER-RESULT " + json.dumps(found))
    return 0 if found["kind"] in ("none", "skipped") else 1


def child_result(done: Any, marker: str, who: str) -> dict[str, Any]:
    """The JSON a child process printed on its last ``<marker> `` line (``done``: its
    ``subprocess.run`` result); the child's own error, or its exit code and stderr, raised."""
    lines = [line for line in done.stdout.splitlines() if line.startswith(marker + " ")]
    if not lines:
        raise RuntimeError(f"{who} ended with code {done.returncode}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len(marker) + 1:])
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def run_observed(observe: Callable[[str], dict[str, Any]], script_file: str, runtime: str) -> int:
    """``main`` of a script: observe the directory the script is in and report."""
    return report(observe(os.path.dirname(os.path.abspath(script_file))), runtime)
