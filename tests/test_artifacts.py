"""The content-addressed artifact cache: build once, reuse, never half-written, xdist-safe."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from harness import artifacts
from harness.artifacts import MANIFEST_NAME, ArtifactCache, artifact_key, check_entry


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


# ------------------------------------------------------------------ a cache that cannot lie


def build_two_files(out: Path) -> None:
    (out / "model.bin").write_bytes(bytes(range(256)) * 64)
    (out / "sub").mkdir()
    (out / "sub" / "weights.bin").write_bytes(b"w" * 1000)


def _truncate(entry: Path) -> None:
    data = (entry / "model.bin").read_bytes()
    (entry / "model.bin").write_bytes(data[: len(data) // 2])


def _flip_same_size(entry: Path) -> None:
    data = bytearray((entry / "model.bin").read_bytes())
    data[100] ^= 0xFF
    (entry / "model.bin").write_bytes(bytes(data))


def _old_layout(entry: Path) -> None:
    (entry / MANIFEST_NAME).write_text('{"kind": "thing", "key": {"a": 1}, "seconds": 0.1}')


CORRUPTIONS = {
    "truncated": (_truncate, "model.bin is 8192 bytes, the manifest says 16384"),
    "flipped": (_flip_same_size, "model.bin differs from its sha256"),
    "deleted": (lambda e: (e / "sub" / "weights.bin").unlink(), "sub/weights.bin is missing"),
    "extra file": (lambda e: (e / "stray.txt").write_text("x"), "stray.txt was not there"),
    "no manifest": (lambda e: (e / MANIFEST_NAME).unlink(), "no .pitfalls-artifact.json"),
    "unreadable manifest": (lambda e: (e / MANIFEST_NAME).write_text('{"layout": 2, "fil'), "unreadable"),
    "older layout": (_old_layout, "older layout"),
    "directory gone": (lambda e: shutil.rmtree(e / "sub"), "sub/weights.bin is missing"),
}


def test_manifest_records_sizes_digests_key_and_times(tmp_path: Path) -> None:
    entry = ArtifactCache(tmp_path).get_or_build("thing", {"a": 1}, build_two_files)
    manifest = json.loads((entry / MANIFEST_NAME).read_text())
    assert manifest["layout"] == 2 and manifest["kind"] == "thing" and manifest["key"] == {"a": 1}
    assert manifest["seconds"] >= 0 and manifest["created"].startswith("20")
    assert manifest["files"]["model.bin"] == {
        "size": 16384, "sha256": hashlib.sha256(bytes(range(256)) * 64).hexdigest()}
    assert set(manifest["files"]) == {"model.bin", "sub/weights.bin"} and manifest["dirs"] == ["sub"]


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_a_corrupt_entry_is_rebuilt_and_said(tmp_path: Path, how: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    corrupt, words = CORRUPTIONS[how]
    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("thing", {"a": 1}, build_two_files)
    corrupt(entry)
    assert check_entry(entry) is not None and words in str(check_entry(entry))
    capsys.readouterr()
    again = cache.get_or_build("thing", {"a": 1}, build_two_files)
    err = capsys.readouterr().err
    assert again == entry and check_entry(again, digests=True) is None
    assert (again / "model.bin").read_bytes() == bytes(range(256)) * 64
    assert f"cache entry thing/{entry.name} is corrupt (" in err and words in err and "rebuilding it" in err
    assert (cache.rebuilt, cache.builds, cache.hits) == (1, 2, 0) and words in cache.problems[0]
    assert sorted(p.name for p in (tmp_path / "thing").iterdir()) == [entry.name, entry.name + ".lock"]
    assert cache.get_or_build("thing", {"a": 1}, build_two_files) == entry and cache.hits == 1


def test_digests_once_per_process_sizes_always(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("thing", {"a": 1}, build_two_files)
    hashed: list[str] = []
    real = artifacts._file_sha256

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(artifacts, "_file_sha256", counting)
    for _ in range(3):
        cache.get_or_build("thing", {"a": 1}, build_two_files)
    assert hashed == []  # digests computed at build time count as verified in this process
    artifacts._VERIFIED.clear()  # as in a new process
    for _ in range(3):
        cache.get_or_build("thing", {"a": 1}, build_two_files)
    assert sorted(hashed) == ["model.bin", "weights.bin"]
    # in-place change with the same size but a new mtime: verified again, and caught
    stamp = (entry / "model.bin").stat().st_mtime_ns
    _flip_same_size(entry)
    os.utime(entry / "model.bin", ns=(stamp + 10**9, stamp + 10**9))
    assert "differs from its sha256" in str(check_entry(entry))


def test_a_manifest_copied_from_another_entry_is_caught(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    one = cache.get_or_build("thing", {"a": 1}, build_two_files)
    two = cache.get_or_build("thing", {"a": 2}, build_two_files)
    shutil.copy(one / MANIFEST_NAME, two / MANIFEST_NAME)
    assert "describes another entry" in str(check_entry(two))


def test_readers_never_see_a_half_state_while_a_corrupt_entry_is_rebuilt(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    entry = cache.get_or_build("thing", {"a": 1}, build_two_files)
    _truncate(entry)
    seen: list[str] = []

    def slow_build(out: Path) -> None:
        # while the rebuild runs the corrupt entry is gone from its name (moved aside), so a reader
        # either waits on the lock or finds no entry; it never gets the corrupt directory
        seen.append("absent" if not entry.exists() else "present")
        build_two_files(out)

    cache.get_or_build("thing", {"a": 1}, slow_build)
    assert seen == ["absent"] and check_entry(entry, digests=True) is None


def test_entries_verify_and_clear(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "models", tmp_path / "env")
    good = cache.get_or_build("thing", {"a": 1}, build_two_files)
    bad = cache.get_or_build("other", {"a": 1}, build_two_files)
    _flip_same_size(bad)
    (tmp_path / "models" / "other" / ".deadbeef-leftover").mkdir()  # a killed build's temp dir
    wheels = tmp_path / "env" / "images" / "wheels" / "cp311-manylinux_x86_64-tf2.19.0"
    wheels.mkdir(parents=True)
    (wheels / "a.whl").write_bytes(b"z" * 10)
    listed = {(e.kind, e.name): e for e in cache.entries()}
    assert set(listed) == {("thing", good.name), ("other", bad.name), ("wheels", wheels.name)}
    assert listed[("thing", good.name)].bytes > 16384 + 1000 and listed[("wheels", wheels.name)].bytes == 10
    assert listed[("wheels", wheels.name)].cache == "environment"
    artifacts._VERIFIED.clear()
    problems = {e.kind: e.problem for e in cache.verify()}
    assert problems["thing"] is None and "differs from its sha256" in str(problems["other"])
    assert [e.kind for e in cache.entries("wheels")] == ["wheels"]
    removed = cache.clear(["other"])
    assert [e.name for e in removed] == [bad.name] and good.is_dir() and wheels.is_dir()
    assert not (tmp_path / "models" / "other" / ".deadbeef-leftover").exists()
    assert {e.kind for e in cache.clear()} == {"thing"} and wheels.is_dir()  # env kinds only by name
    assert [e.kind for e in cache.clear(["wheels"])] == ["wheels"] and not wheels.exists()
    assert cache.entries() == []


def test_clear_leaves_an_entry_being_built(tmp_path: Path) -> None:
    from filelock import FileLock

    cache = ArtifactCache(tmp_path / "models", tmp_path / "env")
    entry = cache.get_or_build("thing", {"a": 1}, build_two_files)
    with FileLock(str(entry) + ".lock"):
        assert cache.clear() == [] and entry.is_dir()


def test_concurrent_processes_rebuild_a_corrupt_entry_once(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    root = tmp_path / "c"
    first = Path(_build_in_process(str(root), str(counter)))
    (first / "payload.txt").write_text("b")  # one byte instead of five: truncated
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.starmap(_build_in_process, [(str(root), str(counter))] * 2)
    assert paths == [str(first)] * 2 and counter.read_text() == "xx"  # built, then rebuilt once
    assert (first / "payload.txt").read_text() == "built" and check_entry(first, digests=True) is None
    assert sorted(p.name for p in first.parent.iterdir()) == [first.name, first.name + ".lock"]
