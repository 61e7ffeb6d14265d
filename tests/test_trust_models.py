"""The trust gate and bounded archives, tested as the attacks they stop (docs/security.md).

Each attack model does something observable when its code runs (writes a marker file); the check
must refuse it or report it without running it, and every loader of every target must refuse it
when called directly, so that nobody can go around the gate.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest

from harness.archives import ArchiveLimits, checked_members, read_member
from harness.artifacts import ArtifactCache
from harness.errors import UsageError
from harness.paths import REPO_ROOT
from harness.targets.base import ModelSource
from harness.trust import (CHECKPOINT_OPS, DENIED_OPS, SAVED_MODEL_CLI_DENYLIST, ModelRefused, admit,
                           keras_config_concerns, saved_model_concerns)

pytestmark = pytest.mark.slow


def _pitfalls(*args: str, limit_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m harness ARGS`` from the checkout, optionally under an address-space limit."""
    def limited() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, env=env, preexec_fn=limited, timeout=600)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------------ attack models

@pytest.fixture(scope="module")
def attacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tf_keras .h5 and a Keras 3 .keras whose Lambda writes ``marker``, a SavedModel whose serving
    function calls ``tf.io.write_file(marker)``, and a clean Keras 3 model exported as the catalog does."""
    import keras
    import tensorflow as tf
    import tf_keras

    root = tmp_path_factory.mktemp("attacks")
    marker = root / "marker"
    writes = eval(f"lambda t: t if __import__('pathlib').Path({str(marker)!r}).write_text('ran') else t")  # noqa: S307
    h5 = tf_keras.Sequential([tf_keras.Input((4,), name="x"), tf_keras.layers.Dense(2, name="dense"),
                              tf_keras.layers.Lambda(writes, name="writes_a_file")])
    h5.save(root / "lambda.h5")
    k3 = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(writes, name="writes_a_file")])
    k3.save(root / "lambda.keras")

    class Writer(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x: Any) -> Any:
            tf.io.write_file(str(marker), tf.strings.as_string(tf.reduce_sum(x)))
            return {"y": x * 2.0}

    writer = Writer()
    tf.saved_model.save(writer, str(root / "writes_saved_model"), signatures={"serving_default": writer.serve})
    clean = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    clean.save(root / "clean.keras")
    clean.export(str(root / "clean_saved_model"), verbose=False)
    marker.unlink(missing_ok=True)  # building the Lambda models ran it here, once, on purpose
    return {"marker": marker, "h5": root / "lambda.h5", "keras": root / "lambda.keras",
            "saved_model": root / "writes_saved_model", "clean_keras": root / "clean.keras",
            "clean_saved_model": root / "clean_saved_model", "root": root}


def test_h5_lambda_is_refused_by_check_and_its_code_does_not_run(attacks: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = _pitfalls("check", str(attacks["h5"]), "--targets", "litert", "--report-dir", str(out))
    assert done.returncode == 2, done.stderr[-2000:]
    line = _last_line(done)
    assert "refused to load" in line and "writes_a_file" in line and "Lambda" in line and "--trust-model" in line
    assert sum(1 for text in done.stderr.splitlines() if not text.startswith("check: scanning")) == 1
    assert not attacks["marker"].exists(), "the Lambda ran on the host"
    assert not out.exists(), "a refused check wrote a report"


def test_trust_model_lifts_the_refusal_and_the_report_says_so(attacks: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = _pitfalls("check", str(attacks["h5"]), "--targets", "litert", "--profile", "host", "--trust-model",
                     "--report-dir", str(out))
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert attacks["marker"].read_text() == "ran", "with --trust-model the model's own code runs"
    attacks["marker"].unlink()
    data = json.loads((out / "check.json").read_text())
    assert data["trusted"] is True and data["findings"] == []
    assert data["targets"]["litert"]["verdict"] in ("deploys", "warnings")
    assert "model trusted (--trust-model)" in done.stdout
    assert "model trusted (--trust-model)" in (out / "check.html").read_text()


def test_keras3_lambda_is_refused_before_keras_sees_it(attacks: dict[str, Path]) -> None:
    with pytest.raises(ModelRefused, match=r"layer 'writes_a_file' \(a Lambda layer"):
        admit(ModelSource.from_path(attacks["keras"]))
    assert not attacks["marker"].exists()


def test_saved_model_that_writes_a_file_is_reported_and_not_run(attacks: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = _pitfalls("check", str(attacks["saved_model"]), "--report-dir", str(out), "-q")
    assert done.returncode == 1, done.stderr[-2000:]
    assert not attacks["marker"].exists(), "the SavedModel's serving function ran on the host"
    data = json.loads((out / "check.json").read_text())
    assert data["trusted"] is False
    ops = [f for f in data["findings"] if f["text"].startswith("op WriteFile in function ")]
    assert ops and ops[0]["severity"] == "blocker" and ops[0]["step"] == "scan"
    assert "serve" in ops[0]["text"]  # the traced serving function: __inference_serve_<n>
    assert {t["verdict"] for t in data["targets"].values()} == {"skipped"}
    assert all("--trust-model" in t["reason"] for t in data["targets"].values())
    assert "op WriteFile in function" in done.stdout and "model untrusted" in done.stdout


def test_scan_flags_the_saved_model_cli_ops_and_passes_a_clean_export(attacks: dict[str, Path]) -> None:
    """The catalog's export (Keras 3 model.export) holds SaveV2/RestoreV2 in its own save/restore
    functions only: clean.  The attack holds WriteFile in its serving function."""
    assert SAVED_MODEL_CLI_DENYLIST <= DENIED_OPS and CHECKPOINT_OPS <= DENIED_OPS
    assert saved_model_concerns(attacks["clean_saved_model"]) == []
    found = saved_model_concerns(attacks["saved_model"])
    assert [c.name for c in found] == ["WriteFile"] and found[0].where.startswith("function __inference_serve")


def test_an_unparseable_saved_model_is_left_to_tensorflows_own_refusal(attacks: dict[str, Path], tmp_path: Path) -> None:
    """No graph to run, so nothing to refuse: TensorFlow's loader reports it in its own words."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(attacks["clean_saved_model"], broken)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel protocol buffer")
    assert saved_model_concerns(broken) == []
    from harness.check.model import load_model

    with pytest.raises(UsageError, match="could not be loaded as a SavedModel"):
        load_model(ModelSource.from_path(broken))


