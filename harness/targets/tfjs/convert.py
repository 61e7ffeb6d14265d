"""The real ``tensorflowjs_converter`` CLI, cached, and the exports it needs first.

Every conversion is a cache entry keyed by the converter's arguments, the source's content key
(:meth:`ArtifactCache.source_key`, so a cache restored elsewhere still hits) and the versions of
the libraries involved.  A failing conversion raises :class:`RuntimeFailure` with the
converter's own stderr and is not cached.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.artifacts import ArtifactCache, library_versions
from harness.errors import RuntimeFailure, WaitTimeout

if TYPE_CHECKING:
    from harness.models import TrainedModel

CONVERTER_DISTS = ("tensorflowjs", "tensorflow", "tf-keras")
LAYERS_ARGS = ("--input_format=keras",)
GRAPH_ARGS = ("--input_format=tf_saved_model", "--output_format=tfjs_graph_model")


def _converter_failure(proc: subprocess.CompletedProcess[str], args: list[str]) -> RuntimeFailure:
    err = proc.stderr.strip()
    kinds = re.findall(r"^([A-Za-z_][\w.]*(?:Error|Exception)):", err, flags=re.MULTILINE)
    start = err.rfind("\n" + kinds[-1] + ":") + 1 if kinds else max(0, len(err) - 3000)
    return RuntimeFailure("tensorflowjs converter", err[start:][-4000:] or f"exit code {proc.returncode}",
                          kind=kinds[-1].rsplit(".", 1)[-1] if kinds else "",
                          source=f"stderr of `tensorflowjs_converter {' '.join(args)}` (exit {proc.returncode})")


def run_converter(cache: ArtifactCache, args: list[str], source: Path, *, timeout: float = 300.0) -> Path:
    """Run the real ``tensorflowjs_converter`` CLI on ``source``; cached by arguments, source content and versions.

    The output directory is the last argument the converter sees.  A failing conversion raises
    :class:`RuntimeFailure` with the converter's own error text and is not cached.
    """
    key = {"args": args, "source": cache.source_key(source), "versions": library_versions(*CONVERTER_DISTS)}

    def build(out: Path) -> None:
        exe = Path(sys.executable).with_name("tensorflowjs_converter")
        full = [*args, str(source), str(out / "model")]
        try:
            proc = subprocess.run([str(exe), *full], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise WaitTimeout(f"tensorflowjs_converter did not finish in {timeout}s", evidence=" ".join(full)) from None
        if proc.returncode != 0:
            raise _converter_failure(proc, args)

    return cache.get_or_build("tfjs", key, build, out_of_process=True) / "model"


def convert_layers_model(cache: ArtifactCache, trained: "TrainedModel", *extra: str) -> Path:
    """A tf_keras HDF5 model -> tf.js layers format (``model.json`` + weight shards)."""
    return run_converter(cache, [*LAYERS_ARGS, *extra], trained.model_file)


def convert_graph_model(cache: ArtifactCache, saved_model_dir: Path, *extra: str) -> Path:
    """A SavedModel -> tf.js graph format."""
    return run_converter(cache, [*GRAPH_ARGS, *extra], saved_model_dir)


def artifact_sizes(model_dir: Path) -> dict[str, int]:
    """Bytes of a converted model: ``weights`` (all shards), ``model_json``, and ``shards`` (count)."""
    shards = [p for p in model_dir.iterdir() if p.suffix == ".bin"]
    return {"weights": sum(p.stat().st_size for p in shards), "model_json": (model_dir / "model.json").stat().st_size,
            "shards": len(shards)}
