"""One LiteRT interpreter shared by several app threads, versus one interpreter per thread.

``Interpreter`` is not thread-safe: ``set_tensor``/``invoke``/``get_tensor`` of one request can
interleave with another thread's.  The Python wrapper notices part of this (its guard against
live references to internal buffers trips when another thread is inside a call) and raises; the
rest shows as answers that belong to another request.  Both are counted here.  The
``num_threads`` option is something else: the threads *one* invoke uses inside its kernels; its
effect on latency is measured alongside, not asserted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Raises, Run, Scenario, succeeds
from harness.targets.litert.convert import convert_to_tflite
from harness.targets.litert.kit import PROFILES

if TYPE_CHECKING:
    from harness.targets.litert.target import LitertTarget

SPEC = ModelSpec("cnn", "keras3")
APP_THREADS = 4
ROUNDS = 10


def _classify(interp: Any, x: Any) -> Any:
    detail = interp.get_input_details()[0]
    interp.set_tensor(detail["index"], x[None])
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])[0]


def new_interpreter(model_path: str) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=model_path)
    interp.allocate_tensors()
    return interp


def serve_requests(interpreter_for_thread: Callable[[], Any], xs: Any, expected: Any) -> dict[str, Any]:
    """In the LiteRT worker: APP_THREADS threads answer requests for ``xs``, ROUNDS times each,
    each thread with the interpreter ``interpreter_for_thread()`` gives it.  Returns counts and
    the first runtime error's text."""
    import threading

    errors: list[BaseException] = []
    counts = {"answers": 0, "wrong": 0}
    lock = threading.Lock()

    def client(k: int) -> None:
        interp = interpreter_for_thread()
        for _ in range(ROUNDS):
            for j in range(k, len(xs), APP_THREADS):
                try:
                    out = _classify(interp, xs[j])
                except (RuntimeError, ValueError) as exc:
                    with lock:
                        errors.append(exc)
                    continue
                with lock:
                    counts["answers"] += 1
                    counts["wrong"] += int(max_abs_diff(out, expected[j]) > 1e-4)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(APP_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result: dict[str, Any] = {**counts, "errors": len(errors), "requests": ROUNDS * len(xs)}
    if errors:
        result["first_error"] = str(errors[0])
    return result


def serve_with_one_shared_interpreter(model_path: str, xs: Any, expected: Any) -> dict[str, Any]:
    """In the LiteRT worker: the app builds one interpreter and every thread uses it."""
    shared = new_interpreter(model_path)
    return serve_requests(lambda: shared, xs, expected)


def serve_with_an_interpreter_per_thread(model_path: str, xs: Any, expected: Any) -> dict[str, Any]:
    """In the LiteRT worker: each thread builds and owns its interpreter."""
    return serve_requests(lambda: new_interpreter(model_path), xs, expected)


def _inputs(run: Run[LitertTarget]) -> tuple[Any, Any, Any]:
    import numpy as np

    trained = trained_model(run.cache, SPEC)
    x, expected = trained.probe()
    tflite = convert_to_tflite(run.cache, saved_model(run.cache, SPEC))
    reference = np.stack([run.target.predict(tflite, [x[i: i + 1]], profile=PROFILES["host"])[0][0]
                          for i in range(len(x))])
    run.note("reference_vs_keras_max_abs_diff", max_abs_diff(reference, expected))
    return tflite, x, reference


def faulty(run: Run[LitertTarget]) -> dict[str, float]:
    tflite, x, reference = _inputs(run)
    totals = {"answers": 0, "wrong": 0, "errors": 0, "requests": 0}
    for attempt in range(5):  # a race: repeat until it shows (it nearly always does at once)
        result = run.target.call(serve_with_one_shared_interpreter, str(tflite), x, reference)
        for key in totals:
            totals[key] += result[key]
        if result.get("first_error"):
            run.observe(result["first_error"])
        if totals["errors"] or totals["wrong"]:
            break
    run.note("attempts", attempt + 1)
    for key, value in totals.items():
        run.figure(key, value)  # kept in the evidence even when the runtime's error is raised below
    run.target.call(raise_shared_error, str(tflite), x)  # raises the runtime's own exception
    return {k: float(v) for k, v in totals.items()}


def raise_shared_error(model_path: str, xs: Any) -> None:
    """In the LiteRT worker: keep using one interpreter from several threads until LiteRT objects,
    then raise its exception in the calling thread (so the harness sees the runtime's own error)."""
    import threading

    interp = new_interpreter(model_path)
    seen: list[BaseException] = []
    stop = threading.Event()

    def client(k: int) -> None:
        for _ in range(200):
            if stop.is_set():
                return
            for j in range(k, len(xs), APP_THREADS):
                try:
                    _classify(interp, xs[j])
                except RuntimeError as exc:
                    seen.append(exc)
                    stop.set()
                    return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(APP_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if seen:
        raise seen[0]


def fixed(run: Run[LitertTarget]) -> dict[str, float]:
    tflite, x, reference = _inputs(run)
    result = run.target.call(serve_with_an_interpreter_per_thread, str(tflite), x, reference)
    batch = x[:1]
    one = run.target.time_invoke(tflite, [batch], profile=PROFILES["low-end"], runs=30)
    two = run.target.time_invoke(tflite, [batch], profile=PROFILES["host"], runs=30)
    run.note("invoke_median_ms", {"num_threads=1": one["median_ms"], "num_threads=2": two["median_ms"]})
    return {"answers": float(result["answers"]), "requests": float(result["requests"]),
            "wrong": float(result["wrong"]), "errors": float(result["errors"])}


SCENARIO = Scenario(
    title="One interpreter shared across app threads",
    targets=("litert",),
    figures={"answers": "events", "errors": "events", "requests": "events", "wrong": "events"},
    faulty=faulty,
    fixed=fixed,
    symptom=Raises(r"There is at least 1 reference to internal data\s+in the interpreter in the form "
                   r"of a numpy array or slice", runtime="litert"),
    remedy=succeeds(Figure("errors", "<=", 0), Figure("wrong", "<=", 0), Figure("answers", ">=", 160)),
    cause="A TF Lite interpreter holds one set of input and output buffers and is not thread-safe. "
          "When several threads (UI, camera callback, background worker) share it, one thread's "
          "set_tensor/invoke/get_tensor interleaves with another's: LiteRT's Python wrapper trips "
          "its guard ('There is at least 1 reference to internal data in the interpreter ...') "
          "when another thread is inside a call, and requests that slip through can get an answer "
          "computed for someone else's input. `num_threads` does not help: it sets the threads "
          "one invoke uses inside its kernels.",
    fix="Give each thread its own interpreter (or serialise every set/invoke/get sequence with a "
        "lock, or funnel requests to one inference thread). Here four threads with one "
        "interpreter each answer every request correctly. Choose `num_threads` by measuring: on "
        "a tiny model, more kernel threads rarely pay.",
    references=("https://github.com/tensorflow/tensorflow/issues/26365",
                "https://github.com/tensorflow/tensorflow/issues/54282",
                "https://github.com/tensorflow/tensorflow/issues/49266"),
)
