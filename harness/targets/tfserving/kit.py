"""The helpers server scenarios use (TF Serving's API behind the active ``tfserving`` target).

Serving:

* :func:`model_base_path`: SavedModels laid out as TF Serving expects (``<name>/<version>/``);
* :func:`serve_versions` / :func:`serve_spec`: a model served until the variant ends, with the
  implementation that ran noted in the evidence; :func:`enter_together` starts several at once;
* :func:`basic_auth_proxy`: a real nginx with HTTP basic auth in front of a server;
* :func:`load_seconds_from_log`: a version's load time from the server's own log lines.

Models:

* :func:`cached_export`: a SavedModel a scenario builds itself (a re-exported or re-signed
  model), cached by recipe and library versions so warm runs skip TensorFlow;
* :func:`export_endpoint`: a custom ``serving_default`` around a Keras 3 model, written so that a
  Session-based server restores its variables;
* :func:`wide_mlp_saved_model`: a large untrained MLP, for load-time and batching measurements.

Data and figures:

* :func:`raw_measurements`: the tabular features as a client holds them, before the
  standardisation the model was trained behind (the scaler's statistics are ``RAW_MEAN``,
  ``RAW_STD``);
* :func:`probe_diff`: the worst difference between the served model and Keras on the probe batch;
* :func:`label_figures`: label agreement with Keras, accuracy against the true labels and the
  worst difference, the figures the data scenarios judge (all from :mod:`harness.compare`).

The request helpers (:class:`Server`, :func:`http_request`, :func:`grpc_predict`,
:func:`signature_defs`) live in :mod:`harness.targets.tfserving.client` and are re-exported here.
Nothing heavy is imported at module level.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.artifacts import ArtifactCache, library_versions
from harness.compare import accuracy, label_agreement, parity
from harness.errors import HarnessError, NotApplicable
from harness.models import KERAS_DISTS, ModelSpec
from harness.targets.tfserving.client import GrpcReply, Reply, Server, grpc_predict, http_request, signature_defs
from harness.targets.tfserving.host import free_port, stop_process_group, watched_popen

if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from harness.scenario import Run
    from harness.targets.tfserving.target import TfservingTarget

__all__ = ["GrpcReply", "Reply", "Server", "grpc_predict", "http_request", "signature_defs",
           "model_base_path", "serve_versions", "serve_spec", "enter_together", "basic_auth_proxy",
           "load_seconds_from_log", "cached_export", "export_endpoint", "wide_mlp_saved_model",
           "RAW_MEAN", "RAW_STD", "raw_measurements", "probe_diff", "label_figures"]


# --- serving ----------------------------------------------------------------------------------

def link_or_copy(source: str, target: str) -> object:
    """A hard link of ``source`` at ``target`` where the file system allows, else a copy (a ``copytree`` copy function)."""
    import shutil

    try:
        os.link(source, target)
        return target
    except OSError:
        return shutil.copy2(source, target)


def model_base_path(workdir: Path, versions: Mapping[int, Path], name: str = "model", *,
                    hard_links: bool = False) -> Path:
    """A model base path as TF Serving expects it: ``<name>/<version>/saved_model.pb``.

    The SavedModels are copied (not symlinked) so that the directory can be bind-mounted.  With
    ``hard_links`` (for large models that nothing writes to) files are hard-linked where the file
    system allows it; never use it when a scenario writes into the version directories, since a
    hard link shares the cached file.
    """
    import shutil

    base = workdir / name
    base.mkdir(parents=True, exist_ok=True)
    for version, saved in versions.items():
        shutil.copytree(saved, base / str(version), copy_function=link_or_copy if hard_links else shutil.copy2)
    return base


def serve_versions(run: "Run[TfservingTarget]", versions: Mapping[int, Path], *, name: str = "model",
                   **serve_options: Any) -> Server:
    """Serve ``{version: saved_model_dir}`` as model ``name`` until the variant ends.

    The server is registered with ``run`` (stopped when the variant ends) and its implementation
    noted.  ``serve_options`` go to :meth:`TfservingTarget.serve`.
    """
    base = model_base_path(run.workdir, versions, name=name)
    server = run.enter(run.target.serve(model_name=name, model_dir=base, **serve_options))
    run.note("implementation", server.implementation)
    return server


def serve_spec(run: "Run[TfservingTarget]", spec: ModelSpec, *, name: str = "model", **serve_options: Any) -> Server:
    """Serve the zoo's SavedModel of ``spec`` as version 1 of ``name``."""
    from harness.models import saved_model

    return serve_versions(run, {1: saved_model(run.cache, spec)}, name=name, **serve_options)


def enter_together(run: "Run[TfservingTarget]", *servers: AbstractContextManager[Server]) -> list[Server]:
    """Start several ``serve(...)`` contexts at once (threads) and register them with ``run``.

    Two containers starting side by side take about as long as one; each is stopped when the
    variant ends, and the ones that started are stopped too if another fails.
    """
    from concurrent.futures import ThreadPoolExecutor
    from functools import partial

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
            run.callback(partial(cm.__exit__, None, None, None))
    if failure is not None:
        raise failure
    return started


NGINX = Path("/usr/sbin/nginx")


