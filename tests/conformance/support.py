"""Helpers for the conformance suite: the server process, readiness, tiny models, clients.

Nothing here runs at import time; TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVER_DIR = REPO_ROOT / "containers" / "tfserving-compat"
ENV_REST = "PITFALLS_CONFORMANCE_REST"
ENV_GRPC = "PITFALLS_CONFORMANCE_GRPC"
ENV_MODEL = "PITFALLS_CONFORMANCE_MODEL"


# ------------------------------------------------------------------ HTTP


@dataclasses.dataclass(frozen=True)
class HttpReply:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def http(method: str, url: str, body: Optional[bytes | str | dict[str, Any]] = None,
         timeout: float = 30.0, headers: Optional[dict[str, str]] = None) -> HttpReply:
    """One request; HTTP errors are returned, not raised."""
    data: Optional[bytes]
    if isinstance(body, dict):
        data = json.dumps(body).encode()
    elif isinstance(body, str):
        data = body.encode()
    else:
        data = body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return HttpReply(response.status, response.read().decode())
    except urllib.error.HTTPError as error:
        return HttpReply(error.code, error.read().decode())


# ------------------------------------------------------------------ waits


class WaitTimeout(AssertionError):
    """A wait gave up; the message says what it saw last and where to look."""


@dataclasses.dataclass
class HttpReady:
    """Wait until ``GET url`` answers 200 (TF Serving opens its ports only once models loaded)."""

    url: str
    timeout: float = 90.0
    interval: float = 0.2

    def wait(self, alive: Optional["ServerProcess"] = None) -> None:
        deadline = time.monotonic() + self.timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if alive is not None and alive.returncode() is not None:
                raise WaitTimeout(f"server exited with {alive.returncode()} before {self.url} was ready\n"
                                  f"--- stdout ---\n{alive.stdout_text()}\n--- log tail ---\n{alive.log_tail()}")
            try:
                reply = http("GET", self.url, timeout=2.0)
                if reply.status == 200:
                    return
                last = f"HTTP {reply.status}: {reply.text[:200]}"
            except OSError as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(self.interval)
        tail = alive.log_tail() if alive is not None else ""
        raise WaitTimeout(f"{self.url} not ready after {self.timeout}s; last: {last}\n--- log tail ---\n{tail}\n"
                          "hint: the server logs 'No versions of servable' when the base path has no "
                          "numeric version directory")


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise WaitTimeout(f"{what} not reached after {timeout}s; last value: {value!r}")


# ------------------------------------------------------------------ process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """Our TF Serving-compatible server as a subprocess on loopback ports (a context manager)."""

    def __init__(self, args: list[str], workdir: Path, rest: bool = True) -> None:
        self.grpc_port = free_port()
        self.rest_port = free_port() if rest else 0
        self.args = [f"--port={self.grpc_port}", f"--rest_api_port={self.rest_port}",
                     "--listen_host=127.0.0.1", *args]
        self.workdir = workdir
        self.log_path = workdir / f"server-{self.grpc_port}.log"
        self.out_path = workdir / f"server-{self.grpc_port}.out"
        self._process: Optional[subprocess.Popen[bytes]] = None

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self) -> "ServerProcess":
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SERVER_DIR), env.get("PYTHONPATH", "")]))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log, open(self.out_path, "wb") as out:
            self._process = subprocess.Popen([sys.executable, "-m", "tfs_compat", *self.args],
                                             stdout=out, stderr=log, env=env, cwd=self.workdir)
        return self

    def returncode(self) -> Optional[int]:
        return None if self._process is None else self._process.poll()

    def wait_exit(self, timeout: float) -> int:
        """The exit code, or a failure that says what the server printed last (a guard against a hang:
        a busy 2-core machine starting a dozen TensorFlow processes at once needs minutes)."""
        assert self._process is not None
        try:
            return self._process.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the server {' '.join(self.args)} had not exited after {timeout:.0f}s more; its log ends:\n"
                f"{self.log_tail() or '(empty)'}\nits stdout ends:\n{self.stdout_text()[-2000:] or '(empty)'}") from None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stdout_text(self) -> str:
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_ready(self, model: str, timeout: float = 300.0) -> "ServerProcess":
        HttpReady(f"{self.rest_url}/v1/models/{model}", timeout=timeout).wait(alive=self)
        return self

    def terminate(self, timeout: float = 10.0) -> float:
        """SIGTERM; returns seconds until exit."""
        if self._process is None or self._process.poll() is not None:
            return 0.0
        started = time.monotonic()
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        return time.monotonic() - started

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.terminate()


# ------------------------------------------------------------------ models


def export_keras_model(version_dir: Path, seed: int = 0, features: int = 8) -> None:
    """Train a tiny seeded Keras MLP for a few steps and ``model.export`` it (a SavedModel)."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    rows = np.random.RandomState(seed).rand(64, features).astype("float32")
    model.fit(rows, rows.sum(axis=1), epochs=2, batch_size=32, verbose=0)
    model.export(str(version_dir), verbose=False)


