"""The content-addressed artifact cache: build once, reuse, never half-written, xdist-safe."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from harness.artifacts import ArtifactCache, artifact_key


def write_marker(out: Path) -> None:
    (out / "payload.txt").write_text("built")


def test_builds_once_and_reuses(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        write_marker(out)

    first = cache.get_or_build("thing", {"a": 1}, build)
    second = cache.get_or_build("thing", {"a": 1}, build)
    assert first == second and len(calls) == 1
    assert (first / "payload.txt").read_text() == "built"
    assert (cache.hits, cache.builds) == (1, 1)
    other = cache.get_or_build("thing", {"a": 2}, build)
    assert other != first and len(calls) == 2


def test_key_is_order_independent() -> None:
    assert artifact_key("k", {"a": 1, "b": 2}) == artifact_key("k", {"b": 2, "a": 1})
    assert artifact_key("k", {"a": 1}) != artifact_key("j", {"a": 1})


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)

    def broken(out: Path) -> None:
        (out / "partial").write_text("half")
        raise RuntimeError("converter failed")

    with pytest.raises(RuntimeError):
        cache.get_or_build("thing", {"a": 1}, broken)
    assert not cache.path_for("thing", {"a": 1}).exists()
    assert [p.name for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")] == []


def _build_in_process(root: str, counter: str) -> str:
    import time

    def build(out: Path) -> None:
        with open(counter, "a") as f:
            f.write("x")
        time.sleep(0.5)
        write_marker(out)

    return str(ArtifactCache(Path(root)).get_or_build("shared", {"k": 1}, build))


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(_build_in_process, [(str(tmp_path / "c"), str(counter))] * 2)
    assert paths[0] == paths[1]
    assert counter.read_text() == "x"
