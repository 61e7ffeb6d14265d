"""What ``pitfalls reduce`` reproduces on TF Serving (:class:`harness.reduce.api.Reproducer`).

A TF Serving finding is the served model's as a whole: its signature (the dtypes a JSON client's
numbers must match) or its state (a stateful RNN carries its states from one request to the next),
so the reproducer is the whole model as check serves it (:attr:`Reproducer.whole`): the SavedModel
as exported for serving (a stateful model's fixed-batch export, as check serves it), the request
bodies, the numbers they should give, and ``reproducer_script.py`` (standard library and the docker
CLI): the real ``tensorflow/serving:<version>`` by default, run here with ``--image`` on the local
stand-in image (never pulled).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.compare import tolerance_for
from harness.reduce.api import Observation, Reproducer, ScriptSpec, StagedWhole, WholeModel, error_keyed, filled_script
from harness.targets.tfserving.container import MEMORY_LIMIT, PIDS_LIMIT

NAME = "tfserving"
SCRIPT_TEMPLATE = Path(__file__).with_name("reproducer_script.py")
MODEL_NAME = "model"
#: how many times the script sends the same body to one server: a reply that depends on the requests
#: before it (a stateful model's states carried over) shows on the second
REPEATS = 2

PATHS: dict[str, str] = {
    "rest": (f"the SavedModel as exported for serving, served by TF Serving; the sample sent {REPEATS} times as the "
             "same REST predict body (columnar JSON in the signature's dtypes) to one server, each reply compared "
             "with the SavedModel called by TensorFlow on a fresh load, at float32 tolerance"),
    "float-json": ("the same, but the body written as a client holding float arrays writes it (every number a "
                   "JSON float, 3.0 for an integer id): what a signature of integer inputs makes of it"),
}

WHOLE_REASON = ("cannot reduce: a TF Serving finding is the served model's as a whole (its serving signature, "
                "and the state a request leaves for the next); each candidate would be another SavedModel served "
                "by another container, so the reproducer is the whole model as exported for serving")

#: the sentences TF Serving (and the stand-in) say what went wrong with
KEY_SENTENCES = (
    re.compile(r"Incompatible shapes"),
    re.compile(r"not of expected type: \w+"),
    re.compile(r"Expects arg\[\d+\] to be \w+ but \w+ is provided"),
    re.compile(r"Op type not registered '[^']+'"),
    re.compile(r"cannot be converted to \w+|Could not convert \S+"),
)
OP_NAME = re.compile(r"Op type not registered '([^']+)'")


def script(path: str, spec: ScriptSpec) -> str:
    """The standalone script for ``path``: the template with its ``SETTINGS`` filled in."""
    from harness.environments.ownership import owners_dir
    from harness.targets.tfserving.target import DEFAULT_TF_VERSION

    tolerance = tolerance_for("float32")
    return filled_script(SCRIPT_TEMPLATE, {
        "image": f"tensorflow/serving:{DEFAULT_TF_VERSION}", "model_name": MODEL_NAME,
        "requests": [f"requests/{n}.json" for n in range(1, REPEATS + 1)], "path": path,
        "atol": tolerance.atol, "rtol": tolerance.rtol, "ready_timeout": 300.0,
        "memory": MEMORY_LIMIT, "pids": PIDS_LIMIT, "owners_dir": str(owners_dir()),
        "divergence_note": ("; the same body as request 1, whose reply matched: the server's answer depends on the "
                            "requests before it" if REPEATS > 1 else "")})


def _as_floats(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_floats(item) for item in value]
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def served_saved_model(model: Any) -> Path:
    """The SavedModel check serves: a stateful Keras 3 model's fixed-batch export when it runs, else
    the export TF Serving's target prepares (a SavedModel given is served as given)."""
    from harness.artifacts import ArtifactCache
    from harness.check.stateful import fixed_batch_export
    from harness.export import saved_model_of

    cache = ArtifactCache()
    served, _ = fixed_batch_export(model, cache)
    return saved_model_of(cache, served.source)