def test_denied_ops_are_ops_tensorflow_registers() -> None:
    """The op list names real ops (a typo would be a check that cannot fail)."""
    import tensorflow as tf

    unknown = sorted(op for op in DENIED_OPS if not hasattr(tf.raw_ops, op))
    assert unknown == []


# ------------------------------------------------------------------------------------ every loader

def _loaders() -> list[tuple[str, Callable[[ModelSource, ArtifactCache], Any]]]:
    def prepare(target: str) -> Callable[[ModelSource, ArtifactCache], Any]:
        def call(source: ModelSource, cache: ArtifactCache) -> Any:
            from harness.targets import target_class

            return target_class(target)().prepare(source, cache)
        return call

    def tflite(source: ModelSource, cache: ArtifactCache) -> Any:
        from harness.targets.litert.convert import tflite_from_source

        return tflite_from_source(cache, source, {})

    def tflite_from_path(source: ModelSource, cache: ArtifactCache) -> Any:
        from harness.targets.litert.convert import convert_to_tflite

        return convert_to_tflite(cache, source.path, from_keras=True)

    def coreml(source: ModelSource, cache: ArtifactCache) -> Any:
        from harness.targets.coreml.convert import coreml_from_source

        return coreml_from_source(cache, source, {})

    def export(source: ModelSource, cache: ArtifactCache) -> Any:
        from harness.export import saved_model_of

        return saved_model_of(cache, source)

    def keras_model(source: ModelSource, cache: ArtifactCache) -> Any:
        from harness.export import load_keras_model

        return load_keras_model(source)

    def reference(source: ModelSource, cache: ArtifactCache) -> Any:
        from harness.check.model import load_model

        return load_model(source)

    return [*((f"{t}.prepare", prepare(t)) for t in ("tfserving", "litert", "coreml", "tfjs")),
            ("tflite_from_source", tflite), ("convert_to_tflite(path)", tflite_from_path),
            ("coreml_from_source", coreml), ("saved_model_of", export),
            ("load_keras_model", keras_model), ("check load_model", reference)]


@pytest.mark.parametrize("name, loader", _loaders(), ids=[n for n, _ in _loaders()])
def test_every_loader_refuses_an_untrusted_lambda(name: str, loader: Callable[[ModelSource, ArtifactCache], Any],
                                                  attacks: dict[str, Path], tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    for kind in ("h5", "keras"):
        with pytest.raises(ModelRefused, match="writes_a_file"):
            loader(ModelSource.from_path(attacks[kind]), cache)
    assert not attacks["marker"].exists(), f"{name} ran the Lambda"


@pytest.mark.parametrize("name, loader", [(n, f) for n, f in _loaders() if "prepare" in n or n == "saved_model_of"],
                         ids=[n for n, _ in _loaders() if "prepare" in n or n == "saved_model_of"])
def test_every_prepare_refuses_an_untrusted_saved_model_that_writes(
        name: str, loader: Callable[[ModelSource, ArtifactCache], Any], attacks: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelRefused, match="op WriteFile in function"):
        loader(ModelSource.from_path(attacks["saved_model"]), ArtifactCache(tmp_path / "cache"))
    assert not attacks["marker"].exists()


# ------------------------------------------------------------------------------------ Keras configs

def test_a_config_that_names_any_module_is_refused_unless_imported() -> None:
    """The CVE-2025-1550 shape: a config entry naming a module and a function to call."""
    config = {"module": "keras", "class_name": "Functional", "config": {"name": "m", "layers": [
        {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "activation": {
            "module": "os", "class_name": "function", "config": "system", "registered_name": "function"}}},
        {"module": "mine.layers", "class_name": "Gram", "config": {"name": "gram"},
         "registered_name": "mine>Gram"}]}}
    found = keras_config_concerns(config)
    assert [(c.name, c.where) for c in found] == [("os.function", "dense"), ("mine.layers.Gram", "gram")]
    assert [c.name for c in keras_config_concerns(config, imports=("mine",))] == ["os.function"]
    assert keras_config_concerns({"module": "keras.layers", "class_name": "Dense",
                                  "config": {"name": "d", "kernel_initializer": {
                                      "module": "keras.initializers", "class_name": "GlorotUniform"}}}) == []


