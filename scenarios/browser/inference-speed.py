"""Timing tf.js inference: the first call (shader compilation, kernel set-up) versus warm calls, per backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.compare import max_abs_diff
from harness.models import ModelSpec, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfjs.convert import convert_layers_model
from harness.targets.tfjs.backends import BACKENDS

if TYPE_CHECKING:
    from harness.targets.tfjs.target import TfjsTarget

SPEC = ModelSpec("cnn", "tf_keras")
WARMUP, RUNS, PER_SAMPLE = 3, 10, 4  # a sample = the mean of >= 4 back-to-back predictions

# Everything is timed inside the page with performance.now(); `await y.data()` waits for the
# result itself (on WebGL, predict() only queues GPU work).
BENCH_JS = """async ({url, x, warmup, runs, per}) => {
  const m = await tf.loadLayersModel(url);
  const input = tf.tensor(x);
  const once = async () => { const t0 = performance.now(); const y = m.predict(input);
                             const out = await y.data(); const ms = performance.now() - t0; y.dispose(); return [ms, out]; };
  const [first] = await once();
  const warm = [];
  for (let i = 0; i < warmup; i++) warm.push((await once())[0]);
  // at least `per` predictions and about 8 ms per sample, so timer resolution and hiccups average out
  if (warm.length) per = Math.min(200, Math.max(per, Math.ceil(8 / Math.max(0.05, Math.min(...warm)))));
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    for (let k = 0; k < per; k++) { const y = m.predict(input); await y.data(); y.dispose(); }
    times.push((performance.now() - t0) / per);
  }
  const y = m.predict(input);
  return {backend: tf.getBackend(), first, times, per, out: await y.array()};
}"""


def _bench(run: Run[TfjsTarget], backend: str, warmup: int, runs: int) -> dict[str, Any]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    with run.target.page({"/model/": convert_layers_model(run.cache, trained)}, backend=backend,
                         observe=run.observe) as page:
        result = page.evaluate(BENCH_JS, {"url": "/model/model.json", "x": x.tolist(), "warmup": warmup, "runs": runs,
                                                  "per": PER_SAMPLE})
    result["max_abs_diff"] = max_abs_diff(result.pop("out"), expected)
    result["median"] = float(np.median(result["times"])) if result["times"] else float("nan")
    run.note(f"{backend}", {"backend_in_use": result["backend"], "first_ms": round(result["first"], 2),
                            "times_ms": [round(t, 2) for t in result["times"]], "predictions_per_sample": result["per"],
                            "max_abs_diff": result["max_abs_diff"]})
    return result


def faulty(run: Run[TfjsTarget]) -> dict[str, float]:
    # The benchmark a hurried developer writes: one predict per backend, no warm-up.
    figures: dict[str, float] = {}
    for backend in BACKENDS:
        # On webgl the same page goes on to warm calls: what a prediction really costs once running.
        result = _bench(run, backend, warmup=WARMUP if backend == "webgl" else 0,
                        runs=RUNS if backend == "webgl" else 0)
        figures[f"{backend}_reported_ms"] = result["first"]
        if backend == "webgl":
            figures["webgl_warm_median_ms"] = result["median"]
    figures["webgl_first_over_warm"] = figures["webgl_reported_ms"] / figures["webgl_warm_median_ms"]
    return figures


def fixed(run: Run[TfjsTarget]) -> dict[str, float]:
    figures: dict[str, float] = {"backends_as_requested": 0.0, "max_abs_diff": 0.0}
    for backend in BACKENDS:
        result = _bench(run, backend, warmup=WARMUP, runs=RUNS)
        times = result["times"]
        half_a, half_b = sorted(times[0::2]), sorted(times[1::2])
        a, b = half_a[len(half_a) // 2], half_b[len(half_b) // 2]
        figures[f"{backend}_first_ms"] = result["first"]
        figures[f"{backend}_median_ms"] = result["median"]
        figures[f"{backend}_p90_ms"] = sorted(times)[int(0.9 * (len(times) - 1))]
        # the first measured sample after warm-up, and two interleaved halves of the samples
        figures[f"{backend}_first_sample_over_median"] = times[0] / result["median"]
        figures[f"{backend}_first_over_median"] = result["first"] / result["median"]  # what warm-up keeps out
        figures[f"{backend}_halves_ratio"] = max(a, b) / min(a, b)
        figures["backends_as_requested"] += float(result["backend"] == backend)
        figures["max_abs_diff"] = max(figures["max_abs_diff"], result["max_abs_diff"])
    figures["webgl_vs_cpu"] = figures["webgl_median_ms"] / figures["cpu_median_ms"]
    figures["wasm_vs_cpu"] = figures["wasm_median_ms"] / figures["cpu_median_ms"]
    return figures


SCENARIO = Scenario(
    title="Inference speed measured on the first call instead of warm calls",
    targets=("tfjs",),
    figures={"*_first_sample_over_median": "evidence", "*_ms": "latency_ms", "*_over_*": "ratio", "*_halves_ratio": "ratio", "*_vs_cpu": "ratio",
             "max_abs_diff": "parity", "backends_as_requested": "exact"},
    faulty=faulty,
    fixed=fixed,
    symptom=Figure("webgl_first_over_warm", ">=", 3.0),
    # WebGL carries the one-time cost (shader compilation): the warm-up must take it out of the
    # reported latency (the median of the samples) and the measured runs must agree with each other
    # (the medians of the odd and the even samples, interleaved halves, within 3x). The first sample
    # after warm-up over the median is recorded as evidence, not bounded: one sample is no
    # statistic, and beside two busy processes it measured 5.75 (2.7 on CPU, 2.4 on WASM) while the
    # halves agreed within 1.19x and the first call was 64x the median. CPU and WASM figures are evidence only: on a
    # shared 2-core machine their millisecond timings are too noisy to bound.
    # Why the bounds hold under load: the first call's excess is compiling a shader program per op,
    # work measured at 137x and 306x (beside two busy processes) a warm prediction against the
    # symptom's 3x, and a busy machine slows the first call and the warm ones alike; the halves are
    # medians of samples taken alternately, so a burst of other work falls into both.
    remedy=succeeds(Figure("backends_as_requested", ">=", len(BACKENDS)), Figure("max_abs_diff", "<=", 1e-3),
                    Figure("webgl_first_over_median", ">=", 3.0), Figure("webgl_halves_ratio", "<=", 3.0)),
    cause="The first predict() on a backend does one-time work: WebGL compiles a shader program "
          "for every op and uploads the weights to textures; WASM and CPU allocate and set up "
          "kernels. Timing that call (or a loop without warm-up) reports a latency several times "
          "higher than the steady state, and comparing backends on it ranks them by set-up cost. "
          "Timing predict() without awaiting the data measures only the queueing on WebGL.",
    fix="Warm the model up with a few predictions on a dummy input of the real input shape "
        "(WebGL compiles shaders per shape) after loading, then time many "
        "runs with performance.now() around `await y.data()` and report the median (and a high "
        "percentile); check `tf.getBackend()` to know which backend actually ran, and compare "
        "backends this way (`tf.setBackend('wasm')` needs the .wasm files served, see "
        "`setWasmPaths`).",
    references=("https://www.tensorflow.org/js/guide/platform_environment",
                "https://js.tensorflow.org/api/latest/#profile",
                "https://github.com/tensorflow/tfjs/tree/master/tfjs-backend-wasm#benchmarks"),
)