def export_example_model(version_dir: Path, slope: float = 0.5, offset: float = 2.0) -> None:
    """A graph SavedModel with predict, classify, regress and a batch-size probe signature.

    y = slope * x + offset, like TF Serving's half_plus_two test model (built here, not copied).
    ``batch_probe`` also returns, for every row, the number of rows in the Session run: the
    evidence that the server merged requests into one batch.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    utils = v1.saved_model.signature_def_utils
    graph = tf.Graph()
    with graph.as_default():
        serialized = v1.placeholder(tf.string, [None], name="tf_example")
        parsed = tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})
        a = v1.Variable(slope, name="a")
        b = v1.Variable(offset, name="b")
        from_examples = tf.add(a * parsed["x"], b, name="y_from_examples")
        x = v1.placeholder(tf.float32, [None, 1], name="x")
        y = tf.add(a * x, b, name="y")
        batch = tf.fill([tf.shape(x)[0]], tf.shape(x)[0], name="batch_size")
        builder = v1.saved_model.Builder(str(version_dir))
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            signatures = {
                "serving_default": utils.predict_signature_def({"x": x}, {"y": y}),
                "batch_probe": utils.predict_signature_def({"x": x}, {"y": y, "batch_size": batch}),
                "classify_x_to_y": utils.classification_signature_def(serialized, None, from_examples),
                "regress_x_to_y": utils.regression_signature_def(serialized, from_examples),
            }
            builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
            builder.save()


# ------------------------------------------------------------------ gRPC


def grpc_stubs(address: str) -> tuple[Any, Any, Any]:
    """(channel, PredictionServiceStub, ModelServiceStub) with the official stubs."""
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(address)
    return (channel, prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel))


# ------------------------------------------------------------------ a server image


class DockerServer:
    """A serving image (e.g. the real ``tensorflow/serving:2.19.0``) on the exported models.

    ``docker run --pull=never``: the image must be in the local engine already (``docker pull``
    it first); ports are published on 127.0.0.1 only; the container is removed on exit.
    """

    def __init__(self, image: str, models_root: Path, config_in_container: str = "/models/models.config") -> None:
        self.image = image
        self.models_root = models_root
        self.config = config_in_container
        self.container = ""
        self.rest_url = ""
        self.grpc_address = ""

    def _docker(self, *args: str) -> str:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"docker {' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def _port(self, port: int) -> str:
        mapping = self._docker("port", self.container, f"{port}/tcp").splitlines()[0]
        return mapping.rpartition(":")[2]

    def logs(self) -> str:
        done = subprocess.run(["docker", "logs", "--tail", "60", self.container], capture_output=True, text=True,
                              check=False)
        return done.stdout + done.stderr

    def __enter__(self) -> "DockerServer":
        self.container = self._docker(
            "run", "-d", "--pull=never", "-p", "127.0.0.1::8500", "-p", "127.0.0.1::8501",
            "-v", f"{self.models_root}:/models:ro", self.image, f"--model_config_file={self.config}")
        try:
            self.rest_url = f"http://127.0.0.1:{self._port(8501)}"
            self.grpc_address = f"127.0.0.1:{self._port(8500)}"
        except Exception:
            self.__exit__()
            raise
        return self

    def wait_ready(self, model: str, timeout: float = 180.0) -> None:
        try:
            HttpReady(f"{self.rest_url}/v1/models/{model}", timeout=timeout).wait()
        except WaitTimeout as error:
            raise WaitTimeout(f"{error}\n--- {self.image} log ---\n{self.logs()}") from None

    def __exit__(self, *exc: object) -> None:
        if self.container:
            subprocess.run(["docker", "rm", "-f", self.container], capture_output=True, check=False)
            self.container = ""
