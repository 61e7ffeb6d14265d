"""A SavedModel served over TF Serving's REST and gRPC APIs.

Two ways to run the server, one interface (:class:`Server`):

* **container** (the default wherever a Docker engine answers): ``harness.images`` builds the
  serving image locally (never pulled) and :class:`harness.images.ServingContainer` runs it with
  ports on 127.0.0.1.  The image runs the real ``tensorflow/serving`` when that image is present
  locally, else our **TF Serving-compatible server** (``containers/tfserving-compat``), which
  executes SavedModels with TensorFlow's own runtime.
* **subprocess**: the TF Serving-compatible server as a plain process of the host venv on
  127.0.0.1, used when no engine runs (``PITFALLS_SERVING=subprocess`` forces it).  Scenarios that
  need container features (mounted config files, other TF versions) skip there with the reason.

Every result records which implementation and mode ran.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from harness.artifacts import library_versions
from harness.errors import HarnessError, RuntimeFailure
from harness.errors import NotApplicable
from harness.paths import REPO_ROOT
from harness.targets.base import Target

COMPAT_DIR = REPO_ROOT / "containers" / "tfserving-compat"
MODES = ("auto", "container", "subprocess")


def model_base_path(workdir: Path, versions: Mapping[int | str, Path], name: str = "model", *,
                    hard_links: bool = False) -> Path:
    """A model base path as TF Serving expects it: ``<name>/<version>/saved_model.pb``.

    The SavedModels are copied (not symlinked) so that the directory can be bind-mounted.  With
    ``hard_links`` (for large models that nothing writes to) files are hard-linked where the file
    system allows it; never use it when a scenario writes into the version directories, since a
    hard link shares the cached file.
    """
    import shutil

    def link_or_copy(source: str, target: str) -> object:
        try:
            os.link(source, target)
            return target
        except OSError:
            return shutil.copy2(source, target)

    base = workdir / name
    base.mkdir(parents=True, exist_ok=True)
    for version, saved in versions.items():
        shutil.copytree(saved, base / str(version), copy_function=link_or_copy if hard_links else shutil.copy2)
    return base


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    """An HTTP reply of the server: status and parsed JSON body (or raw text)."""

    status: int
    body: Any
    text: str
    seconds: float

    @property
    def error(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


@dataclass
class Server:
    """A running server: addresses, implementation, logs and small REST helpers."""

    rest_url: str
    grpc_target: str
    implementation: str
    mode: str
    model_name: str
    _logs: Any = field(repr=False, default=None)
    published: dict[str, list[str]] = field(default_factory=dict)
    """Container port -> ``host_ip:host_port`` bindings (empty for a host subprocess)."""

    def logs(self, tail_lines: int | None = None) -> str:
        return str(self._logs(tail_lines)) if self._logs else ""

    def request(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
                timeout: float = 60.0, headers: Mapping[str, str] | None = None,
                base_url: str | None = None) -> Reply:
        """Send a request; ``body`` is JSON-encoded, ``raw`` sent as is.

        ``base_url`` sends it elsewhere than the server's REST port (e.g. a proxy in front).
        """
        return http_request(method, (base_url or self.rest_url) + path, body, raw=raw, timeout=timeout,
                            headers=headers)

    def model_path(self, model: str | None = None, *, version: int | None = None,
                   label: str | None = None) -> str:
        path = f"/v1/models/{model or self.model_name}"
        if version is not None:
            path += f"/versions/{version}"
        elif label is not None:
            path += f"/labels/{label}"
        return path

    def predict(self, body: Mapping[str, Any], *, model: str | None = None, version: int | None = None,
                verb: str = "predict", label: str | None = None) -> Any:
        """POST ``:predict`` (or ``:classify``/``:regress``); an error body raises RuntimeFailure."""
        path = self.model_path(model, version=version, label=label) + f":{verb}"
        reply = self.request("POST", path, body)
        if reply.status != 200 or reply.error:
            raise RuntimeFailure(self.implementation, reply.error or reply.text, kind=f"HTTP {reply.status}",
                                 source=f"error body of POST {path}")
        return reply.body

    def raise_from_log(self, pattern: str, *, timeout: float = 60.0) -> None:
        """Wait for a server log line matching ``pattern`` and raise it as the runtime's error.

        For failures TF Serving reports only in its log (e.g. a model it never finds).  Returns
        without raising when no such line appeared within ``timeout``.
        """
        import re

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.logs().splitlines():
                if re.search(pattern, line):
                    raise RuntimeFailure(self.implementation, line.strip(), kind="log",
                                         source="the server's log (stderr)")
            time.sleep(0.5)

    def status(self, model: str | None = None) -> Reply:
        return self.request("GET", self.model_path(model))

    def metadata(self, model: str | None = None) -> Any:
        reply = self.request("GET", self.model_path(model) + "/metadata")
        if reply.status != 200:
            raise RuntimeFailure(self.implementation, reply.error or reply.text, kind=f"HTTP {reply.status}",
                                 source="error body of GET /metadata")
        return reply.body


def http_request(method: str, url: str, body: Any = None, *, raw: bytes | None = None, timeout: float = 60.0,
                 headers: Mapping[str, str] | None = None) -> Reply:
    """One HTTP request; an error status is a :class:`Reply` too (its body is the server's)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode(errors="replace")
    seconds = time.perf_counter() - started
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    return Reply(status, parsed, text, seconds)


class TfservingTarget(Target):
    """TF Serving's API, in a container (or a host subprocess where no engine runs)."""

    name = "tfserving"

    def __init__(self, mode: str | None = None) -> None:
        super().__init__()
        self.requested_mode = mode or os.environ.get("PITFALLS_SERVING", "auto")
        if self.requested_mode not in MODES:
            raise HarnessError(f"PITFALLS_SERVING={self.requested_mode!r} is not a serving mode",
                               hint=f"use one of {MODES}")
        self.mode = "subprocess"
        self.engine_reason: str | None = None

    @classmethod
    def unavailable_reason(cls) -> str | None:
        missing = [d for d, v in library_versions("tensorflow", "tensorflow-serving-api").items() if v == "missing"]
        if missing:
            return f"Python packages not installed: {', '.join(missing)} (run the README set-up)"
        if not (COMPAT_DIR / "tfs_compat" / "__main__.py").is_file():
            return f"the TF Serving-compatible server is missing at {COMPAT_DIR}"
        return None

    def activate_impl(self) -> None:
        from harness.images import engine_unavailable_reason

        self.engine_reason = engine_unavailable_reason() if self.requested_mode != "subprocess" else "not asked for"
        if self.requested_mode == "container" and self.engine_reason:
            raise HarnessError(f"PITFALLS_SERVING=container but no Docker engine answers: {self.engine_reason}",
                               hint="run scripts/setup-docker.sh as root")
        self.mode = "subprocess" if self.engine_reason else "container"

    def deactivate_impl(self) -> None:
        if self.mode == "container":
            from harness.images import remove_leftover_containers

            remove_leftover_containers()

    def versions(self) -> dict[str, str]:
        found = library_versions("tensorflow", "tensorflow-serving-api", "docker")
        found["serving_mode"] = self.mode
        return found

    def require_container(self, why: str) -> None:
        """Skip (with the reason) when this scenario needs a container but none can run here."""
        if self.mode != "container":
            raise NotApplicable(f"{why} needs a Docker engine, and none answers here ({self.engine_reason})")

    @contextmanager
    def serve(self, *, model_name: str = "model", model_dir: Path | None = None,
              models: Mapping[str, Path] | None = None, files: Mapping[Path, str] | None = None,
              env: Mapping[str, str] | None = None, args: Sequence[str] = (), wait: str = "available",
              ready_model: str | None = None, ready_timeout: float = 180.0, tf_version: str = "2.19.0",
              fail_on_load_error: bool = True, command: Sequence[str] | None = None) -> Iterator[Server]:
        """Start a server for ``model_dir`` (a directory of numbered version subdirectories).

        ``wait`` is ``"available"`` (a version of ``ready_model`` is AVAILABLE), ``"listening"``
        (the REST port answers, whatever it says) or ``"started"`` (the process or container runs;
        TF Serving opens its ports only after the initial model load, so this is how a server that
        never loads is observed, through :meth:`Server.raise_from_log`).

        In a container ``model_dir`` is mounted at ``/models/<model_name>``, ``models`` at
        ``/models/<name>``, ``files`` at the given container paths; ``command`` replaces the image's
        entrypoint and flags (the engine's own error, e.g. an executable not found, is raised as
        :class:`RuntimeFailure` of runtime ``docker``).  The server is stopped and removed when the
        block ends, whatever happens.
        """
        self.require_active()
        if wait not in ("available", "listening", "started"):
            raise HarnessError(f"serve(wait={wait!r}) is not a wait mode",
                               hint="use 'available', 'listening' or 'started'")
        if self.mode == "container":
            from harness.images import ServingContainer, ensure_serving_image

            image = ensure_serving_image(tf_version)
            container = ServingContainer(image, model_name=model_name, model_dir=model_dir, models=models,
                                         files=files, env=env, args=args, command=command,
                                         wait=wait == "available", ready_model=ready_model,
                                         ready_timeout=ready_timeout, fail_on_load_error=fail_on_load_error)
            with _engine_errors_raised(container.name), container as c:
                server = Server(c.rest_url, c.grpc_target, f"{image.implementation} (container {image.tag})",
                                "container", model_name, c.logs, _published_ports(c.container_id))
                if wait == "listening":
                    _wait_listening(server, ready_timeout)
                yield server
            return
        if models or files or command or tf_version != "2.19.0":
            raise NotApplicable("this scenario mounts files or needs another TF version: it needs a Docker "
                                f"engine, and none answers here ({self.engine_reason})")
        with self._subprocess(model_name, model_dir, env or {}, args, wait, ready_model, ready_timeout,
                              fail_on_load_error) as server:
            yield server

    @contextmanager
    def _subprocess(self, model_name: str, model_dir: Path | None, env: Mapping[str, str], args: Sequence[str],
                    wait: str, ready_model: str | None, ready_timeout: float,
                    fail_on_load_error: bool) -> Iterator[Server]:
        from harness.images import COMPAT_IMPLEMENTATION, HttpReady, ModelAvailable

        rest, grpc = _free_port(), _free_port()
        name = env.get("MODEL_NAME", model_name)
        base = str(model_dir) if model_dir is not None else f"/models/{name}"
        cmd = [sys.executable, "-m", "tfs_compat", f"--port={grpc}", f"--rest_api_port={rest}",
               "--listen_host=127.0.0.1", f"--model_name={name}", f"--model_base_path={base}", *args]
        log = tempfile.TemporaryFile(mode="w+")
        child_env = {**os.environ, "PYTHONPATH": str(COMPAT_DIR), "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)

        def logs(tail_lines: int | None = None) -> str:
            log.flush()
            log.seek(0)
            lines = log.read().splitlines()
            return "\n".join(lines[-tail_lines:] if tail_lines else lines)

        server = Server(f"http://127.0.0.1:{rest}", f"127.0.0.1:{grpc}", f"{COMPAT_IMPLEMENTATION} (host subprocess)",
                        "subprocess", model_name, logs)
        try:
            if wait == "available":
                from harness.errors import WaitTimeout

                def exited() -> str | None:
                    """Raise the server's own load error (as in a container), else say it has exited."""
                    from harness.images import load_failure_in_log

                    failure = load_failure_in_log(logs(), ready_model or name) if fail_on_load_error else None
                    if failure is not None:
                        raise RuntimeFailure(server.implementation, failure[1], kind=failure[0],
                                             source="server log: 'Loading servable ... failed'")
                    code = proc.poll()
                    return None if code is None else f"server process exited with code {code}"

                try:
                    HttpReady(f"{server.rest_url}/v1/models/{ready_model or name}",
                              ModelAvailable(COMPAT_IMPLEMENTATION, fail_on_load_error), timeout=ready_timeout,
                              poll_interval=0.3, abort=exited).wait()
                except WaitTimeout as exc:
                    raise WaitTimeout(exc.message, evidence=f"{exc.evidence}\n--- server log ---\n{logs(40)}",
                                      hint="read the server log above") from None
            elif wait == "listening":
                _wait_listening(server, ready_timeout)
            yield server
        finally:
            _stop(proc)
            log.close()


@contextmanager
def _engine_errors_raised(container_name: str) -> Iterator[None]:
    """The engine's refusal to run a container becomes the ``docker`` runtime's error.

    A container that was created but could not start is not known to ``ServingContainer``;
    it is removed here by name.
    """
    import docker.errors

    try:
        yield
    except docker.errors.APIError as exc:
        from harness.images import docker_client

        client = docker_client()
        try:
            for leftover in client.containers.list(all=True, filters={"name": container_name}):
                leftover.remove(force=True, v=True)
        finally:
            client.close()
        raise RuntimeFailure("docker", str(exc.explanation or exc), kind=type(exc).__name__,
                             source="Docker engine API reply") from exc


def _published_ports(container_id: str) -> dict[str, list[str]]:
    from harness.images import docker_client

    client = docker_client()
    try:
        ports = client.api.inspect_container(container_id)["NetworkSettings"].get("Ports") or {}
    finally:
        client.close()
    return {port: [f"{b['HostIp']}:{b['HostPort']}" for b in bindings or []] for port, bindings in ports.items()}


def _wait_listening(server: Server, timeout: float) -> None:
    """Wait until the REST port answers at all (any HTTP status), for servers not awaited as ready."""
    from harness.errors import WaitTimeout
    from harness.images import HttpReady

    try:
        HttpReady(f"{server.rest_url}/v1/models/{server.model_name}", lambda status, body: True,
                  timeout=timeout, poll_interval=0.3).wait()
    except WaitTimeout as exc:
        raise WaitTimeout(f"the REST port never answered: {exc.message}",
                          evidence=f"{exc.evidence}\n--- server log ---\n{server.logs(40)}",
                          hint="read the server log above") from None


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the server's process group, SIGKILL after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


# --- helpers shared by server scenarios ------------------------------------------------------

NGINX = Path("/usr/sbin/nginx")


def _ssha_entry(user: str, password: str) -> str:
    """An htpasswd line in RFC 2307 ``{SSHA}`` form, which nginx's auth_basic accepts."""
    import base64
    import hashlib

    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return f"{user}:{{SSHA}}{base64.b64encode(digest + salt).decode()}"


@contextmanager
def basic_auth_proxy(upstream: str, users: Mapping[str, str], *, realm: str = "model server",
                     timeout: float = 15.0) -> Iterator[str]:
    """A real nginx on 127.0.0.1 with HTTP basic auth, proxying to ``upstream``; yields its URL.

    The configuration and htpasswd file live in a fresh directory that is removed afterwards;
    nginx runs in the foreground as a child process and is stopped with its workers at the end.
    """
    import shutil

    nginx = shutil.which("nginx") or str(NGINX)
    if not Path(nginx).is_file():
        raise NotApplicable("nginx is not installed (run.sh installs Debian's nginx-light)")
    prefix = Path(tempfile.mkdtemp(prefix="pitfalls-nginx-"))
    prefix.chmod(0o755)  # nginx's workers (user nobody) read the htpasswd file
    port = _free_port()
    (prefix / "htpasswd").write_text("".join(_ssha_entry(u, p) + "\n" for u, p in users.items()))
    (prefix / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_basic "{realm}";
            auth_basic_user_file {prefix}/htpasswd;
            proxy_set_header Authorization "";
            proxy_pass {upstream};
        }}
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
                             str(prefix / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                log = (prefix / "error.log").read_text(errors="replace") if (prefix / "error.log").exists() else ""
                raise HarnessError(f"nginx exited with code {proc.returncode}", evidence=stderr + log)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise HarnessError(f"nginx did not listen on 127.0.0.1:{port} within {timeout:.0f}s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        if proc.stderr:
            proc.stderr.close()
        shutil.rmtree(prefix, ignore_errors=True)


def enter_together(run: Any, *servers: Any) -> list[Server]:
    """Start several ``serve(...)`` contexts at once (threads) and register them with ``run``.

    Two containers starting side by side take about as long as one; each is stopped when the
    variant ends, and the ones that started are stopped too if another fails.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = [pool.submit(cm.__enter__) for cm in servers]
        started: list[Server] = []
        failure: BaseException | None = None
        for cm, future in zip(servers, futures):
            try:
                started.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - re-raised after the others are registered
                failure = failure or exc
                continue
            run.callback(lambda cm=cm: cm.__exit__(None, None, None))
    if failure is not None:
        raise failure
    return started


_GLOG_TIME = r"(?P<stamp>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)"


def load_seconds_from_log(log: str, model: str, version: int = 1) -> float:
    """Seconds between the server's ``Loading servable version`` and ``Successfully loaded`` lines.

    Both tensorflow/serving and the compatible server log these two lines (glog time stamps).
    """
    import datetime
    import re

    sid = re.escape(f"{{name: {model} version: {version}}}")
    stamps = []
    for what in ("Loading servable version", "Successfully loaded servable version"):
        match = re.search(_GLOG_TIME + r".*" + what + " " + sid, log)
        if match is None:
            raise HarnessError(f"no '{what} {{name: {model} version: {version}}}' line in the server log",
                               evidence=log[-3000:])
        stamps.append(datetime.datetime.strptime(match["stamp"], "%Y-%m-%d %H:%M:%S.%f"))
    return (stamps[1] - stamps[0]).total_seconds()


def signature_inputs(server: Server, model: str | None = None, signature: str = "serving_default") -> list[str]:
    """The input names of a signature, read from the server's ``GET .../metadata``."""
    meta = server.metadata(model)
    return sorted(meta["metadata"]["signature_def"]["signature_def"][signature]["inputs"])


def grpc_predict(channel: Any, model: str, inputs: Mapping[str, Any], *, runtime: str,
                 version: int | None = None, signature: str = "serving_default",
                 timeout: float = 30.0) -> tuple[dict[str, Any], int]:
    """``PredictionService.Predict`` over gRPC; returns (outputs as numpy arrays, served version).

    A gRPC error status raises :class:`RuntimeFailure` with the server's code and message.
    """
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    try:
        reply = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    except grpc.RpcError as exc:
        raise RuntimeFailure(runtime, f"{exc.code().name}: {exc.details()}", kind=exc.code().name,
                             source="gRPC status of PredictionService.Predict") from None
    outputs = {name: tf.make_ndarray(tensor) for name, tensor in reply.outputs.items()}
    return outputs, int(reply.model_spec.version.value)


def wide_mlp_saved_model(cache: Any, width: int = 4096, depth: int = 2) -> Path:
    """A wide MLP (8 -> width x depth -> 3, untrained, seeded) exported as a SavedModel.

    Big enough that loading and each Session run cost something measurable (each width x width
    layer of 4096 holds 16.7 M weights), and batch-friendly (a run on 16 rows costs about what one
    row costs). Returns the artifact directory: ``saved_model/`` and ``probe.npz`` (x: 4 rows, y).
    """
    from harness.artifacts import library_versions

    def build(out: Path) -> None:
        import keras
        import numpy as np

        keras.utils.set_random_seed(0)
        hidden = [keras.layers.Dense(width, activation="relu") for _ in range(depth)]
        model = keras.Sequential([keras.Input((8,)), *hidden, keras.layers.Dense(3)])
        model.export(str(out / "saved_model"), verbose=False)
        x = np.random.default_rng(3).normal(size=(4, 8)).astype("float32")
        np.savez(out / "probe.npz", x=x, y=np.asarray(model(x)))

    key = {"model": f"wide-mlp-{width}" + (f"x{depth}" if depth != 2 else ""),
           "versions": library_versions("tensorflow", "keras", "numpy")}
    return Path(cache.get_or_build("saved_model_wide_mlp", key, build))


def serve_versions(run: Any, versions: Mapping[int, Path], *, name: str = "model", **serve_options: Any) -> Server:
    """Serve ``{version: saved_model_dir}`` as model ``name`` until the variant ends.

    The server is registered with ``run`` (stopped when the variant ends) and its implementation noted.
    """
    base = model_base_path(run.workdir, versions, name=name)
    server: Server = run.enter(run.target.serve(model_name=name, model_dir=base, **serve_options))
    run.note("implementation", server.implementation)
    return server


def serve_spec(run: Any, spec: Any, *, name: str = "model", **serve_options: Any) -> Server:
    """Serve the SavedModel of ``spec`` (a :class:`harness.models.ModelSpec`) as version 1 of ``name``."""
    from harness.models import saved_model

    return serve_versions(run, {1: saved_model(run.cache, spec)}, name=name, **serve_options)


def probe_diff(server: Server, cache: Any, spec: Any, *, rows: int | None = None, **predict_options: Any) -> float:
    """Max |served - Keras| on the probe batch of ``spec`` (row format ``instances``)."""
    import numpy as np

    from harness.models import trained_model

    x, expected = trained_model(cache, spec).probe()
    x, expected = (x[:rows], expected[:rows]) if rows else (x, expected)
    got = np.asarray(server.predict({"instances": x.tolist()}, **predict_options)["predictions"])
    return float(np.max(np.abs(got - expected)))
