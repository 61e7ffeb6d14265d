"""What ``pitfalls reduce`` reproduces on tf.js (:class:`harness.reduce.api.Reproducer`).

The script (``reproducer_script.py``, copied with its ``SETTINGS``) exports the model, converts it
to a graph model with the real tensorflowjs converter (what ``tensorflowjs_converter``, which ``check``
runs, calls: ``convert_tf_saved_model``, in the script's own process), and runs it with the
repository's npm tf.js on Node (the cpu or wasm backend) or, for webgl (and check's ``webgl-f16``
path), in headless Chromium driven by Python's Playwright (tf.js put into a blank page, the model
handed over from the script: no server), compared with the Keras model at the backend's tolerance.
A backend that needs Chromium's GPU process (its table entry does not run with ``GPU_PROCESS_OFF``)
runs the same way with its own Chromium flags and bundle, in a page of an https origin the script
fulfils itself (that backend's GPU adapter is offered to secure contexts only).
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.compare import tolerance_for
from harness.paths import NODE_MODULES
from harness.reduce.api import Reproducer, ScriptSpec, error_keyed, filled_script
from harness.targets.tfjs.backends import COMMON_BROWSER_FLAGS, GPU_PROCESS_OFF, TABLE, VARIANTS
from harness.targets.tfjs.target import CHROMIUM

NAME = "tfjs"
SCRIPT_TEMPLATE = Path(__file__).with_name("reproducer_script.py")

#: the backends a script runs on Node (the others need a browser: headless Chromium through Playwright)
ON_NODE = ("cpu", "wasm")
BACKEND_OF = {b.name: b for b in (*TABLE, *VARIANTS)}
#: the other paths of check the script runs in headless Chromium (webgl on SwiftShader's GL without a GPU
#: process; a backend that needs the GPU process on SwiftShader's Vulkan, in a secure page: see below)
IN_BROWSER = tuple(b.name for b in (*TABLE, *VARIANTS) if b.name not in ON_NODE)
#: the backends whose adapter Chromium offers only to a secure context (about:blank has no navigator.gpu):
#: the script's page is then an https origin Playwright fulfils itself (no server, no network)
SECURE_PAGE = tuple(name for name in IN_BROWSER if BACKEND_OF[name].browser_flags != GPU_PROCESS_OFF)

PATHS: dict[str, str] = {
    **{backend: (f"SavedModel, tensorflowjs_converter to a graph model, then tf.js on Node with the {backend} backend "
                 "(the repository's npm packages), compared with Keras at float32 tolerance") for backend in ON_NODE},
    **{name: (f"SavedModel, tensorflowjs_converter to a graph model, then tf.js in headless Chromium (Playwright) "
              f"on {BACKEND_OF[name].summary}, compared with Keras at "
              f"{BACKEND_OF[name].tolerance} tolerance") for name in IN_BROWSER},
}

#: the sentences that say what went wrong in the converter's and tf.js's texts
KEY_SENTENCES = (
    re.compile(r"Unsupported Ops in the model before optimization"),
    re.compile(r"\w+ only supports rank-\d bias but got rank \d"),
    re.compile(r"Tensorflow Op is not supported: \w+"),
    re.compile(r"Unknown layer: \w+"),
)
#: op names: the list after "before optimization", or an op in a tf.js kernel message
OP_NAME = re.compile(r"before optimization\s+([A-Z]\w+(?:,\s*[A-Z]\w+)*)|\b(Fused\w+)\b")


def script(path: str, spec: ScriptSpec) -> str:
    """The standalone script for ``path`` (a backend): the template with its ``SETTINGS`` filled in."""
    backend = BACKEND_OF[path]
    tolerance = tolerance_for(backend.tolerance)
    return filled_script(SCRIPT_TEMPLATE, {"keras": spec.keras_module, "model": spec.model_file,
                                           "inputs": list(spec.input_names), "backend": path,
                                           "runs": backend.runs or backend.name,
                                           "env_flags": dict(backend.env_flags), "browser": path in IN_BROWSER,
                                           "chromium": str(CHROMIUM),
                                           "browser_flags": [*COMMON_BROWSER_FLAGS, *backend.browser_flags],
                                           "bundles": [str((backend.bundle.dist / name).resolve())
                                                       for name in backend.bundle.scripts] if backend.bundle else [],
                                           "secure_page": path in SECURE_PAGE,
                                           "node_modules": str(NODE_MODULES.resolve()),
                                           "atol": tolerance.atol, "rtol": tolerance.rtol})


#: the same finding (:func:`harness.reduce.api.error_key` with tf.js' sentences and op names), and one line
#: for a person
key, describe = error_keyed(KEY_SENTENCES, OP_NAME, "tf.js")


REPRODUCER = Reproducer(target=NAME, paths=PATHS, script=script, key=key, describe=describe,
                        packages=("tensorflow", "keras", "tf-keras", "tensorflowjs", "numpy", "playwright"),
                        requirements="Python with tensorflow, keras (or tf-keras), tensorflowjs and numpy, and Node "
                                     "with the npm package @tensorflow/tfjs (and tfjs-backend-wasm) in the "
                                     "node_modules directory the script's SETTINGS name (on webgl: Python's playwright package and the "
                                     "Chromium SETTINGS names instead of Node), at the versions below")
