"""Reproduce a tf.js finding with the tensorflowjs converter and tf.js on Node alone.

Written by ``pitfalls reduce`` beside ``model.keras`` (the smallest slice of layers that still shows
the finding, with their real weights; or ``saved_model/``, a whole SavedModel, which has no layers
to cut) and ``inputs/`` (the reference's inputs to that slice, one
``.npy`` per model input).  Run it with the Python that has tensorflow and tensorflowjs installed,
and Node with the npm package @tensorflow/tfjs (and @tensorflow/tfjs-backend-wasm) under
``SETTINGS["node_modules"]``:

    python reproduce.py

It exports the model as a SavedModel, converts it to a tf.js graph model with the tensorflowjs
converter (what ``tensorflowjs_converter`` runs, called in this process), runs it on Node with the backend ``SETTINGS`` names and compares with
the Keras model's own output.  It prints the converter's or tf.js's own error text, or the largest
difference against the tolerance, and exits 1 when the finding shows, 0 when it does not.  The last
line is the observation as JSON (``REPRODUCER-RESULT {...}``).
"""

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from harness.reduce.script_common import child_result, compare_outputs, keras_reference, output_position, run_observed

SETTINGS: dict[str, Any] = {"keras": "keras", "model": "model.keras", "inputs": ["input"], "backend": "cpu",
                            "runs": "cpu", "env_flags": {}, "browser": False, "chromium": "/usr/bin/chromium",
                            "browser_flags": [], "bundles": [], "secure_page": False, "node_modules": "node_modules",
                            "atol": 1e-4, "rtol": 1e-3}

#: the part that runs the graph model, the same on Node and in the browser
RUN_GRAPH_MODEL = r"""
async function runGraphModel(tf, json, weightData, feed, backend, envFlags) {
  for (const [name, value] of Object.entries(envFlags)) tf.env().set(name, value);
  if (!(await tf.setBackend(backend))) throw new Error('backend ' + backend + ' did not start');
  await tf.ready();
  const specs = [];
  for (const group of json.weightsManifest) specs.push(...group.weights);
  const model = await tf.loadGraphModel(tf.io.fromMemory({modelTopology: json.modelTopology, weightSpecs: specs,
    weightData, format: json.format, generatedBy: json.generatedBy, convertedBy: json.convertedBy,
    signature: json.signature, userDefinedMetadata: json.userDefinedMetadata}));
  const named = {};
  model.inputs.forEach((input, i) => {
    const x = feed.find(f => input.name.split(':')[0].endsWith(f.name)) || feed[i];
    named[input.name] = tf.tensor(x.values, x.shape, x.dtype);
  });
  const names = model.outputs.map(o => o.name);
  let got = await model.executeAsync(named, names);
  if (!Array.isArray(got)) got = [got];
  const outputs = [];
  for (let i = 0; i < got.length; i++) {
    outputs.push({name: names[i], shape: got[i].shape, values: Array.from(await got[i].data())});
  }
  return {backend: tf.getBackend(), outputs, signature: (json.signature && json.signature.outputs) || {}};
}
"""

NODE_RUNNER = RUN_GRAPH_MODEL + r"""
const fs = require('fs');
const path = require('path');
const [, , modules, work, backend] = process.argv;
const tf = require(path.join(modules, '@tensorflow/tfjs'));
async function main() {
  if (backend === 'wasm') {
    const wasm = require(path.join(modules, '@tensorflow/tfjs-backend-wasm'));
    wasm.setWasmPaths(path.join(modules, '@tensorflow/tfjs-backend-wasm/dist') + path.sep);
  }
  const dir = path.join(work, 'tfjs');
  const json = JSON.parse(fs.readFileSync(path.join(dir, 'model.json'), 'utf8'));
  const buffers = [];
  for (const group of json.weightsManifest) for (const p of group.paths) buffers.push(fs.readFileSync(path.join(dir, p)));
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const feed = JSON.parse(fs.readFileSync(path.join(work, 'inputs.json'), 'utf8'));
  console.log('TFJS-RESULT ' + JSON.stringify(await runGraphModel(tf, json, weightData, feed, backend, {})));
}
main().catch(e => { console.log('TFJS-RESULT ' + JSON.stringify({error: String((e && e.message) || e)})); });
"""

#: in the page: the weights arrive as base64, the result goes back to Python
BROWSER_RUNNER = r"""async ([json, weightsBase64, feed, backend, envFlags]) => {
""" + RUN_GRAPH_MODEL + r"""
  const bytes = Uint8Array.from(atob(weightsBase64), c => c.charCodeAt(0));
  try {
    return await runGraphModel(tf, json, bytes.buffer, feed, backend, envFlags);
  } catch (e) {
    return {error: String((e && e.message) || e)};
  }
}
"""


def convert(model, work):
    """SavedModel, then the tensorflowjs converter to a graph model; raises with the converter's own text.

    The converter is called in this process (``convert_tf_saved_model``, with the defaults the
    ``tensorflowjs_converter --input_format=tf_saved_model --output_format=tfjs_graph_model`` command
    passes it): TensorFlow is imported once, not again by a converter process per model."""
    from tensorflowjs.converters import tf_saved_model_conversion_v2

    if SETTINGS["keras"] == "saved_model":  # the model is the SavedModel's directory
        saved = model
    else:
        saved = os.path.join(work, "saved_model")
        model.export(saved, verbose=False)
    try:
        tf_saved_model_conversion_v2.convert_tf_saved_model(saved, os.path.join(work, "tfjs"))
    except Exception as exc:  # the converter's own error, as its command prints it last
        raise RuntimeError(f"{type(exc).__name__}: {exc}"[-4000:]) from exc