def ssha_entry(user: str, password: str) -> str:
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

    The configuration and htpasswd file live in a fresh directory of this run's work directory
    (:func:`harness.environments.ownership.run_work_dir`) that is removed afterwards; the directory
    is 0700 and the htpasswd file 0600, both owned by the user nginx runs as: the harness's own user,
    or, when the harness is root, the unprivileged container user
    (:data:`harness.environments.ownership.CONFINED_UID`), so no other host user reads the credentials.
    nginx runs in the foreground as a child process and is stopped with its workers at the end.  Its
    port is one that was free a moment before; if another process took it in between, nginx's own
    ``bind() ... failed (98: Address already in use)`` makes this try another one.
    """
    import shutil

    from harness.environments.ownership import container_user, run_work_dir

    nginx = shutil.which("nginx") or str(NGINX)
    if not Path(nginx).is_file():
        raise NotApplicable("nginx is not installed (run.sh installs Debian's nginx-light)")
    prefix = Path(tempfile.mkdtemp(prefix="pitfalls-nginx-", dir=run_work_dir()))
    uid, gid = container_user()
    try:
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            os.chown(prefix, uid, gid)
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        htpasswd = prefix / "htpasswd"
        fd = os.open(htpasswd, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("".join(ssha_entry(u, p) + "\n" for u, p in users.items()))
        os.chown(htpasswd, uid, gid)
        for attempt in range(5):
            port = free_port()
            with _nginx_on(nginx, prefix, port, upstream, realm, timeout, as_user) as url:
                if url is None:  # the port was taken between free_port() and nginx's bind
                    continue
                yield url
                return
        raise HarnessError("nginx found no free port on 127.0.0.1 in 5 tries",
                           evidence=(prefix / "error.log").read_text(errors="replace")[-2000:])
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@contextmanager
def _nginx_on(nginx: str, prefix: Path, port: int, upstream: str, realm: str, timeout: float,
              as_user: Mapping[str, Any]) -> Iterator[str | None]:
    """nginx on ``127.0.0.1:port``; yields its URL, or None when the port was in use."""
    import socket

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
    (prefix / "error.log").unlink(missing_ok=True)
    proc = watched_popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e",
                          str(prefix / "error.log")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **as_user)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                log = (prefix / "error.log").read_text(errors="replace") if (prefix / "error.log").exists() else ""
                if "Address already in use" in stderr + log:
                    yield None
                    return
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
        stop_process_group(proc)
        if proc.stderr:
            proc.stderr.close()


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


# --- models -----------------------------------------------------------------------------------

def cached_export(cache: ArtifactCache, recipe: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
    """A SavedModel directory written by ``build(path)``, cached under the hash of ``recipe``.

    ``recipe`` names everything that determines the export (the trained model's artifact, the
    recipe's name and revision); the versions of TF and Keras are added to it.
    """
    key = {**recipe, "versions": library_versions(*KERAS_DISTS)}
    return cache.get_or_build("serving_export", key, lambda out: build(out / "saved_model")) / "saved_model"


def export_endpoint(out: Path, model: Any, serve: Callable[..., Any], input_signature: list["tf.TensorSpec"]) -> None:
    """Write ``serve`` (a function calling the Keras 3 ``model``) as the ``serving_default`` signature.

    ``keras.export.ExportArchive`` with ``track(model)`` stores the Keras variables so that the
    SavedModel's restore op initialises them in a Session, as TF Serving runs it
    (``tf.saved_model.save`` of a tf.Module holding a Keras 3 model does not).  ``model`` is a
    ``keras.Model`` (Keras ships no type information, hence ``Any``).
    """
    import keras

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=input_signature)
    archive.write_out(str(out), verbose=False)


def wide_mlp_saved_model(cache: ArtifactCache, width: int = 4096, depth: int = 2) -> Path:
    """A wide MLP (8 -> width x depth -> 3, untrained, seeded) exported as a SavedModel.

    Big enough that loading and each Session run cost something measurable (each width x width
    layer of 4096 holds 16.7 M weights), and batch-friendly (a run on 16 rows costs about what one
    row costs). Returns the artifact directory: ``saved_model/`` and ``probe.npz`` (x: 4 rows, y).
    """

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
    return cache.get_or_build("saved_model_wide_mlp", key, build)


# --- data and figures -------------------------------------------------------------------------

# The training statistics of the 8 raw measurements behind the standardised features of
# harness.models.tabular_data (what a scaler's mean_ and scale_ would hold).
RAW_MEAN = (20.0, -5.0, 100.0, 3.0, 50.0, 0.5, 1000.0, 10.0)
RAW_STD = (5.0, 2.0, 30.0, 1.0, 10.0, 0.1, 200.0, 4.0)


def raw_measurements(standardised: "np.ndarray") -> "np.ndarray":
    """The raw values a client receives (sensor units), whose standardisation is ``standardised``."""
    import numpy as np

    return (standardised * np.asarray(RAW_STD, "float32") + np.asarray(RAW_MEAN, "float32")).astype("float32")


def probe_diff(server: Server, cache: ArtifactCache, spec: ModelSpec, *, rows: int | None = None,
               model: str | None = None, version: int | None = None, label: str | None = None) -> float:
    """Max |served - Keras| on the probe batch of ``spec`` (row format ``instances``), sent to
    ``model`` (default: the server's), pinned to a ``version`` or a ``label`` if given."""
    from harness.models import trained_model

    x, expected = trained_model(cache, spec).probe()
    x, expected = (x[:rows], expected[:rows]) if rows else (x, expected)
    got = server.predict({"instances": x.tolist()}, model=model, version=version, label=label)["predictions"]
    return parity(got, expected).max_abs_diff


def label_figures(got: "np.ndarray", expected: "np.ndarray", labels: "np.ndarray") -> dict[str, float]:
    """``label_agreement`` with Keras, ``accuracy`` against ``labels`` and ``max_abs_diff``."""
    return {"label_agreement": label_agreement(got, expected), "accuracy": accuracy(got, labels),
            "max_abs_diff": parity(got, expected).max_abs_diff}
