"""Small, seeded failing models for ``pitfalls reduce`` (issue 22 item 3): each has one culprit
layer among plain ones, so a reproducer of that layer (or a few) must still fail the same way.
Built into the artifact cache (kind ``check-model``) like :mod:`check_models`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from harness.artifacts import ArtifactCache
from harness.reduce.api import RESULT_PREFIX

from check_models import _cached

def run_reproducer_fresh(directory: Path, home: Path) -> tuple[int, dict[str, Any], str]:
    """``python reproduce.py`` in a clean process (no PYTHONPATH, nothing of the checkout): its exit
    code, its last ``REPRODUCER-RESULT`` and its output."""
    home.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, str(directory / "reproduce.py")], cwd=home, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(home)}, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, json.loads(lines[-1][len(RESULT_PREFIX):]), done.stdout


def reproduced_by_reduce(directory: Path, home: Path, key: Callable[[dict[str, Any]], Any],
                         run_here: bool = False) -> tuple[int, dict[str, Any]]:
    """What ``pitfalls reduce`` recorded in ``finding.json`` of its own run of the written
    ``reproduce.py`` in a fresh process with a clean environment (no PYTHONPATH, a throw-away HOME):
    its exit code and its ``REPRODUCER-RESULT``.  Tests read it instead of importing the runtime
    again in one more fresh process; with ``run_here`` (one test per target and model format) the
    test also runs the script itself from the written directory (:func:`run_reproducer_fresh`) and
    must see the same exit code and finding (``key``: the target reproducer's)."""
    record = json.loads((directory / "finding.json").read_text())
    code, seen = record["script_exit_code"], record["observed_by_reproducer"]
    if run_here:
        code_here, seen_here, stdout = run_reproducer_fresh(directory, home)
        assert (code_here, key(seen_here)) == (code, key(seen)), (
            "the script fails differently from what reduce recorded of it\n" + stdout[-2000:])
    return code, seen


#: the culprit layer of each model, as the reproducer must keep it
FLEX_CULPRIT = "bicubic"
QUANTISED_CULPRIT = "outlier_dense"


def flex_buried_keras(cache: ArtifactCache) -> Path:
    """Keras 3 CNN with a bicubic ``Resizing`` (TF's ResizeBicubic: no TF Lite builtin, a Select TF
    op) between plain convolutions, pooling and dense layers."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        x = keras.Input((12, 12, 3), name="image")
        h = keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(x)
        h = keras.layers.ReLU(name="relu_a")(h)
        h = keras.layers.Resizing(16, 16, interpolation="bicubic", name=FLEX_CULPRIT)(h)
        h = keras.layers.Conv2D(4, 3, padding="same", name="conv_b")(h)
        h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
        h = keras.layers.Dense(8, activation="relu", name="hidden")(h)
        keras.Model(x, keras.layers.Dense(3, name="scores")(h), name="flex_buried").save(out / "flex_buried.keras")

    return _cached(cache, "reduce_flex_buried", "flex_buried.keras", build)


def quantisation_outlier_keras(cache: ArtifactCache) -> Path:
    """Keras 3 MLP whose middle Dense has one input row of weights at 1000 (that input is always 0:
    the layer before it ends in ReLU with bias -100 there).  Float32 it is exact; dynamic-range
    quantisation scales the weights by the outlier, rounding every other weight to 0."""
    def build(out: Path) -> None:
        import keras
        import numpy as np

        keras.utils.set_random_seed(0)
        x = keras.Input((64,), name="features")
        h = keras.layers.Dense(64, activation="tanh", name="plain")(x)
        first = keras.layers.Dense(64, activation="relu", name="first")
        h = first(h)
        culprit = keras.layers.Dense(64, activation="relu", name=QUANTISED_CULPRIT)
        h = culprit(h)
        h = keras.layers.Dense(32, activation="tanh", name="after")(h)
        model = keras.Model(x, keras.layers.Dense(4, name="scores")(h), name="outlier_mlp")
        kernel, bias = first.get_weights()
        bias[0] = -100.0
        first.set_weights([kernel, bias])
        kernel, bias = culprit.get_weights()
        kernel[0, :] = 1000.0
        culprit.set_weights([kernel, np.full_like(bias, 0.5)])
        model.save(out / "outlier_mlp.keras")

    return _cached(cache, "reduce_quantisation_outlier_2", "outlier_mlp.keras", build)


def plain_mlp_keras(cache: ArtifactCache) -> Path:
    """Keras 3 MLP that converts and runs on LiteRT within float32 tolerance: nothing to reduce."""
    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Input((6,), name="features"),
                                  keras.layers.Dense(8, activation="relu", name="hidden"),
                                  keras.layers.Dense(3, name="scores")], name="plain_mlp")
        model.save(out / "plain_mlp.keras")

    return _cached(cache, "reduce_plain_mlp", "plain_mlp.keras", build)


def flex_buried_h5(cache: ArtifactCache) -> Path:
    """tf_keras (``.h5``): a convolution, the bicubic ``Resizing``, pooling and a dense layer."""
    def build(out: Path) -> None:
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        x = tf_keras.Input((12, 12, 3), name="image")
        h = tf_keras.layers.Conv2D(4, 3, padding="same", name="conv_a")(x)
        h = tf_keras.layers.Resizing(16, 16, interpolation="bicubic", name=FLEX_CULPRIT)(h)
        h = tf_keras.layers.GlobalAveragePooling2D(name="pool")(h)
        tf_keras.Model(x, tf_keras.layers.Dense(3, name="scores")(h), name="flex_h5").save(out / "flex_buried.h5")

    return _cached(cache, "reduce_flex_buried_h5", "flex_buried.h5", build)
