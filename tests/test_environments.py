"""Unit tests of the environment builder's pieces (harness.environments); no network, no engine.

The recipes themselves (serving images, arm64 root file system) are exercised by test_images.py
and test_arm64.py; here: the mirror lookup, offline-wheel manifests, the locked build, the keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.environments import build, wheels
from harness.environments.arm64_rootfs import RootfsRecipe
from harness.environments.mirror import DEFAULT_MIRROR, debian_mirror
from harness.errors import SetupError
from harness.paths import REPO_ROOT


# --- the mirror ----------------------------------------------------------------------------

@pytest.fixture
def apt_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty /etc/apt look-alike, with no $PITFALLS_DEBIAN_MIRROR override."""
    monkeypatch.delenv("PITFALLS_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    return tmp_path


DEB822 = ("Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
          "Components: main\n\n"
          "Types: deb deb-src\n# a comment\nURIs: http://mirror.example/debian/\n"
          "Suites: bookworm bookworm-updates\nComponents: main\n")
ONE_LINE = ("# deb http://commented.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n")
# The shape of this machine's sources: a snapshot URI in a comment, other repositories.
SNAPSHOT = ("Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\n"
            "Types: deb\n# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
            "URIs: http://mirror.example/debian\nSuites: bookworm\n")
MIRROR_CASES = {
    "deb822, a disabled .list ignored": (
        {"sources.list.d/debian.sources": DEB822,
         "sources.list.d/other.list.disabled": "deb http://wrong.example/debian bookworm main\n"},
        "bookworm", "http://mirror.example/debian"),
    "one-line with options": ({"sources.list": ONE_LINE}, "bookworm", "http://one.example/debian"),
    "another suite": ({"sources.list": ONE_LINE}, "trixie", DEFAULT_MIRROR),
    "comments, Enabled: no, other repositories": (
        {"sources.list.d/debian.sources": SNAPSHOT,
         "sources.list.d/other.list": "deb https://packages.example/apt stable main\n"},
        "bookworm", "http://mirror.example/debian"),
    "nothing": ({}, "bookworm", DEFAULT_MIRROR),
}


@pytest.mark.parametrize("files, suite, expected", MIRROR_CASES.values(), ids=MIRROR_CASES.keys())
def test_debian_mirror_reads_deb822_and_one_line_sources(
        apt_dir: Path, files: dict[str, str], suite: str, expected: str) -> None:
    for name, text in files.items():
        (apt_dir / name).write_text(text)
    assert debian_mirror(suite, apt_dir) == expected


def test_debian_mirror_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITFALLS_DEBIAN_MIRROR", "http://override.example/debian")
    assert debian_mirror() == "http://override.example/debian"


# --- keys stay what they were --------------------------------------------------------------

def test_hashes_and_keys_are_unchanged_for_the_same_inputs(tmp_path: Path) -> None:
    """Values computed with the code before the builder was unified: cached entries stay valid."""
    assert build.sha256_of_parts([b"a", b"bc"]) == (
        "3fafa1cf2f19a7c1129beb20cf0983f73a489a221fc0dd2f16d1be292d089205")
    recipe = RootfsRecipe(suite="bookworm", arch="arm64", variant="minbase",
                          mirror="http://deb.debian.org/debian", include=("python3",),
                          requirements=("ai-edge-litert==2.3.0", "numpy==2.0.2"),
                          wheel_platforms=("manylinux_2_27_aarch64",), python_version="3.11",
                          pip_version="24.0", recipe_version="1")
    assert recipe.key() == "31d5208dedabc497"
    (tmp_path / "x-1.whl").write_bytes(b"12345")
    assert wheels.WheelSet(tmp_path, ("x==1",), ("x-1.whl",)).manifest() == b"x==1\n--\nx-1.whl 5"


# --- offline wheels ------------------------------------------------------------------------

def _fake_pip(calls: list[list[str]]) -> object:
    def run(command: list[str], log: Path, what: str, **_: object) -> str:
        calls.append(command)
        dest = Path(command[command.index("--dest") + 1])
        (dest / "demo-1.0-py3-none-any.whl").write_bytes(b"wheel")
        return f"Collecting demo\nSaved {dest}/demo-1.0-py3-none-any.whl\nSuccessfully downloaded demo\n"

    return run


def test_wheels_are_downloaded_once_and_reused_from_the_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(wheels, "run_logged", _fake_pip(calls))
    directory = tmp_path / "wheels" / "cp311-aarch64"
    first = wheels.download_wheels(["demo==1.0"], directory, scope="test", python_version="3.11",
                                   abi="cp311", platforms=["manylinux2014_aarch64"])
    assert first.files == ("demo-1.0-py3-none-any.whl",)
    assert first.directory == directory
    command = calls[0]
    assert command[command.index("--platform") + 1] == "manylinux2014_aarch64"
    assert command[command.index("--abi") + 1] == "cp311"
    assert command[command.index("--python-version") + 1] == "3.11"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["requirements"] == ["demo==1.0"]
    assert manifest["files"] == ["demo-1.0-py3-none-any.whl"]

    again = wheels.download_wheels(["demo==1.0"], directory, scope="test", python_version="3.11",
                                   abi="cp311", platforms=["manylinux2014_aarch64"])
    assert again == first and len(calls) == 1, "the second call must not run pip"

    wheels.download_wheels(["demo==2.0"], directory, scope="test")
    assert len(calls) == 2, "other requirements are another download"


def test_a_manifest_without_its_files_is_downloaded_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "wheels"
    directory.mkdir()
    (directory / "manifest.json").write_text(json.dumps(
        {"requirements": ["demo==1.0"], "files": ["gone-1.0-py3-none-any.whl"]}))
    calls: list[list[str]] = []
    monkeypatch.setattr(wheels, "run_logged", _fake_pip(calls))
    found = wheels.download_wheels(["demo==1.0"], directory, scope="test")
    assert len(calls) == 1 and found.files == ("demo-1.0-py3-none-any.whl",)
    assert not (directory / "gone-1.0-py3-none-any.whl").exists()


def test_a_failed_pip_download_leaves_no_wheel_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a real pip that finds nothing, with no network
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    directory = tmp_path / "wheels" / "none"
    with pytest.raises(SetupError) as caught:
        wheels.download_wheels(["demo==1.0"], directory, scope="test",
                               platforms=["manylinux2014_aarch64"], python_version="3.11",
                               abi="cp311", hint="offline in this test")
    assert "pip download of demo==1.0" in caught.value.message
    assert "No matching distribution found for demo==1.0" in caught.value.evidence
    assert caught.value.evidence
    assert not directory.exists()
    assert list(directory.parent.glob(".tmp-*")) == []
    assert (directory.parent / "none.log").is_file()


# --- the locked build ------------------------------------------------------------------------

BUILDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from harness.environments.build import build_directory

    final, counter = Path(sys.argv[1]), Path(sys.argv[2])

    def fill(target):
        with counter.open("a") as sink:
            sink.write("built\\n")
        time.sleep(1.0)
        (target / "content").write_text("done")

    built = build_directory(final, fill, what="a test entry", scope="test")
    print("BUILT" if built else "FOUND", (final / "content").read_text())
""")


def test_concurrent_callers_build_once(tmp_path: Path) -> None:
    final, counter = tmp_path / "entry-abc", tmp_path / "count"
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    callers = [subprocess.Popen([sys.executable, "-c", BUILDER, str(final), str(counter)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(3)]
    outputs = [caller.communicate(timeout=60) for caller in callers]
    assert [caller.returncode for caller in callers] == [0, 0, 0], outputs
    assert counter.read_text() == "built\n"
    assert sorted(out.strip() for out, _ in outputs) == ["BUILT done", "FOUND done", "FOUND done"]
    assert list(tmp_path.glob(".tmp-*")) == []
    assert any("a test entry ready in" in err for _, err in outputs)


def test_a_failed_build_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "entry"

    def fill(target: Path) -> None:
        (target / "half").write_text("half written")
        raise SetupError("the step failed")

    with pytest.raises(SetupError, match="the step failed"):
        build.build_directory(final, fill, what="entry", scope="test")
    assert not final.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["entry.lock"]


def test_a_stale_temporary_directory_is_removed(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    final = tmp_path / "entry"
    stale = tmp_path / ".tmp-entry-killed"
    (stale / "deep").mkdir(parents=True)
    (stale / "deep" / "file").write_text("from a killed build")
    other = tmp_path / ".tmp-another-entry-x"
    other.mkdir()
    built = build.build_directory(final, lambda target: (target / "ok").write_text("1"),
                                  what="entry", scope="test")
    assert built and (final / "ok").read_text() == "1"
    assert not stale.exists()
    assert other.exists(), "another entry's temporary directory is not this build's to remove"
    assert f"removing a stale build directory {stale}" in capsys.readouterr().err


def test_an_incomplete_entry_is_replaced(tmp_path: Path) -> None:
    final = tmp_path / "entry"
    final.mkdir()
    (final / "partial").write_text("no marker")
    built = build.build_directory(final, lambda target: (target / "MARK").write_text("1"),
                                  what="entry", scope="test",
                                  complete=lambda path: (path / "MARK").is_file())
    assert built and sorted(p.name for p in final.iterdir()) == ["MARK"]
    assert not build.build_directory(final, lambda target: None, what="entry", scope="test",
                                     complete=lambda path: (path / "MARK").is_file())


def test_a_held_lock_times_out_with_evidence(tmp_path: Path) -> None:
    from filelock import FileLock

    from harness.errors import WaitTimeout

    lock_path = tmp_path / "entry.lock"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from filelock import FileLock
        with FileLock({str(lock_path)!r}):
            print("held", flush=True)
            time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WaitTimeout) as caught:
            build.build_directory(tmp_path / "entry", lambda target: None, what="the entry",
                                  scope="test", lock_timeout=0.5)
        # it gave up on its own timeout while the lock was still held (not when the holder let go)
        assert holder.poll() is None
        assert "another process to build the entry" in caught.value.message
        assert str(lock_path) in caught.value.evidence
    finally:
        holder.kill()
        holder.wait()
    with FileLock(str(lock_path), timeout=5):
        pass  # released when its holder is gone


def test_run_logged_raises_with_the_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    output = build.run_logged(["sh", "-c", "echo first step"], log, "step one")
    assert output.strip() == "first step"
    with pytest.raises(SetupError) as caught:
        build.run_logged(["sh", "-c", "echo it broke >&2; exit 3"], log, "step two", hint="fix it")
    error = caught.value
    assert error.message == "step two failed with exit code 3"
    assert "it broke" in error.evidence
    assert error.hint == f"fix it; full log: {log}"
    text = log.read_text()
    assert "$ sh -c echo first step" in text and "it broke" in text
    with pytest.raises(SetupError, match="no-such-tool-here"):
        build.run_logged(["no-such-tool-here"], log, "step three", missing_hint="install it")