def stage(model: Any, feed: Mapping[str, Any], directory: Path, path: str) -> StagedWhole:
    """``model/1/`` (the served SavedModel), ``inputs/``, ``requests/<n>.json`` and ``expected.json``
    (the SavedModel's ``serving_default`` on a fresh load, by output name) in ``directory``."""
    import numpy as np
    import tensorflow as tf

    from harness.environments.serving_image import COMPAT_IMPLEMENTATION, REAL_IMPLEMENTATION, ensure_serving_image
    from harness.reduce.run import copy_saved_model, write_arrays
    from harness.targets.tfserving.target import DEFAULT_TF_VERSION

    saved = served_saved_model(model)
    copy_saved_model(saved, directory / MODEL_NAME / "1")
    signature = tf.saved_model.load(str(saved)).signatures["serving_default"]
    _, specs = signature.structured_input_signature
    typed = {name: np.asarray(value, dtype=specs[name].dtype.as_numpy_dtype) if name in specs else np.asarray(value)
             for name, value in feed.items()}
    write_arrays(directory / "inputs", typed)
    got = signature(**{name: tf.constant(value) for name, value in typed.items()})
    expected = {name: np.asarray(value).tolist() for name, value in sorted(got.items())}
    (directory / "expected.json").write_text(json.dumps(expected) + "\n", encoding="utf-8")
    columns = {name: value.tolist() for name, value in typed.items()}
    body = {"inputs": _as_floats(columns) if path == "float-json" else columns}
    (directory / "requests").mkdir()
    for n in range(1, REPEATS + 1):
        (directory / "requests" / f"{n}.json").write_text(json.dumps(body) + "\n", encoding="utf-8")
    image = ensure_serving_image(DEFAULT_TF_VERSION, implementation=os.environ.get("PITFALLS_SERVING_IMPLEMENTATION")
                                 or COMPAT_IMPLEMENTATION)  # as the target picks it
    stand_in = image.implementation != REAL_IMPLEMENTATION
    return StagedWhole(
        MODEL_NAME, args=("--image", image.tag, "--pull", "never"),
        ran_here=(f"against the local stand-in image `{image.tag}` ({image.implementation}, TF {image.tf_version}: "
                  "pitfalls' TF Serving-compatible server), not the real tensorflow/serving image; an upstream "
                  "report should run it without --image." if stand_in else
                  f"against the local real image `{image.tag}`."),
        files={f"{MODEL_NAME}/1/": "the SavedModel as check serves it (version 1 of model `model`)",
               "requests/<n>.json": "the REST predict bodies, sent in order to one server",
               "expected.json": "what each request should give: the SavedModel's serving_default called by "
                                "TensorFlow on a fresh load, by output name"},
        versions={"serving image (run here)": f"{image.tag} ({image.implementation}, TF {image.tf_version})",
                  "serving image (default of reproduce.py)": f"tensorflow/serving:{DEFAULT_TF_VERSION}"})


#: the same finding (:func:`harness.reduce.api.error_key` with TF Serving's sentences)
key, _describe_error = error_keyed(KEY_SENTENCES, OP_NAME, "TF Serving")


def describe(found: Observation) -> str:
    """One line for a person: the server's error, or which request's reply left the expected numbers."""
    if found.get("kind") == "divergence" and found.get("max_abs_diff") is not None:
        return (f"divergence on request {found.get('request')}: max |served - expected| {found['max_abs_diff']:.4g} "
                f"> {found['bound']:.4g}")
    if found.get("kind") == "none":
        return (f"no finding: max |served - expected| {found.get('max_abs_diff', 0.0):.4g} <= "
                f"{found.get('bound', 0.0):.4g} on every request")
    return _describe_error(found)


REPRODUCER = Reproducer(target=NAME, paths=PATHS, script=script, key=key, describe=describe,
                        packages=("tensorflow", "keras", "tf-keras", "numpy"),
                        requirements="Python 3 (standard library only) and the docker CLI with a running engine; "
                                     "the image tensorflow/serving at the version below (docker pulls it unless "
                                     "--image names another, --pull never forbids it)",
                        whole=WholeModel(WHOLE_REASON, stage))