def tfjs_feed(inputs):
    """The inputs as tf.js takes them: name, shape, flat values, dtype."""
    import numpy as np

    return [{"name": name, "shape": list(x.shape), "values": x.ravel().tolist(),
             "dtype": "int32" if np.issubdtype(x.dtype, np.integer) else ("bool" if x.dtype == bool else "float32")}
            for name, x in zip(SETTINGS["inputs"], inputs)]


def run_on_node(work, inputs):
    """The graph model's result on Node (tf.js, SETTINGS' backend); raises with tf.js's own text."""
    with open(os.path.join(work, "inputs.json"), "w") as f:
        json.dump(tfjs_feed(inputs), f)
    runner = os.path.join(work, "run.js")
    with open(runner, "w") as f:
        f.write(NODE_RUNNER)
    done = subprocess.run(["node", runner, SETTINGS["node_modules"], work, SETTINGS["backend"]],
                          capture_output=True, text=True)
    return child_result(done, "TFJS-RESULT", "node")


#: the origin of the secure page (fulfilled by the script itself through Playwright: nothing is fetched)
SECURE_ORIGIN = "https://reproducer.invalid/"


def run_in_browser(work, inputs):
    """The graph model's result in headless Chromium (Playwright) on a GPU backend: tf.js from
    ``node_modules`` is put into a blank page, the model and inputs handed over from here (no
    server, no network); raises with tf.js's own text."""
    import base64

    from playwright.sync_api import sync_playwright

    directory = os.path.join(work, "tfjs")
    with open(os.path.join(directory, "model.json")) as f:
        model_json = json.load(f)
    weights = b""
    for group in model_json["weightsManifest"]:
        for name in group["paths"]:
            with open(os.path.join(directory, name), "rb") as f:
                weights += f.read()
    flags = list(SETTINGS["browser_flags"]) + (["--no-sandbox"] if os.geteuid() == 0 else [])  # root: no sandbox
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=SETTINGS["chromium"], headless=True, args=flags)
        try:
            page = browser.new_page()
            console = []
            page.on("console", lambda message: console.append(message.type + ": " + message.text))
            if SETTINGS["secure_page"]:  # that backend's GPU adapter is offered to secure contexts only: an https page
                page.route(SECURE_ORIGIN + "**", lambda route: route.fulfill(
                    status=200, content_type="text/html", body="<!doctype html><title>reproducer</title>"))
                page.goto(SECURE_ORIGIN)
            page.add_script_tag(path=os.path.join(SETTINGS["node_modules"], "@tensorflow/tfjs/dist/tf.min.js"))
            for bundle in SETTINGS["bundles"]:  # the backend's own package (its bundle in the backend table)
                page.add_script_tag(path=bundle)
            result = page.evaluate(BROWSER_RUNNER, [model_json, base64.b64encode(weights).decode("ascii"),
                                                    tfjs_feed(inputs), SETTINGS["runs"], SETTINGS["env_flags"]])
        finally:
            browser.close()
    if "error" in result:  # tf.js's text, and what the browser said in its console (an adapter refused)
        said = [line for line in console if not line.startswith(("log:", "debug:"))]
        raise RuntimeError(result["error"] + ("\nbrowser console:\n" + "\n".join(said[-20:]) if said else ""))
    if result["backend"] != SETTINGS["runs"]:
        raise RuntimeError("tf.js ran on %s, not on %s" % (result["backend"], SETTINGS["runs"]))
    return result


def tfjs_outputs(work, inputs):
    """The graph model's outputs (float64, in the reference's order), on Node or in the browser."""
    import numpy as np

    result = run_in_browser(work, inputs) if SETTINGS["browser"] else run_on_node(work, inputs)
    if SETTINGS["keras"] == "saved_model":  # in the order of the signature's output names, as the reference's
        named = {spec.get("name"): key for key, spec in result["signature"].items()}
        outputs = sorted(result["outputs"], key=lambda o: named.get(o["name"], o["name"]))
    else:
        outputs = sorted(result["outputs"], key=lambda o: output_position(o["name"]))
    return [np.asarray(o["values"], dtype="float64").reshape(o["shape"]) for o in outputs]


def observe(here):
    """What tf.js does with the model in ``here``: a dict with ``kind`` (converter, runtime,
    divergence or none) and the runtime's own text or the figures."""
    model, inputs, want = keras_reference(here, SETTINGS)
    with tempfile.TemporaryDirectory(prefix="reproduce-") as work:
        try:
            convert(model, work)
        except RuntimeError as exc:  # the converter's own error is the finding
            return {"kind": "converter", "error": "tensorflowjs_converter", "text": str(exc)}
        try:
            got = tfjs_outputs(work, inputs)
        except RuntimeError as exc:  # tf.js's own error is the finding
            return {"kind": "runtime", "error": "tf.js " + SETTINGS["backend"], "text": str(exc)}
    return compare_outputs(got, want, SETTINGS["atol"], SETTINGS["rtol"])


def main():
    return run_observed(observe, __file__, "tf.js")


if __name__ == "__main__":
    sys.exit(main())
