"""How the runtime is configured decides which kernels run: reference kernels versus optimised ones.

A custom LiteRT build chooses its kernels at compile time (``tflite_with_xnnpack``, the op
resolver it links, debug versus optimised flags).  Building LiteRT is out of reach here (see
``dl-library-compilation/procedure``), but the prebuilt runtime exposes the same choice at run
time through ``experimental_op_resolver_type``: ``BUILTIN_REF`` (the reference kernels a
minimal or debug configuration ends up with), ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (optimised
kernels, XNNPACK off) and ``BUILTIN`` (optimised kernels plus XNNPACK, the default).  The same
model is run under each configuration in one worker, and the latencies are compared there:
the reference and the default configuration timed in alternating pairs after a warm-up, as
``benchmark_model`` times a model (see :mod:`harness.timing`), and the verdict on the median of
the paired ratios.  Why the bound holds on a busy machine: the two invokes of a pair run back to
back on one thread, so a burst of other work slows both alike, and the reference kernels do the
same arithmetic without vectorisation, a cost that does not depend on the machine's load.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.timing import PairedRatios, record_ratios

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")
CONFIGURATIONS = ("BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "BUILTIN")
INVOKES_PER_SAMPLE = 10


def time_configurations(model_path: str, x: Any) -> dict[str, Any]:
    """In the LiteRT worker: outputs under each op resolver type, and the reference configuration's
    invoke times over the default one's, timed interleaved (warm-up pairs discarded)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from harness.timing import interleaved

    interpreters = {}
    for name in CONFIGURATIONS:
        interp = Interpreter(model_path=model_path, num_threads=1,
                             experimental_op_resolver_type=getattr(OpResolverType, name))
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(detail["index"], x)
        interp.invoke()
        interpreters[name] = interp
    def invokes(interp: Any) -> Callable[[], None]:
        def sample() -> None:  # one timed sample: a few invokes, long enough for the clock and the scheduler
            for _ in range(INVOKES_PER_SAMPLE):
                interp.invoke()
        return sample

    pairs = interleaved(invokes(interpreters["BUILTIN_REF"]), invokes(interpreters["BUILTIN"]),
                        warmup=3, repeats=15, max_repeats=41)
    return {"ref_over_builtin": pairs,
            "outputs": {name: interp.get_tensor(interp.get_output_details()[0]["index"])
                        for name, interp in interpreters.items()}}


def _measure(run: Run[LitertTarget]) -> tuple[dict[str, Any], Any]:
    """The worker's timings and outputs, and the expected outputs; notes the median invoke times."""
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    batch = np.concatenate([x, x])  # 32 images: long enough an invoke to time
    timings = run.target.call(time_configurations, str(tflite), batch)
    pairs: PairedRatios = timings["ref_over_builtin"]
    run.note("median_ms_per_invoke", {name: statistics.median(seconds) * 1000 / INVOKES_PER_SAMPLE
                                      for name, seconds in (("BUILTIN_REF", pairs.a_seconds),
                                                            ("BUILTIN", pairs.b_seconds))})
    return timings, np.concatenate([expected, expected])


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    timings, expected = _measure(run)
    return {"slowdown_vs_optimised": record_ratios(run, "slowdown_vs_optimised", timings["ref_over_builtin"]),
            "max_abs_diff": max_abs_diff(timings["outputs"]["BUILTIN_REF"], expected)}


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    timings, expected = _measure(run)
    best_over_ref = timings["ref_over_builtin"].inverted()
    return {"latency_ratio_vs_reference": record_ratios(run, "latency_ratio_vs_reference", best_over_ref),
            "max_abs_diff": max_abs_diff(timings["outputs"]["BUILTIN"], expected)}


SCENARIO = Scenario(
    title="Runtime configured with reference kernels instead of the optimised ones",
    targets=("litert",),
    figures={"latency_ratio_vs_reference": "ratio", "max_abs_diff": "parity", "slowdown_vs_optimised": "ratio"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("slowdown_vs_optimised", ">", 2.0), Figure("max_abs_diff", "<=", 1e-4)),
    remedy=succeeds(Figure("latency_ratio_vs_reference", "<", 0.5), Figure("max_abs_diff", "<=", 1e-5)),
    cause="A runtime's build configuration picks its kernels. A configuration that ends up with "
          "the reference kernels (a debug build, a minimal custom build linking "
          "`BuiltinRefOpResolver`, XNNPACK compiled out) computes the same numbers, so nothing "
          "fails, but it runs many times slower on the device. Here the prebuilt runtime's own "
          "switch (`OpResolverType.BUILTIN_REF`) reproduces that configuration and the slowdown is "
          "measured against the default in the same process.",
    fix="Use the optimised configuration: the prebuilt runtime's default (`BUILTIN`, optimised "
        "kernels with the XNNPACK delegate), or, in a custom build, `-c opt` with XNNPACK enabled "
        "and the optimised builtin op resolver. Check the configuration by measuring it against "
        "the reference kernels, and check the outputs still match.",
    references=("https://ai.google.dev/edge/litert/build/cmake",
                "https://github.com/tensorflow/tensorflow/blob/master/tensorflow/lite/delegates/xnnpack/README.md"),
)
