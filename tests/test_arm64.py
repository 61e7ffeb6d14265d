"""The emulated arm64 LiteRT device: parity with x86-64 LiteRT, real error text, cleanup, cache.

The TF Lite model is converted on x86-64 in a subprocess (TensorFlow and LiteRT are kept apart,
see STACK.md), run on the x86-64 LiteRT in this process, and run on the aarch64 LiteRT under qemu.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.environments import arm64_rootfs as rootfs_recipe
from harness.environments.ownership import container_user, current_owner
from harness.paths import REPO_ROOT
from harness.targets.litert import arm64
from harness.errors import RuntimeFailure
from tests.test_confinement import private_owners  # noqa: F401 - a fixture: the made-up owners' lock files apart

PARITY_TOLERANCE = 1e-5
INPUT_WIDTH = 8

CONVERT_SCRIPT = textwrap.dedent(
    """
    import sys
    import tensorflow as tf

    tf.keras.utils.set_random_seed(7)
    model = tf.keras.Sequential([
        tf.keras.Input((8,)),
        tf.keras.layers.Dense(16, activation="relu"),
        tf.keras.layers.Dense(3, activation="softmax"),
    ])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    with open(sys.argv[1], "wb") as sink:
        sink.write(converter.convert())
    """
)


@pytest.fixture(scope="module")
def arm64_rootfs() -> Path:
    reason = arm64.arm64_unavailable_reason()
    if reason:
        pytest.skip(reason)
    return arm64.ensure_arm64_rootfs()


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("arm64-model") / "tiny_mlp.tflite"
    done = subprocess.run([sys.executable, "-c", CONVERT_SCRIPT, str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return path


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((1, INPUT_WIDTH)).astype(np.float32)


def run_on_x86(model_path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    interpreter.allocate_tensors()
    for detail, value in zip(interpreter.get_input_details(), inputs):
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def x86_error_text(model_path: Path, value: np.ndarray) -> str:
    with pytest.raises(ValueError) as caught:
        run_on_x86(model_path, [value])
    return str(caught.value)


def leftovers(rootfs: Path) -> list[Path]:
    """This process's call directories (other xdist workers may be calling at the same time)."""
    return sorted((rootfs / "tmp").glob(f"{arm64.CALL_DIR_PREFIX}{current_owner().id}-*"))


def test_arm64_outputs_match_x86(arm64_rootfs: Path, tiny_tflite: Path, batch: np.ndarray) -> None:
    expected = run_on_x86(tiny_tflite, [batch])
    observed = arm64.run_on_arm64(tiny_tflite, [batch], num_threads=2)
    assert len(observed) == len(expected)
    for got, want in zip(observed, expected):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=PARITY_TOLERANCE)


def test_wrong_shape_raises_litert_text(arm64_rootfs: Path, tiny_tflite: Path) -> None:
    wrong = np.zeros((1, INPUT_WIDTH - 1), np.float32)
    with pytest.raises(RuntimeFailure) as caught:
        arm64.run_on_arm64(tiny_tflite, [wrong])
    failure = caught.value
    assert failure.runtime == "litert/arm64"
    assert failure.kind == "ValueError"
    assert failure.source == "exception in arm64 LiteRT worker under qemu"
    assert failure.message.startswith("Cannot set tensor: Dimension mismatch. Got 7 but expected 8")
    assert failure.message == x86_error_text(tiny_tflite, wrong)


def test_calls_leave_no_mounts_and_no_temp_dirs(arm64_rootfs: Path, tiny_tflite: Path,
                                                batch: np.ndarray) -> None:
    arm64.run_on_arm64(tiny_tflite, [batch])
    with pytest.raises(RuntimeFailure):
        arm64.run_on_arm64(tiny_tflite, [np.zeros((2, 3), np.float32)])
    assert arm64.mounts_under(arm64_rootfs) == []
    assert str(arm64_rootfs) not in Path("/proc/mounts").read_text()
    assert leftovers(arm64_rootfs) == []


def test_timeout_kills_worker_and_cleans_up(arm64_rootfs: Path, tiny_tflite: Path,
                                            batch: np.ndarray) -> None:
    from harness.errors import WaitTimeout

    with pytest.raises(WaitTimeout, match="arm64 LiteRT worker"):
        arm64.run_on_arm64(tiny_tflite, [batch], timeout=0.05)
    assert leftovers(arm64_rootfs) == []
    assert arm64.mounts_under(arm64_rootfs) == []
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"{arm64.CALL_DIR_PREFIX}{current_owner().id}-" not in ps


