"""Spare serving containers (harness.targets.tfserving.spares): who gets one, and that it is clean.

The eligibility rules need nothing; the isolation tests start real serving containers (skipped
where no Docker engine answers).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import RuntimeFailure
from harness.targets.tfserving.spares import spare_eligible

DEFAULTS: dict[str, Any] = dict(implementation="tfserving-compatible", model_dir=Path("/m"), models=None, files=None,
                                env=None, args=(), command=None, wait="available", ready_model=None,
                                model_name="model", tf_version="2.19.0", default_tf_version="2.19.0")


def test_only_default_flag_servers_of_the_compatible_server_take_a_spare() -> None:
    from harness.environments.serving_image import COMPAT_IMPLEMENTATION, REAL_IMPLEMENTATION

    assert spare_eligible(**{**DEFAULTS, "implementation": COMPAT_IMPLEMENTATION})
    needs_fresh = {"implementation": REAL_IMPLEMENTATION, "model_dir": None, "models": {"b": Path("/b")},
                   "files": {Path("/c"): "/config/models.config"}, "env": {"MODEL_NAME": "x"},
                   "args": ["--enable_batching"], "command": ["tensorflow_model_server"], "wait": "started",
                   "ready_model": "other", "tf_version": "2.11.0"}
    for option, value in needs_fresh.items():
        assert not spare_eligible(**{**DEFAULTS, "implementation": COMPAT_IMPLEMENTATION, option: value}), option
    assert spare_eligible(**{**DEFAULTS, "implementation": COMPAT_IMPLEMENTATION, "wait": "listening"}) is False


@pytest.fixture(scope="module")
def target() -> Iterator[Any]:
    from harness.environments.engine import engine_unavailable_reason
    from harness.targets.tfserving.target import TfservingTarget

    reason = engine_unavailable_reason() or TfservingTarget.unavailable_reason()
    if reason:
        pytest.skip(f"needs a Docker engine and the serving packages: {reason}")
    tfs = TfservingTarget(mode="container")
    if tfs.implementation != "tfserving-compatible":
        pytest.skip("spares are used with the compatible server only")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PITFALLS_SERVING_SPARES", "1")  # opt-in (see spares_enabled)
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
    from harness.targets.tfserving.kit import model_base_path

    workdir = Path(tempfile.mkdtemp(prefix="spare-", dir=tmp_path))
    workdir.chmod(0o755)  # the container's server reads it
    return model_base_path(workdir, versions)


def _container_gone(container_id: str) -> bool:
    import docker.errors

    from harness.environments.engine import docker_client

    client = docker_client()
    try:
        client.containers.get(container_id)
    except docker.errors.NotFound:
        return True
    finally:
        client.close()
    return False


def _versions(server: Any) -> list[tuple[str, str]]:
    return sorted((v["version"], v["state"]) for v in server.status().body["model_version_status"])


def test_a_spare_serves_one_variant_and_holds_nothing_of_the_previous(target: Any,
                                                                    saved_models: tuple[Path, Path], tmp_path: Path) -> None:
    old, new = saved_models
    with target.serve(model_dir=_base(tmp_path, {1: old, 2: new})) as first:  # versions 1 and 2; the pool starts a spare
        assert _versions(first) == [("2", "AVAILABLE")]
        first_id = first.published
    taken_before = target.spares.taken
    with target.serve(model_dir=_base(tmp_path, {1: old})) as second:
        assert target.spares.taken == taken_before + 1, "the second default-flag server came from the spare"
        assert second.published != first_id
        # A server reused from the first variant would still list version 2 (unloaded, END).
        assert _versions(second) == [("1", "AVAILABLE")]
        assert "version: 2}" not in second.logs()
        reply = second.predict({"instances": [[0.0] * 8]})
        assert len(reply["predictions"]) == 1
        # the model came in through the model manager's reload, not a start-up flag
        assert "ReloadConfig failed" not in second.logs() and "Config entry" in second.logs()


def test_the_spare_container_is_removed_when_its_variant_ends(target: Any, saved_models: tuple[Path, Path], tmp_path: Path) -> None:
    from harness.environments.engine import docker_client

    taken_before = target.spares.taken if target.spares else 0
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})):
        pass  # make sure a spare is started for the next block
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})) as server:
        assert target.spares.taken > taken_before
        port = server.published["8501/tcp"][0].split(":")[1]
        client = docker_client()
        try:
            mine = [c for c in client.containers.list(filters={"label": "pitfalls=1"})
                    if any(b.get("HostPort") == port for bs in (c.ports or {}).values() for b in bs or [])]
            assert len(mine) == 1
            container_id = str(mine[0].id)
        finally:
            client.close()
    assert _container_gone(container_id)


def test_a_server_with_its_own_flags_gets_a_fresh_container(target: Any, saved_models: tuple[Path, Path], tmp_path: Path) -> None:
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})):
        pass  # a spare is now starting
    taken, fresh = target.spares.taken, target.served_fresh
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]}), args=["--max_num_load_retries=0"]) as server:
        assert target.spares.taken == taken and target.served_fresh == fresh + 1
        # a fresh start: the single-model config built from --model_name/--model_base_path, no reload
        assert "Building single TensorFlow model file config" in server.logs()
        assert "Config entry" not in server.logs()
        assert _versions(server) == [("1", "AVAILABLE")]


def test_a_model_that_fails_to_load_is_reported_by_a_fresh_start(target: Any, saved_models: tuple[Path, Path], tmp_path: Path) -> None:
    with target.serve(model_dir=_base(tmp_path, {1: saved_models[0]})):
        pass  # a spare is now starting
    broken = _base(tmp_path, {1: saved_models[0]})
    (broken / "1" / "saved_model.pb").unlink()  # a version directory without a SavedModel
    taken, fresh = target.spares.taken, target.served_fresh
    with pytest.raises(RuntimeFailure, match="SavedModel") as failure:
        with target.serve(model_dir=broken, ready_timeout=120):
            pass
    assert target.spares.taken == taken + 1, "the spare was tried first"
    assert target.served_fresh == fresh + 1, "the failed hand-over fell back to a fresh container"
    assert failure.value.source == "container log: 'Loading servable ... failed'"
