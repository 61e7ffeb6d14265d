"""How the runtime is configured decides which kernels run: reference kernels versus optimised ones.

A custom LiteRT build chooses its kernels at compile time (``tflite_with_xnnpack``, the op
resolver it links, debug versus optimised flags).  Building LiteRT is out of reach here (see
``dl-library-compilation/procedure``), but the prebuilt runtime exposes the same choice at run
time through ``experimental_op_resolver_type``: ``BUILTIN_REF`` (the reference kernels a
minimal or debug configuration ends up with), ``BUILTIN_WITHOUT_DEFAULT_DELEGATES`` (optimised
kernels, XNNPACK off) and ``BUILTIN`` (optimised kernels plus XNNPACK, the default).  The same
model is run under each configuration in one worker, and the latencies are compared there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")
CONFIGURATIONS = ("BUILTIN_REF", "BUILTIN_WITHOUT_DEFAULT_DELEGATES", "BUILTIN")


def time_configurations(model_path: str, x: Any, runs: int = 25) -> dict[str, Any]:
    """In the LiteRT worker: median invoke time (ms) and outputs under each op resolver type."""
    import statistics
    import time

    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    result: dict[str, Any] = {}
    for name in CONFIGURATIONS:
        interp = Interpreter(model_path=model_path, num_threads=1,
                             experimental_op_resolver_type=getattr(OpResolverType, name))
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], list(x.shape))
        interp.allocate_tensors()
        interp.set_tensor(detail["index"], x)
        for _ in range(3):
            interp.invoke()
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            interp.invoke()
            samples.append((time.perf_counter() - started) * 1000)
        result[name] = {"median_ms": statistics.median(samples),
                        "output": interp.get_tensor(interp.get_output_details()[0]["index"])}
    return result


def _measure(run: Run[LitertTarget]) -> tuple[dict[str, Any], Any]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    batch = np.concatenate([x, x])  # 32 images: long enough an invoke to time
    timings = run.target.call(time_configurations, str(tflite), batch)
    run.note("median_ms", {k: v["median_ms"] for k, v in timings.items()})
    return timings, np.concatenate([expected, expected])


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    timings, expected = _measure(run)
    ref, best = timings["BUILTIN_REF"], timings["BUILTIN"]
    return {"slowdown_vs_optimised": ref["median_ms"] / best["median_ms"],
            "max_abs_diff": max_abs_diff(ref["output"], expected)}


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    timings, expected = _measure(run)
    ref, best = timings["BUILTIN_REF"], timings["BUILTIN"]
    return {"latency_ratio_vs_reference": best["median_ms"] / ref["median_ms"],
            "max_abs_diff": max_abs_diff(best["output"], expected)}


SCENARIO = Scenario(
    title="Runtime configured with reference kernels instead of the optimised ones",
    targets=("litert",),
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
