"""`pitfalls cache [info|verify|clear]`: what the cache holds, whether it is intact, removing it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.artifacts import ArtifactCache
from harness.cli import main


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ArtifactCache:
    monkeypatch.setenv("PITFALLS_CACHE", str(tmp_path / "models"))
    monkeypatch.setenv("PITFALLS_ENV_CACHE", str(tmp_path / "env"))
    made = ArtifactCache()
    made.get_or_build("tflite", {"m": 1}, lambda out: (out / "model.tflite").write_bytes(b"T" * 3000))
    made.get_or_build("tflite", {"m": 2}, lambda out: (out / "model.tflite").write_bytes(b"U" * 2000))
    made.get_or_build("trained", {"m": 1}, lambda out: (out / "model.keras").write_bytes(b"K" * 1500))
    wheels = tmp_path / "env" / "images" / "wheels" / "cp311-manylinux_x86_64-tf2.19.0"
    wheels.mkdir(parents=True)
    (wheels / "numpy.whl").write_bytes(b"w" * 2_500_000)
    (tmp_path / "env" / "arm64" / "rootfs-0123456789abcdef" / "usr").mkdir(parents=True)
    (tmp_path / "env" / "arm64" / "rootfs-0123456789abcdef" / "usr" / "python3").write_bytes(b"p" * 10)
    return made


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_info_shows_roots_entries_and_sizes_per_kind(cache: ArtifactCache, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["cache"], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"model cache: {cache.root} (3 entries, ")
    assert any(ln.split()[:3] == ["tflite", "2", "entries"] and "KB" in ln for ln in lines)
    assert any(ln.split()[:3] == ["trained", "1", "entries"] for ln in lines)
    assert any(ln.startswith(f"environment cache: {cache.environment_root} (2 entries, 2.5 MB)") for ln in lines)
    assert any(ln.split()[:5] == ["wheels", "1", "entries", "2.5", "MB"] for ln in lines)
    rc, out, _ = _run(["cache", "info", "--kind", "tflite", "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and set(data["kinds"]) == {"tflite"} and data["kinds"]["tflite"]["entries"] == 2
    assert {e["ok"] for e in data["entries"]} == {True} and data["model_cache"] == str(cache.root)


def test_verify_lists_corrupt_entries_and_exits_1(cache: ArtifactCache, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["cache", "verify"], capsys)
    assert rc == 0 and out.startswith("verified 3 entries (") and out.endswith(
        f" KB) in {cache.root}: all intact; environment kinds are not verified\n")
    entry = cache.path_for("tflite", {"m": 1})
    (entry / "model.tflite").write_bytes(b"T" * 1500)  # truncated to half
    rc, out, _ = _run(["cache", "verify"], capsys)
    assert rc == 1
    assert f"unusable: tflite/{entry.name}: model.tflite is 1500 bytes, the manifest says 3000\n" in out
    assert "1 unusable" in out.splitlines()[-1]
    rc, out, _ = _run(["cache", "verify", "--kind", "trained"], capsys)
    assert rc == 0 and "verified 1 entries" in out
    rc, out, _ = _run(["cache", "verify", "--json"], capsys)
    data = json.loads(out)
    assert rc == 1 and data["verified"] == 3 and [e["name"] for e in data["corrupt"]] == [entry.name]


def test_clear_by_kind_then_all(cache: ArtifactCache, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = _run(["cache", "clear", "--kind", "tflite"], capsys)
    assert rc == 0 and out.startswith("removed 2 entries (") and "tflite 2" in out
    assert cache.kinds() == ["tflite", "trained"] and not list((cache.root / "tflite").glob("[0-9a-f]*[0-9a-f]"))
    rc, out, _ = _run(["cache", "clear"], capsys)
    assert rc == 0 and out.startswith("removed 1 entries (") and "trained 1" in out
    assert "cleared only when named" in out and (cache.environment_root / "images" / "wheels").is_dir()
    rc, out, _ = _run(["cache", "clear", "--kind", "wheels", "--kind", "arm64", "--json"], capsys)
    data = json.loads(out)
    assert rc == 0 and sorted(e["kind"] for e in data["removed"]) == ["arm64", "wheels"]
    assert not any((cache.environment_root / "images" / "wheels").iterdir())
    assert not (cache.environment_root / "arm64" / "rootfs-0123456789abcdef").exists()
    assert ArtifactCache().entries() == []


@pytest.mark.parametrize("args, words", [
    (["cache", "frob"], "invalid choice: 'frob'"),
    (["cache", "clear", "--kind", "tflitee"], "unknown cache kind 'tflitee': kinds here are arm64, debootstrap, "
                                              "tflite, trained, wheels"),
    (["cache", "verify", "--kind"], "expected one argument"),
])
def test_bad_input_is_one_line_exit_2(cache: ArtifactCache, capsys: pytest.CaptureFixture[str],
                                      args: list[str], words: str) -> None:
    rc, out, err = _run(args, capsys)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1 and words in err
    assert len(cache.entries()) == 5  # nothing removed
