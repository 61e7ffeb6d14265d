"""``pitfalls reduce`` on tf.js: a model with an op the tf.js converter refuses (Softsign) is cut to
that layer, and the written script, run fresh with a clean environment, fails the same way with
the converter alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from check_models import require_targets, softsign_keras
from harness.artifacts import ArtifactCache
from harness.cli import main
from harness.paths import NODE_MODULES
from harness.reduce.api import RESULT_PREFIX, reproducers
from harness.reduce.run import REDUCED


def test_an_op_the_converter_refuses_reduces_to_its_layer(tmp_path: Path) -> None:
    require_targets("tfjs")
    if shutil.which("node") is None or not (NODE_MODULES / "@tensorflow" / "tfjs").is_dir():
        pytest.skip("tf.js reproducers need node and @tensorflow/tfjs in node_modules (run the README set-up)")
    out = tmp_path / "softsign"
    assert main(["reduce", str(softsign_keras(ArtifactCache())), "--finding", "tfjs:cpu", "--out", str(out),
                 "-q"]) == REDUCED
    record = json.loads((out / "finding.json").read_text())
    assert record["layers"] == ["hidden"] and record["layers_total"] == 2
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([sys.executable, str(out / "reproduce.py")], cwd=home, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home)}, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert done.returncode == 1 and lines, done.stdout[-2000:] + done.stderr[-2000:]
    seen = json.loads(lines[-1][len(RESULT_PREFIX):])
    assert seen["kind"] == "converter" and "Unsupported Ops in the model before optimization" in seen["text"]
    assert "Softsign" in seen["text"]
    key = reproducers()["tfjs"].key
    assert key(seen) == key(record["observed_on_model"])


@pytest.mark.slow
def test_the_webgl_script_runs_tfjs_in_headless_chromium_and_shows_the_divergence(tmp_path: Path) -> None:
    """webgl needs a browser: the script drives headless Chromium with Playwright (tf.js put into a
    blank page, no server).  The `cancel` layer of check's cancelling MLP, cut out as reduce cuts it
    and run fresh with a clean environment, leaves webgl's tolerance, as in check's own webgl run."""
    require_targets("tfjs")
    from harness.check.model import keras_feed, load_model, synthesise_inputs
    from harness.reduce.api import ScriptSpec
    from harness.reduce.oracle import run_fresh
    from harness.reduce.run import SCRIPT, write_candidate
    from harness.reduce.slicing import Window, build_slice
    from harness.targets.base import ModelSource

    from check_models import cancelling_dense_keras

    model = load_model(ModelSource.from_path(cancelling_dense_keras(ArtifactCache())))
    feed = synthesise_inputs(model)
    made = build_slice(model.keras_model, Window(1, 2), feed, keras_feed(model, feed))
    assert made.layers == ["cancel"]
    spec = ScriptSpec("keras", "model.keras", tuple(made.input_names))
    script = reproducers()["tfjs"].script("webgl", spec)
    assert "import harness" not in script and "sync_playwright" in script
    write_candidate(tmp_path / "webgl", made, script, spec)
    code, seen, output = run_fresh(tmp_path / "webgl" / SCRIPT, tmp_path / "home")
    assert code == 1 and seen["kind"] == "divergence", output[-3000:]
    assert seen["max_abs_diff"] > seen["bound"] > 0.01  # beyond webgl's (float16) tolerance, not float32's


@pytest.mark.slow
def test_the_webgpu_script_runs_tfjs_on_webgpu_in_a_secure_page_and_shows_the_divergence(tmp_path: Path) -> None:
    """webgpu runs in this headless Chromium (its GPU process on SwiftShader's Vulkan, the flags of
    the backend table): the script fulfils an https page itself (WebGPU's adapter is offered to
    secure contexts only; nothing is fetched), loads tf.js and the webgpu bundle, and checks that
    tf.js runs on webgpu.  The `cancel` layer, run fresh, leaves float32 tolerance on webgpu: its
    sum of terms of order 1e6 is rounded in webgpu's own order."""
    require_targets("tfjs")
    from harness.check.model import keras_feed, load_model, synthesise_inputs
    from harness.reduce.api import ScriptSpec
    from harness.reduce.oracle import run_fresh
    from harness.reduce.run import SCRIPT, write_candidate
    from harness.reduce.slicing import Window, build_slice
    from harness.targets.base import ModelSource

    from check_models import cancelling_dense_keras

    assert "tfjs:webgpu" in [f"{t}:{p}" for t, r in reproducers().items() for p in r.paths]
    model = load_model(ModelSource.from_path(cancelling_dense_keras(ArtifactCache())))
    feed = synthesise_inputs(model)
    made = build_slice(model.keras_model, Window(1, 2), feed, keras_feed(model, feed))
    spec = ScriptSpec("keras", "model.keras", tuple(made.input_names))
    script = reproducers()["tfjs"].script("webgpu", spec)
    assert "'secure_page': True" in script and "tf-backend-webgpu.min.js" in script and "--disable-gpu" not in script
    write_candidate(tmp_path / "webgpu", made, script, spec)
    code, seen, output = run_fresh(tmp_path / "webgpu" / SCRIPT, tmp_path / "home")
    assert code == 1 and seen["kind"] == "divergence", output[-3000:]
    assert seen["max_abs_diff"] > seen["bound"] and seen["bound"] < 0.01  # float32's tolerance, not float16's
