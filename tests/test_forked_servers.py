"""Forked servers (harness.targets.tfserving.forked): who gets one, and that each variant's is its own.

The eligibility rules need nothing; the other tests start real serving containers (skipped where
no Docker engine answers).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import RuntimeFailure
from harness.targets.tfserving.forked import fork_eligible, work_root
from harness.waiting import Condition

DEFAULTS: dict[str, Any] = dict(implementation="tfserving-compatible", models=None, files=None, env=None,
                                command=None, ready_model=None, model_name="model", tf_version="2.19.0",
                                default_tf_version="2.19.0")


def test_only_servers_that_a_fresh_container_would_start_alike_are_forked(tmp_path: Path) -> None:
    from harness.environments.serving_image import REAL_IMPLEMENTATION

    inside = work_root() / "pitfalls-run-x" / "model"
    assert fork_eligible(**DEFAULTS, model_dir=inside)
    needs_fresh = {"implementation": REAL_IMPLEMENTATION, "model_dir": None, "models": {"b": Path("/b")},
                   "files": {Path("/c"): "/config/models.config"}, "env": {"MODEL_NAME": "x"},
                   "command": ["tensorflow_model_server"], "ready_model": "other", "tf_version": "2.11.0",
                   "model_name": "classifier"}
    for option, value in needs_fresh.items():
        assert not fork_eligible(**{**DEFAULTS, "model_dir": inside, option: value}), option
    # the fork container mounts this run's work directory only: a model elsewhere (even in the host's
    # temporary directory, or another run's work directory) needs its own mount
    assert not fork_eligible(**DEFAULTS, model_dir=Path("/srv/models/model"))
    assert not fork_eligible(**DEFAULTS, model_dir=tmp_path / "model")
    assert not fork_eligible(**DEFAULTS, model_dir=Path(tempfile.gettempdir()) / "pitfalls-own-0123456789abcdef" / "m")


@pytest.fixture(scope="module")
def target() -> Iterator[Any]:
    from harness.environments.engine import engine_unavailable_reason
    from harness.targets.tfserving.target import TfservingTarget

    reason = engine_unavailable_reason() or TfservingTarget.unavailable_reason()
    if reason:
        pytest.skip(f"needs a Docker engine and the serving packages: {reason}")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PITFALLS_SERVING_FORK", raising=False)  # on by default
        tfs = TfservingTarget(mode="container")
        if tfs.implementation != "tfserving-compatible":
            pytest.skip("servers are forked with the compatible server only")
        tfs.activate()
        try:
            yield tfs
        finally:
            tfs.deactivate()


@pytest.fixture(scope="module")
def saved_models() -> tuple[Path, Path]:
    from harness.artifacts import ArtifactCache
    from harness.models import ModelSpec, saved_model
    from harness.paths import model_cache_root

    cache = ArtifactCache(model_cache_root())
    return (saved_model(cache, ModelSpec("dense", "keras3", seed=0)),
            saved_model(cache, ModelSpec("dense", "keras3", seed=1)))


def _base(tmp_path: Path, versions: dict[int, Path]) -> Path:
    from harness.targets.tfserving.layout import model_base_path

    from harness.environments.ownership import run_work_dir

    # in this process's work directory, the one the fork container mounts (tmp_path is not in it)
    workdir = Path(tempfile.mkdtemp(prefix="forked-", dir=run_work_dir()))
    return model_base_path(workdir, versions)


def _versions(server: Any) -> list[tuple[str, str]]:
    return sorted((v["version"], v["state"]) for v in server.status().body["model_version_status"])


def test_each_variant_gets_a_new_server_process_that_holds_nothing_of_the_previous(
        target: Any, saved_models: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = saved_models
    forked = target.served_forked
    with target.serve(model_dir=_base(tmp_path, {1: old, 2: new})) as first:
        assert _versions(first) == [("2", "AVAILABLE")]
        first_ports = first.published
        first_reply = first.predict({"instances": [[0.5] * 8]})
    with target.serve(model_dir=_base(tmp_path, {1: old})) as second:
        assert target.served_forked == forked + 2, "both came from the fork container"
        assert second.published == first_ports, "the same container's ports"
        # A server reused from the first variant would still list version 2 (unloaded, END).
        assert _versions(second) == [("1", "AVAILABLE")]
        assert "version: 2}" not in second.logs()
        # a fresh start-up: the single-model config from the image's flags, as in a fresh container
        assert "Building single TensorFlow model file config" in second.logs()
        assert second.predict({"instances": [[0.5] * 8]}) != first_reply, "version 1 (seed 0), not 2 (seed 1)"


def test_the_server_process_is_gone_when_its_variant_ends(target: Any, saved_models: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    from harness.targets.tfserving.client import http_request

    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as server:
        url = server.rest_url + server.model_path()
        assert http_request("GET", url, timeout=10).status == 200
        owner = next(iter(target.forked._containers.values()))
        assert owner.control("status")["running"] is True
    assert owner.control("status")["running"] is False
    with pytest.raises(OSError):  # nothing listens behind the published port any more: reset or refused
        http_request("GET", url, timeout=5)


def test_a_load_failure_comes_from_the_forked_server_itself(target: Any, saved_models: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    broken = _base(tmp_path, {1: saved_models[0]})
    (broken / "1" / "saved_model.pb").unlink()  # a version directory without a SavedModel
    forked, fresh = target.served_forked, target.served_fresh
    with pytest.raises(RuntimeFailure, match="saved_model.pb") as failure:
        with target.serve(model_dir=broken, args=["--max_num_load_retries=0"], ready_timeout=120):
            pass
    assert (target.served_forked, target.served_fresh) == (forked + 1, fresh)
    assert failure.value.source == "container log: 'Loading servable ... failed'"
    # and the next variant is served as usual
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as server:
        assert _versions(server) == [("1", "AVAILABLE")]


def test_the_model_directory_is_seen_live(target: Any, saved_models: tuple[Path, Path], tmp_path: Path) -> None:
    base = _base(tmp_path, {1: saved_models[0]})
    with target.serve(model_dir=base, args=["--file_system_poll_wait_seconds=1"]) as server:
        assert _versions(server) == [("1", "AVAILABLE")]
        shutil.copytree(saved_models[1], base / "2")
        Condition("version 2 AVAILABLE", lambda: _versions(server), lambda seen: ("2", "AVAILABLE") in seen,
                  timeout=120, poll_interval=0.2, logs=server.logs, log_label="server log").wait()


def test_a_second_server_at_once_gets_a_fresh_container(target: Any, saved_models: tuple[Path, Path],
                                                         tmp_path: Path) -> None:
    forked, fresh = target.served_forked, target.served_fresh
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as one, \
            target.serve(model_dir=_base(tmp_path, {1: saved_models[1]})) as two:
        assert (target.served_forked, target.served_fresh) == (forked + 1, fresh + 1)
        assert one.published != two.published
        assert _versions(one) == _versions(two) == [("1", "AVAILABLE")]


def test_a_server_with_its_own_environment_gets_a_fresh_container(target: Any, saved_models: tuple[Path, Path],
                                                                   tmp_path: Path) -> None:
    forked, fresh = target.served_forked, target.served_fresh
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]}), env={"TF_CPP_MIN_LOG_LEVEL": "0"}) as server:
        assert (target.served_forked, target.served_fresh) == (forked, fresh + 1)
        assert _versions(server) == [("1", "AVAILABLE")]


def test_forking_can_be_turned_off(saved_models: tuple[Path, Path], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.environments.engine import engine_unavailable_reason
    from harness.targets.tfserving.target import TfservingTarget

    if engine_unavailable_reason():
        pytest.skip("needs a Docker engine")
    monkeypatch.setenv("PITFALLS_SERVING_FORK", "0")
    tfs = TfservingTarget(mode="container").activate()
    try:
        with tfs.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as server:
            assert _versions(server) == [("1", "AVAILABLE")]
        assert (tfs.served_forked, tfs.served_fresh) == (0, 1)
        assert tfs.versions()["serving_processes"] == "a container per server"
    finally:
        tfs.deactivate()


def test_another_target_of_this_process_leaves_the_fork_container_alone(target: Any, saved_models: tuple[Path, Path],
                                                                        tmp_path: Path) -> None:
    from harness.targets.tfserving.target import TfservingTarget

    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})):
        pass  # the fork container is up, and idle now
    forked = target.served_forked
    other = TfservingTarget(mode="container").activate()
    other.deactivate()  # sweeps this process's leftover containers: the open fork container is none
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as server:
        assert target.served_forked == forked + 1
        assert _versions(server) == [("1", "AVAILABLE")]


def test_a_fork_container_removed_from_outside_is_replaced(target: Any, saved_models: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    from harness.environments.engine import docker_client

    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})):
        pass
    owner = next(iter(target.forked._containers.values()))
    client = docker_client()
    try:
        client.containers.get(owner.container.name).remove(force=True)  # as `docker rm -f` would
    finally:
        client.close()
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as server:
        assert _versions(server) == [("1", "AVAILABLE")]
        assert next(iter(target.forked._containers.values())) is not owner


class _ServerThatFailsWhileAsked:
    """A forked server's control channel that logs its load error and exits just as its status is
    asked: the order a busy machine can produce (seen once in CI: the faulty variant of
    server/general-questions/limitations-of-platforms-frameworks read the log, then found the
    server exited, and ended in a WaitTimeout instead of the server's own text)."""

    FAILURE = ("E tfs_compat/core.py:308] Loading servable: {name: model version: 1} failed: NOT_FOUND: "
               "Specified file path does not appear to contain a SavedModel bundle (should have a file "
               "called `saved_model.pb`)")

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.log = "I starting\n"
        self.image = SimpleNamespace(implementation="stand-in", tag="stand-in:test")
        self.container = SimpleNamespace(model_url=lambda model: f"http://127.0.0.1:9/v1/models/{model}")

    def control(self, what: str) -> dict[str, Any]:
        if what == "status":
            self.log += self.FAILURE + "\n"
            return {"running": False, "exit_code": 255}
        return {"text": self.log}


def test_a_server_that_exits_on_its_load_error_is_reported_in_its_own_words() -> None:
    from harness.targets.tfserving.forked import ForkedServer

    server = ForkedServer(_ServerThatFailsWhileAsked())  # type: ignore[arg-type]
    with pytest.raises(RuntimeFailure) as caught:
        server.wait_available("model", timeout=600, fail_on_load_error=True)
    assert "Specified file path does not appear to contain a SavedModel bundle" in caught.value.message
