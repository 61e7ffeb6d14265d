"""Tests of the serving images (harness.environments.serving_image) and ServingContainer.

The unit tests need nothing; the engine tests skip with the exact reason when no Docker engine
answers (scripts/setup-docker.sh starts one) and build the serving image on first use (about
3.5 minutes on a fresh machine, then cached).
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import waiting
from harness.environments import engine as docker_engine
from harness.environments import mirror
from harness.environments import serving_image as recipe
from harness.targets.tfserving import container as serving
from harness.errors import RuntimeFailure, SetupError, WaitTimeout

TF_VERSION = "2.19.0"
OLD_TF_VERSION = "2.12.0"


# --- unit tests (no engine) --------------------------------------------------------------

def test_serving_requirements_follow_the_tf_version() -> None:
    assert recipe.serving_requirements("2.12.0") == [
        "tensorflow==2.12.0", "tensorflow-serving-api==2.12.*", "grpcio", "numpy"]
    assert "manylinux_2_17_x86_64" in recipe.PIP_PLATFORMS
    assert "manylinux2014_x86_64" in recipe.PIP_PLATFORMS


def test_base_tag_changes_with_the_mirror() -> None:
    one = recipe.base_image_tag("bookworm", "http://a.example/debian")
    two = recipe.base_image_tag("bookworm", "http://b.example/debian")
    assert one != two and one.startswith("pitfalls/base:bookworm-")


def test_serving_container_constructor_does_not_talk_to_the_daemon(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    container = serving.ServingContainer("pitfalls/none:0", model_name="m", model_dir=tmp_path)
    assert container.mounts == {str(tmp_path.resolve()): "/models/m"}
    assert container.env["MODEL_NAME"] == "m"
    with pytest.raises(Exception, match="no published port"):
        _ = container.rest_url


def test_docker_client_without_engine_raises_setup_error_with_hint(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(SetupError, match="setup-docker.sh") as caught:
        docker_engine.docker_client()
    assert caught.value.evidence


FAILED_LOAD_LOG = (
    "2026-11-22 18:01:50.911222: E tfs_compat/core.py:289] Loading servable: {name: fft version: 1} "
    "failed: NOT_FOUND: Converting GraphDef to Graph has failed with an error: 'Op type not "
    "registered 'FFTND' in binary running on 8f6e1e6c38e5.' The binary trying to import the "
    "GraphDef was built when GraphDef version was 1395.\n"
    "2026-11-22 18:02:50.912568: I tfs_compat/core.py:282] Retrying load on servable version "
    "{name: fft version: 1} retry: 1\n")


def test_load_failure_is_read_from_the_server_log() -> None:
    code, message = serving.load_failure_in_log(FAILED_LOAD_LOG, "fft") or ("", "")
    assert code == "NOT_FOUND"
    assert message.startswith("Converting GraphDef to Graph has failed with an error: 'Op type "
                              "not registered 'FFTND'")
    assert message.endswith("GraphDef version was 1395.")
    assert serving.load_failure_in_log(FAILED_LOAD_LOG, "other") is None


def test_load_failure_read_before_or_after_the_server_exits_is_the_same_text() -> None:
    """A server that fails its first load logs the error, then exits printing "Failed to start server.
    Error: ..." on a line of no log prefix. The readiness wait may read the log before or after that
    line: the load failure's text must not depend on which (a catalog run saw both; `pitfalls diff`
    then said "new error text" of two runs of the same versions)."""
    first_line = FAILED_LOAD_LOG.split("\n")[0] + "\n"
    exit_line = ("Failed to start server. Error: UNKNOWN: 1 servable(s) did not become available: {{{name: fft "
                 "version: 1} due to error: NOT_FOUND: Converting GraphDef to Graph has failed}, }\n")
    before = serving.load_failure_in_log(first_line, "fft")
    after = serving.load_failure_in_log(first_line + exit_line, "fft")
    assert before is not None and after == before, (before, after)


def test_readiness_abort_asks_the_exit_before_it_reads_the_log() -> None:
    """One abort for the container, forked and host servers: a server that logs its load error and
    exits between the two reads is seen with its error (the log is read after the exit is asked)."""
    calls: list[str] = []
    log = {"text": "2026-11-22 18:01:49.000000: I tfs_compat/core.py:200] Loading servable version {name: fft version: 1}\n"}

    def exited() -> str | None:
        calls.append("exited")
        log["text"] += FAILED_LOAD_LOG  # the server writes its error and exits right after this answer
        return "server process exited with code 1"

    def logs() -> str:
        calls.append("logs")
        return log["text"]

    abort = serving.readiness_abort(exited, logs, "fft", "tfs-compat", True, "server log")
    with pytest.raises(RuntimeFailure) as raised:
        abort()
    assert calls == ["exited", "logs"]
    assert "Op type not registered 'FFTND'" in raised.value.message
    assert raised.value.source == "server log: 'Loading servable ... failed'"
    calls.clear()
    quiet = serving.readiness_abort(lambda: calls.append("exited") or "exited with code 3", logs, "fft", "tfs-compat",
                                    False, "server log")
    assert quiet() == "exited with code 3" and calls == ["exited"]  # fail_on_load_error off: the log is not read

# --- engine tests ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def engine() -> Any:
    reason = docker_engine.engine_unavailable_reason()
    if reason:
        pytest.skip(f"no Docker engine answers here: {reason}")
    return docker_engine.docker_client()


@pytest.fixture(scope="module")
def serving_image(engine: Any) -> recipe.ServingImage:
    return recipe.ensure_serving_image(TF_VERSION)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras 3 ``model.export`` SavedModel (Dense 4 -> 2, fixed weights) as version 1."""
    base = tmp_path_factory.mktemp("models") / "tiny"
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.keras.Sequential([tf.keras.Input((4,)), tf.keras.layers.Dense(2)])\n"
        "m.layers[0].set_weights([np.ones((4, 2), 'float32'), np.array([0.5, -0.5], 'float32')])\n"
        "m.export(sys.argv[1], verbose=False)\n")
    subprocess.run([sys.executable, "-c", script, str(base / "1")], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True)
    return base