def test_stale_call_dirs_of_dead_owners_are_removed(arm64_rootfs: Path, tiny_tflite: Path,
                                                    batch: np.ndarray, private_owners: Path) -> None:
    """A call directory goes once its owner is proven gone (its lock is free); more cases, the live
    owner in another pid namespace among them, in tests/test_confinement.py.  The dead owner's lock
    file is kept apart from the machine's (``private_owners``): a dead owner without one is ``unknown``,
    whose directory must stay (seen once under load, when another run's sweep still removed every free
    lock file; it no longer does, see ``remove_leftover_work_dirs``)."""
    dead = subprocess.run([sys.executable, "-c", "from harness.environments.ownership import current_owner; "
                           "print(current_owner().id)"], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                               "PITFALLS_ENV_CACHE": str(private_owners)}).stdout.strip()
    assert (private_owners / "owners" / f"{dead}.lock").is_file()
    stale = arm64_rootfs / "tmp" / f"{arm64.CALL_DIR_PREFIX}{dead}-1-left"
    stale.mkdir()
    arm64.run_on_arm64(tiny_tflite, [batch])
    assert not stale.exists()


def test_the_worker_runs_unprivileged(arm64_rootfs: Path) -> None:
    """The chroot'ed worker runs as the confined user, not root (``chroot --userspec``)."""
    exit_ = arm64._run_worker(arm64_rootfs, ["-c", "import os; print(os.getuid(), os.getgid())"], 120, "id")
    assert exit_.stdout.split() == [str(i) for i in container_user()], exit_


def test_rootfs_is_cached(arm64_rootfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_build(*args: object, **kwargs: object) -> bool:
        raise AssertionError("the cached root file system was built again")

    monkeypatch.setattr(rootfs_recipe, "build_directory", no_build)
    again = arm64.ensure_arm64_rootfs()
    assert again == arm64_rootfs
    assert arm64_rootfs.name == f"rootfs-{rootfs_recipe.current_recipe().key()}"


def test_versions_inside_and_outside(arm64_rootfs: Path) -> None:
    versions = arm64.arm64_versions()
    assert versions["litert_arm64"] == "2.3.0"
    assert versions["machine_arm64"] == "aarch64"
    assert versions["python_arm64"].startswith("3.11.")
    assert versions["numpy_arm64"] == versions["numpy_host"]
    assert versions["qemu"][0].isdigit()


def test_unavailable_reason_is_cheap_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("arm64_unavailable_reason started a process; it must stay cheap")

    monkeypatch.setattr(subprocess, "Popen", no_process)  # cheap: no subprocess (run() goes through Popen)
    reason = arm64.arm64_unavailable_reason()
    assert reason is None or isinstance(reason, str) and reason


def test_recipe_key_changes_with_inputs() -> None:
    recipe = rootfs_recipe.current_recipe()
    from dataclasses import replace

    assert replace(recipe, mirror="http://example.invalid/debian").key() != recipe.key()
    assert replace(recipe, requirements=("ai-edge-litert==2.2.0",)).key() != recipe.key()


def test_build_failure_raises_setup_error_and_cleans_up(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import SetupError

    reason = arm64.arm64_unavailable_reason()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("PITFALLS_ENV_CACHE", str(tmp_path))
    monkeypatch.setattr(rootfs_recipe, "debian_mirror", lambda suite: "http://127.0.0.1:9/debian")
    monkeypatch.setattr(rootfs_recipe, "download_guest_wheels", lambda recipe, log: [])
    with pytest.raises(SetupError) as caught:
        arm64.ensure_arm64_rootfs()
    error = caught.value
    assert "debootstrap of the arm64 root file system failed" in error.message
    assert "127.0.0.1:9" in error.evidence
    assert "scripts/setup-arm64.sh" in error.hint
    assert list((tmp_path / "arm64").glob(".tmp-*")) == []
    assert list((tmp_path / "arm64").glob("rootfs-*")) == [] or all(
        p.suffix == ".lock" for p in (tmp_path / "arm64").glob("rootfs-*"))
    assert arm64.mounts_under(tmp_path) == []


def test_wrong_number_of_inputs_is_our_usage_error(arm64_rootfs: Path, tiny_tflite: Path,
                                                   batch: np.ndarray) -> None:
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="model has 1 inputs but 2 arrays were given"):
        arm64.run_on_arm64(tiny_tflite, [batch, batch])
    assert leftovers(arm64_rootfs) == []


def test_the_worker_is_a_module_that_imports_nothing_from_harness() -> None:
    """It runs inside the root file system, whose Python has only numpy and ai_edge_litert."""
    import ast

    tree = ast.parse(rootfs_recipe.WORKER_FILE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}
    assert imported <= {"__future__", "json", "sys", "traceback", "pathlib", "typing", "numpy",
                        "ai_edge_litert", "importlib", "platform"}, imported
    assert rootfs_recipe.WORKER_FILE.name == "arm64_worker.py" and rootfs_recipe.WORKER_FILE.is_file()