def test_trusted_sources_pass_the_gate_unscanned(attacks: dict[str, Path]) -> None:
    admit(ModelSource.from_path(attacks["h5"], trusted=True))
    admit(ModelSource.from_path(attacks["clean_keras"]))  # untrusted and clean: passes the scan


# ------------------------------------------------------------------------------------ archives

def _deflated(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_archive_limits_refuse_large_and_highly_compressed_members(tmp_path: Path) -> None:
    limits = ArchiveLimits(member_bytes=4096, total_bytes=6000, ratio=10.0, ratio_from_bytes=1024)
    ok = _deflated(tmp_path / "ok.zip", {"a": os.urandom(3000), "b": b"x" * 500})
    assert [m.filename for m in checked_members(ok, limits, hint="h")] == ["a", "b"]
    assert read_member(ok, "b", max_bytes=600, limits=limits, hint="h") == b"x" * 500
    assert read_member(ok, "nope", max_bytes=600, limits=limits, hint="h") is None
    with pytest.raises(UsageError, match="above the limit of 10"):
        checked_members(_deflated(tmp_path / "bomb.zip", {"a": b"\0" * 3000}), limits, hint="h")
    with pytest.raises(UsageError, match="above the limit of 4096"):
        checked_members(_deflated(tmp_path / "big.zip", {"a": os.urandom(5000)}), limits, hint="h")
    with pytest.raises(UsageError, match="more than 6000 bytes in all"):
        checked_members(_deflated(tmp_path / "many.zip", {"a": os.urandom(4000), "b": os.urandom(4000)}),
                        limits, hint="h")
    with pytest.raises(UsageError, match="is 500 bytes, above the limit of 100"):
        read_member(ok, "b", max_bytes=100, limits=limits, hint="h")


@pytest.fixture(scope="module")
def keras_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ~1.5 MB .keras whose metadata.json inflates to 1.5 GB (streamed: never in memory here)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.keras"
    chunk = b" " * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("metadata.json", "w", force_zip64=True) as member:
            member.write(b'{"keras_version": "3.15.1", "pad": "')
            for _ in range(1500):
                member.write(chunk)
            member.write(b'"}')
        zf.writestr("config.json", "{}")
    return path


def test_keras_zip_bomb_is_refused_in_one_line_at_bounded_memory(keras_bomb: Path, tmp_path: Path) -> None:
    assert keras_bomb.stat().st_size < 3 << 20
    out = tmp_path / "report"
    for extra in ((), ("--trust-model",)):  # archive limits hold whatever the trust
        done = _pitfalls("check", str(keras_bomb), "--targets", "litert", "-q", "--report-dir", str(out), *extra,
                         limit_bytes=1536 << 20)  # 1.5 GiB of address space: inflating it would not fit
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "metadata.json would inflate" in lines[0] and "zip bomb" in lines[0], lines
        assert not out.exists()


def test_truncated_keras_archive_is_one_line_exit_2(attacks: dict[str, Path], tmp_path: Path) -> None:
    data = attacks["clean_keras"].read_bytes()
    truncated = tmp_path / "truncated.keras"
    truncated.write_bytes(data[: len(data) // 2])
    done = _pitfalls("check", str(truncated), "--targets", "litert", "-q")
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a complete zip archive" in lines[0], lines


def test_inputs_npz_bomb_is_refused_before_numpy_reads_it(tmp_path: Path) -> None:
    from harness.archives import INPUTS_ARCHIVE
    from harness.check.model import read_inputs

    bomb = tmp_path / "inputs.npz"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("x.npy"), b"")  # declared sizes are what the check reads
        info = zf.infolist()[0]
    # rewrite the declared size in the central directory as a bomb would have it
    limits_hit = INPUTS_ARCHIVE.total_bytes + 1
    raw = bomb.read_bytes()
    central = raw.rindex(b"PK\x01\x02")
    patched = raw[:central + 24] + limits_hit.to_bytes(4, "little") + raw[central + 28:]
    bomb.write_bytes(patched)
    assert info.filename == "x.npy"
    with pytest.raises(UsageError, match="x.npy would inflate to"):
        read_inputs(bomb, None)  # type: ignore[arg-type]  # refused before the model is consulted
