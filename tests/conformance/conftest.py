"""Fixtures: the endpoint under test (ours as a subprocess, a serving image, or any server).

By default the suite starts the TF Serving-compatible server (``tfs_compat``) as a loopback
subprocess.  To check another server with the same tests, unchanged:

* ``PITFALLS_CONFORMANCE_IMAGE=tensorflow/serving:2.19.0``: the suite exports its models, runs
  that image (already in the local engine; never pulled) on them with ``docker run``, and removes
  it afterwards;
* or ``PITFALLS_CONFORMANCE_REST=http://host:port`` and/or ``PITFALLS_CONFORMANCE_GRPC=host:port``
  for a server started by hand (+ ``PITFALLS_CONFORMANCE_MODEL``, default ``tiny``;
  ``PITFALLS_CONFORMANCE_EXAMPLE_MODEL`` for the classify/regress model, e.g. ``half``), serving
  the models ``python -m tests.conformance.export DIR`` writes.

``PITFALLS_CONFORMANCE_EXPORT_DIR`` keeps the exported models in a directory (reused when
present).  With another server the tests that must start ``tfs_compat`` with particular flags
(lifecycle, batching) are skipped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from .support import (
    ENV_GRPC,
    ENV_MODEL,
    ENV_REST,
    DockerServer,
    ServerProcess,
    export_example_model,
    export_keras_model,
)

ENV_EXAMPLE_MODEL = "PITFALLS_CONFORMANCE_EXAMPLE_MODEL"
ENV_EXPORT_DIR = "PITFALLS_CONFORMANCE_EXPORT_DIR"
ENV_IMAGE = "PITFALLS_CONFORMANCE_IMAGE"


@dataclasses.dataclass(frozen=True)
class ModelStore:
    """Base paths (each with a version directory ``1``) of the models the suite serves."""

    keras_base: Path
    example_base: Path


@dataclasses.dataclass(frozen=True)
class Endpoint:
    rest: Optional[str]
    grpc: Optional[str]
    model: str
    example_model: Optional[str]
    external: bool

    def rest_url(self) -> str:
        if self.rest is None:
            pytest.skip(f"no REST endpoint: set {ENV_REST}")
        return self.rest

    def grpc_address(self) -> str:
        if self.grpc is None:
            pytest.skip(f"no gRPC endpoint: set {ENV_GRPC}")
        return self.grpc

    def examples(self) -> str:
        if self.example_model is None:
            pytest.skip(f"no classify/regress model: set {ENV_EXAMPLE_MODEL}")
        return self.example_model


def _external() -> bool:
    """True when the suite checks another server than the one it starts itself."""
    return bool(os.environ.get(ENV_REST) or os.environ.get(ENV_GRPC) or os.environ.get(ENV_IMAGE))


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    root = Path(os.environ.get(ENV_EXPORT_DIR) or tmp_path_factory.mktemp("models"))
    store = ModelStore(keras_base=root / "tiny", example_base=root / "half")
    if not (store.keras_base / "1").exists():
        export_keras_model(store.keras_base / "1")
    if not (store.example_base / "1").exists():
        export_example_model(store.example_base / "1")
    return store


def write_model_config(path: Path, models: dict[str, Path], extra: str = "") -> Path:
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n{extra}  }}\n'
        for name, base in models.items())
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return path


@pytest.fixture(scope="session")
def endpoint(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Endpoint]:
    image = os.environ.get(ENV_IMAGE)
    if image:
        from .export import export_all

        store_for_image: ModelStore = request.getfixturevalue("model_store")
        root = store_for_image.keras_base.parent
        export_all(root)
        with DockerServer(image, root) as container:
            container.wait_ready("tiny")
            container.wait_ready("half")
            yield Endpoint(rest=container.rest_url, grpc=container.grpc_address, model="tiny",
                           example_model="half", external=True)
        return
    if _external():
        yield Endpoint(rest=os.environ.get(ENV_REST), grpc=os.environ.get(ENV_GRPC),
                       model=os.environ.get(ENV_MODEL, "tiny"),
                       example_model=os.environ.get(ENV_EXAMPLE_MODEL), external=True)
        return
    store: ModelStore = request.getfixturevalue("model_store")
    workdir = tmp_path_factory.mktemp("endpoint")
    config = write_model_config(workdir / "models.config", {"tiny": store.keras_base, "half": store.example_base})
    with ServerProcess([f"--model_config_file={config}"], workdir) as server:
        server.wait_ready("tiny")
        yield Endpoint(rest=server.rest_url, grpc=server.grpc_address, model="tiny", example_model="half",
                       external=False)


@pytest.fixture
def local_only() -> None:
    if _external():
        pytest.skip("needs to start the TF Serving-compatible server with particular flags")


@pytest.fixture
def start_server(tmp_path: Path, local_only: None) -> Iterator[Callable[..., ServerProcess]]:
    """Start our server with extra flags; every server started is terminated afterwards."""
    started: list[ServerProcess] = []

    def start(args: list[str], rest: bool = True) -> ServerProcess:
        server = ServerProcess(args, tmp_path / f"server{len(started)}", rest=rest).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.terminate()