def _containers_named(engine: Any, name: str) -> list[Any]:
    return engine.containers.list(all=True, filters={"name": f"^/{name}$"})


def _predict(rest_url: str, model: str, instances: list[list[float]]) -> dict[str, Any]:
    request = urllib.request.Request(f"{rest_url}/v1/models/{model}:predict",
                                     data=json.dumps({"instances": instances}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        result: dict[str, Any] = json.loads(reply.read())
    return result


@pytest.mark.slow
def test_build_is_cached(serving_image: recipe.ServingImage) -> None:
    again = recipe.ensure_serving_image(TF_VERSION)
    assert again.tag == serving_image.tag
    assert again.reused and again.built_seconds == 0.0  # found, not built (whatever the lookup took)
    assert again.tag.startswith(f"pitfalls/serving-compat:{TF_VERSION}-")
    assert again.implementation == "tfserving-compatible"


@pytest.fixture(scope="module")
def served_tiny(engine: Any, serving_image: recipe.ServingImage, tiny_model: Path) -> dict[str, Any]:
    """One serving container of the tiny model, from start to removal: what it answered and what
    Docker said about it while it ran, and after (two tests read it; one container start, not two)."""
    seen: dict[str, Any] = {}
    with serving.ServingContainer(serving_image, model_name="tiny", model_dir=tiny_model) as server:
        seen["predict"] = _predict(server.rest_url, "tiny", [[1.0, 2.0, 3.0, 4.0]])
        seen["start_to_ready_seconds"] = server.start_to_ready_seconds
        host, _, port = server.grpc_target.partition(":")
        with socket.create_connection((host, int(port)), timeout=5):
            seen["grpc_connected"] = True
        seen["logs"] = server.logs()
        seen["attrs"] = engine.containers.get(server.container_id).attrs
        name = server.name
    seen["left_after_exit"] = _containers_named(engine, name)
    seen["logs_after_removal"] = server.logs()
    return seen


@pytest.mark.slow
def test_serving_container_answers_predict(served_tiny: dict[str, Any]) -> None:
    assert served_tiny["predict"]["predictions"] == [[10.5, 9.5]]
    assert served_tiny["start_to_ready_seconds"] is not None
    assert served_tiny["grpc_connected"]
    assert "tiny" in served_tiny["logs"]
    assert served_tiny["left_after_exit"] == []
    assert "tiny" in served_tiny["logs_after_removal"], "the logs stay readable after removal"


@pytest.mark.slow
def test_ports_are_published_on_loopback_only(served_tiny: dict[str, Any]) -> None:
    attrs = served_tiny["attrs"]
    ports = attrs["NetworkSettings"]["Ports"]
    bindings = ports["8500/tcp"] + ports["8501/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}
    assert attrs["Config"]["Labels"]["pitfalls"] == "1"
    mounts = attrs["Mounts"]
    assert [(m["Destination"], m["RW"]) for m in mounts] == [("/models/tiny", False)]


@pytest.mark.slow
@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_container_is_removed_after_an_exception_inside_the_block(
        engine: Any, serving_image: recipe.ServingImage, tiny_model: Path,
        error: type[BaseException]) -> None:
    container = serving.ServingContainer(serving_image, model_name="tiny", model_dir=tiny_model,
                                        wait=False)
    with pytest.raises(error), container:
        assert _containers_named(engine, container.name)
        raise error("inside the block")
    assert _containers_named(engine, container.name) == []


class _ClockEndedByTheLog:
    """A made-up clock for a readiness wait: the real seconds until the container log shows
    ``text``, then ``timeout`` seconds more, so the wait gives up as it does at its deadline as soon
    as the evidence it must carry is there, instead of sitting the whole timeout out (``timeout`` on
    the real clock still bounds a log that never shows it)."""

    def __init__(self, text: str, timeout: float) -> None:
        self.text, self.timeout = text, timeout
        self.container: serving.ServingContainer | None = None
        self.origin: float | None = None

    def __call__(self) -> float:
        import time

        now = time.monotonic()
        if self.origin is None:  # the wait's start
            self.origin = now
            return 0.0
        seen = self.container is not None and self.text in self.container.logs(40)
        return now - self.origin + (self.timeout if seen else 0.0)


@pytest.mark.slow
def test_wait_timeout_carries_the_log_tail(engine: Any, serving_image: recipe.ServingImage,
                                           tiny_model: Path) -> None:
    # the server looks for /models/wrong_name for ever (it never exits): the wait ends by its
    # timeout, on a clock that reaches it once the log says where the server looked
    clock = _ClockEndedByTheLog("/models/wrong_name", timeout=180)
    container = serving.ServingContainer(serving_image, model_name="tiny", model_dir=tiny_model,
                                        env={"MODEL_NAME": "wrong_name"}, ready_timeout=clock.timeout,
                                        ready_clock=clock)
    clock.container = container
    with pytest.raises(WaitTimeout) as caught, container:
        pytest.fail("the container should never become ready")
    text = str(caught.value)
    assert "never became AVAILABLE" in text and "was not ready after 180s" in text
    assert "container log" in caught.value.evidence
    assert "/models/wrong_name" in caught.value.evidence, caught.value.evidence
    assert "MODEL_NAME (wrong_name)" in caught.value.hint
    assert _containers_named(engine, container.name) == []


@pytest.fixture(scope="module")
def fftnd_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Keras 3 export whose graph holds FFTND, an op TF 2.12 does not have."""
    base = tmp_path_factory.mktemp("models") / "fft"
    script = (
        "import sys, tensorflow as tf, keras\n"
        "class SpectrumMagnitude(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        z = tf.complex(x, tf.zeros_like(x))\n"
        "        return tf.math.abs(tf.signal.fftnd(z, fft_length=[4, 4], axes=[-2, -1]))\n"
        "i = keras.Input((4, 4))\n"
        "x = keras.layers.Flatten()(SpectrumMagnitude()(i))\n"
        "keras.Model(i, keras.layers.Dense(2)(x)).export(sys.argv[1], verbose=False)\n")
    subprocess.run([sys.executable, "-c", script, str(base / "1")], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, capture_output=True)
    return base


@pytest.fixture(scope="module")
def old_tf_image(engine: Any) -> recipe.ServingImage:
    return recipe.ensure_serving_image(OLD_TF_VERSION)


@pytest.mark.slow
def test_old_tf_cannot_load_a_savedmodel_with_a_newer_op(
        engine: Any, old_tf_image: recipe.ServingImage, fftnd_model: Path) -> None:
    """TF 2.12 rejects a TF 2.19 export that uses FFTND, with TF's own error text."""
    assert old_tf_image.tag.startswith(f"pitfalls/serving-compat:{OLD_TF_VERSION}-")
    container = serving.ServingContainer(old_tf_image, model_name="fft", model_dir=fftnd_model,
                                        ready_timeout=120)
    with pytest.raises(RuntimeFailure, match="Op type not registered 'FFTND'") as caught, container:
        pytest.fail("TF 2.12 should not load this SavedModel")
    assert caught.value.kind == "NOT_FOUND"
    assert caught.value.runtime == "tfserving-compatible"
    assert _containers_named(engine, container.name) == []


@pytest.mark.slow
def test_old_tf_still_loads_a_plain_keras3_export(
        engine: Any, old_tf_image: recipe.ServingImage, tiny_model: Path) -> None:
    """Only a newer op breaks TF 2.12: its tf.saved_model.load takes a plain Dense export."""
    script = ("import tensorflow as tf\n"
              "m = tf.saved_model.load('/models/tiny/1')\n"
              "print('LOADED', tf.__version__, sorted(m.signatures))\n")
    container = engine.containers.create(
        old_tf_image.tag, entrypoint=["python", "-c", script], network_disabled=True,
        volumes={str(tiny_model): {"bind": "/models/tiny", "mode": "ro"}},
        environment={"TF_CPP_MIN_LOG_LEVEL": "3"}, labels={"pitfalls": "1", "pitfalls.pid": str(os.getpid())})
    try:
        container.start()
        exit_code = container.wait(timeout=300)["StatusCode"]
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    assert exit_code == 0, output
    assert f"LOADED {OLD_TF_VERSION} ['serve', 'serving_default']" in output, output


@pytest.mark.slow
def test_real_image_is_used_only_when_present(engine: Any, serving_image: recipe.ServingImage,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in tag plays a `docker load`-ed tensorflow/serving image; nothing is pulled."""
    stand_in = f"tensorflow/serving:pitfalls-test-{os.getpid()}"
    monkeypatch.setenv("PITFALLS_REAL_SERVING_IMAGE", stand_in)
    assert recipe.real_serving_image() is None
    with pytest.raises(SetupError, match="no tensorflow/serving image is present locally"):
        recipe.ensure_serving_image(TF_VERSION, implementation="tensorflow/serving")
    engine.images.get(serving_image.tag).tag("tensorflow/serving", f"pitfalls-test-{os.getpid()}")
    try:
        assert recipe.real_serving_image() == stand_in
        real = recipe.ensure_serving_image(TF_VERSION, implementation="tensorflow/serving")
        assert (real.tag, real.implementation) == (stand_in, "tensorflow/serving")
        assert serving.ServingContainer(stand_in).image.implementation == "tensorflow/serving"
    finally:
        engine.images.remove(stand_in)

