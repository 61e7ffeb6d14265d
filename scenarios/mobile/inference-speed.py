"""Latency on a weak device: XNNPACK, threads and quantisation, measured in one run.

The verdicts are ratios of two configurations timed as ``benchmark_model`` times one (see
:mod:`harness.timing`): each sample is the median of a few invokes in the profile's worker after
its warm-up invokes, the two configurations are sampled in alternating pairs, and the verdict is the
median of the paired ratios, its spread recorded.  Why the bounds hold on a busy machine: the two
samples of a pair run back to back on the same pinned CPU, so other work slows both, and the builtin
kernels do the same arithmetic without XNNPACK's vectorised, packed kernels (and float moves four
times int8's bytes), a difference in work, not in the machine's load.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.compare import max_abs_diff
from harness.artifacts import ArtifactCache, library_versions
from harness.models import rgb_image_data
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES, DeviceProfile, dequantize, quantize
from harness.timing import interleaved_measured, record_ratios

if TYPE_CHECKING:
    import numpy as np

    from harness.targets.litert.target import LitertTarget

SIZE = 64  # a camera thumbnail; four 3x3 convolutions, about 0.1 GMAC per image
LOW_END = PROFILES["low-end"]  # one thread pinned to one CPU, 2 GB address space
LOW_END_BUILTIN = dataclasses.replace(LOW_END, name="low-end-builtin-kernels", xnnpack=False)
RUNS = 30
RUNS_PER_SAMPLE = 5  # one paired sample: the median of this many invokes of one configuration


def conv_saved_model(cache: ArtifactCache) -> Path:
    """A seeded (untrained) CNN large enough for kernels to matter; latency needs no training."""
    key = {"arch": "conv4-64x64x3", "seed": 0, "versions": library_versions("tensorflow", "keras")}

    def build(out: Path) -> None:
        import keras

        keras.utils.set_random_seed(0)
        layers = keras.layers
        model = keras.Sequential([
            layers.Input((SIZE, SIZE, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(3, activation="softmax"),
        ])
        model.export(str(out / "saved_model"), verbose=False)

    return cache.get_or_build("saved_model", key, build) / "saved_model"


def models(run: Run[LitertTarget]) -> dict[str, Path]:
    source = conv_saved_model(run.cache)
    calibration, _ = rgb_image_data(50, seed=0, size=SIZE)
    return {"float": convert_to_tflite(run.cache, source),
            "dynamic": convert_to_tflite(run.cache, source, quantize="dynamic"),
            "int8": convert_to_tflite(run.cache, source, quantize="int8", representative=calibration)}


def _image(run: Run[LitertTarget], model: Path) -> "np.ndarray":
    import numpy as np

    x, _ = rgb_image_data(1, seed=1, size=SIZE)
    detail = run.target.inspect(model)["inputs"][0]
    return np.ascontiguousarray(quantize(x, detail) if detail["dtype"] == "int8" else x)


def invoke_seconds(run: Run[LitertTarget], model: Path, profile: DeviceProfile) -> Callable[[], float]:
    """One paired sample: the median invoke time (s) of ``model`` on ``profile``, in its worker."""
    x = _image(run, model)
    return lambda: run.target.time_invoke(model, [x], profile=profile, runs=RUNS_PER_SAMPLE)["median_ms"] / 1000


def compared(run: Run[LitertTarget], name: str, slow: Callable[[], float], fast: Callable[[], float]) -> float:
    """``slow`` over ``fast`` sampled in interleaved pairs after a warm-up pair; the median ratio."""
    pairs = interleaved_measured(slow, fast, warmup=1, repeats=7, max_repeats=21)
    run.note(f"{name}_median_ms", {"slow": statistics.median(pairs.a_seconds) * 1000,
                                   "fast": statistics.median(pairs.b_seconds) * 1000})
    return record_ratios(run, name, pairs)


def latency(run: Run[LitertTarget], name: str, model: Path, profile: DeviceProfile) -> float:
    """Best-of-RUNS invoke latency in ms, recorded for the table of configurations (not a verdict)."""
    timing = run.target.time_invoke(model, [_image(run, model)], profile=profile, runs=RUNS)
    run.note(f"profile_{name}", dataclasses.asdict(profile))
    run.figure(f"median_ms_{name}", timing["median_ms"])
    return run.figure(f"min_ms_{name}", timing["min_ms"])


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    # The app builds its interpreter with the builtin kernels only (as
    # OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, or a runtime without XNNPACK) and ships
    # the float model. The default XNNPACK configuration is timed alongside for the ratio.
    paths = models(run)
    run.note("profile_float_builtin_1thread", dataclasses.asdict(LOW_END_BUILTIN))
    slow = invoke_seconds(run, paths["float"], LOW_END_BUILTIN)
    fast = invoke_seconds(run, paths["float"], LOW_END)
    return {"slowdown_vs_xnnpack": compared(run, "slowdown_vs_xnnpack", slow, fast)}


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    paths = models(run)
    run.note("bytes", {k: p.stat().st_size for k, p in paths.items()})
    latency(run, "float_builtin_1thread", paths["float"], LOW_END_BUILTIN)
    latency(run, "float_xnnpack_1thread", paths["float"], LOW_END)
    latency(run, "dynamic_xnnpack_1thread", paths["dynamic"], LOW_END)
    latency(run, "int8_xnnpack_1thread", paths["int8"], LOW_END)
    latency(run, "float_xnnpack_2threads", paths["float"], PROFILES["host"])
    latency(run, "int8_xnnpack_2threads", paths["int8"], PROFILES["host"])
    # The int8 model must still compute the same thing.
    x, _ = rgb_image_data(16, seed=2, size=SIZE)
    details = run.target.inspect(paths["int8"])
    want = run.target.predict(paths["float"], [x], profile=LOW_END, resize=True)[0]
    raw = run.target.predict(paths["int8"], [quantize(x, details["inputs"][0])], profile=LOW_END, resize=True)[0]
    got = dequantize(raw, details["outputs"][0])
    baseline = invoke_seconds(run, paths["float"], LOW_END_BUILTIN)
    best = invoke_seconds(run, paths["int8"], LOW_END)
    return {"speedup_vs_builtin_float": compared(run, "speedup_vs_builtin_float", baseline, best),
            "int8_max_abs_diff": max_abs_diff(got, want)}


SCENARIO = Scenario(
    title="Float model on builtin kernels versus XNNPACK and int8 on a one-core device profile",
    targets=("litert",),
    figures={"median_ms_*": "latency_ms", "min_ms_*": "latency_ms", "int8_max_abs_diff": "parity",
             "slowdown_vs_xnnpack": "ratio", "speedup_vs_builtin_float": "speedup"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("slowdown_vs_xnnpack", ">", 2.0)),
    remedy=succeeds(Figure("speedup_vs_builtin_float", ">", 3.0), Figure("int8_max_abs_diff", "<=", 0.05)),
    cause="On a phone-class CPU the kernels decide the latency. LiteRT applies the XNNPACK "
          "delegate by default for float (and int8) models; an interpreter built with the builtin "
          "kernels only (BUILTIN_WITHOUT_DEFAULT_DELEGATES, often copied from a debugging or "
          "reproducibility snippet, or an old runtime) runs the same convolutions several times "
          "slower. A float model also moves four times the bytes of an int8 one. Threads help "
          "little on a device with one free core.",
    fix="Keep XNNPACK (the default resolver) and quantise the model to full integer with a "
        "representative dataset; measure on the target profile. Every latency (builtin vs XNNPACK, "
        "float/dynamic/int8, 1 vs 2 threads) is recorded; the checks are ratios against the "
        "builtin float configuration measured in the same run, and the int8 outputs are compared "
        "with the float model's.",
    references=("https://ai.google.dev/edge/litert/performance/best_practices",
                "https://ai.google.dev/edge/litert/performance/delegates",
                "https://blog.tensorflow.org/2020/07/accelerating-tensorflow-lite-xnnpack-integration.html"),
)
