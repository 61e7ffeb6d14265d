"""Updating a served model while requests keep flowing: a new version directory vs files replaced in place."""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.compare import max_abs_diff
from harness.models import ModelSpec, saved_model, trained_model
from harness.scenario import Figure, Run, Scenario, succeeds
from harness.targets.tfserving.kit import GrpcReply, grpc_predict, model_base_path, signature_defs

if TYPE_CHECKING:
    from harness.targets.tfserving.target import TfservingTarget

OLD, NEW = ModelSpec("dense", "keras3", seed=0), ModelSpec("dense", "keras3", seed=1)
POLL = "--file_system_poll_wait_seconds=1"


@dataclass
class Traffic:
    """Predict requests sent in a steady stream on one gRPC channel, each answer classified."""

    call: Callable[[], GrpcReply]
    is_old_answer: Callable[[dict[str, Any]], bool]
    answers: list[tuple[float, int, bool]] = field(default_factory=list)  # (time, version, old answer?)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                reply = self.call()
            except Exception as exc:  # noqa: BLE001 - every failed request is counted
                self.failures.append(str(exc))
                continue
            self.answers.append((time.monotonic(), reply.version, self.is_old_answer(reply.outputs)))
            self.stop.wait(0.01)  # about 100 requests a second: steady traffic, a bounded load


def _start(run: "Run[TfservingTarget]") -> tuple[Path, Traffic, threading.Thread]:
    import grpc

    base = model_base_path(run.workdir, {1: saved_model(run.cache, OLD)})
    server = run.enter(run.target.serve(model_dir=base, args=[POLL]))
    run.note("implementation", server.implementation)
    (name,) = signature_defs(server)["serving_default"]["inputs"]
    x, old_expected = trained_model(run.cache, OLD).probe()
    channel = run.enter(grpc.insecure_channel(server.grpc_target))
    traffic = Traffic(
        call=lambda: grpc_predict(server, {name: x}, channel=channel),
        is_old_answer=lambda out: max_abs_diff(next(iter(out.values())), old_expected) <= 1e-5)
    traffic.call()  # the first call imports TensorFlow's protos: do it before the clock matters
    worker = threading.Thread(target=traffic.run, name="traffic", daemon=True)
    worker.start()

    def stop_traffic() -> None:
        traffic.stop.set()
        worker.join(timeout=30)

    run.callback(stop_traffic)
    time.sleep(1.0)  # traffic on version 1 before the update
    return base, traffic, worker


def _finish(run: "Run[TfservingTarget]", traffic: Traffic, worker: threading.Thread, updated_at: float) -> dict[str, float]:
    traffic.stop.set()
    worker.join(timeout=30)
    after = [a for a in traffic.answers if a[0] > updated_at]
    for text in traffic.failures[:3]:
        run.observe(text)
    run.note("versions_seen", sorted({a[1] for a in traffic.answers}))
    return {"requests": len(traffic.answers) + len(traffic.failures), "failed_requests": len(traffic.failures),
            "answers_after_update": len(after),
            "new_model_answers_after_update": sum(1 for a in after if not a[2] and a[1] == 2),
            "old_model_answers_after_update": sum(1 for a in after if a[2])}


def _wait_for(traffic: Traffic, predicate: Callable[[tuple[float, int, bool]], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not any(predicate(a) for a in traffic.answers[-20:]):
        time.sleep(0.2)


def faulty(run: "Run[TfservingTarget]") -> dict[str, float]:
    base, traffic, worker = _start(run)
    # The new model's files are copied over version 1 in place: the version number does not change.
    shutil.copytree(saved_model(run.cache, NEW), base / "1", dirs_exist_ok=True)
    updated_at = time.monotonic()
    time.sleep(5.0)  # five file-system polls
    return _finish(run, traffic, worker, updated_at)


def fixed(run: "Run[TfservingTarget]") -> dict[str, float]:
    base, traffic, worker = _start(run)
    # The new model goes into a new numbered directory, made complete first and renamed into place
    # (a rename is atomic: the server never sees a half-copied version).
    staging = base / ".incoming-2"
    shutil.copytree(saved_model(run.cache, NEW), staging)
    staging.rename(base / "2")
    updated_at = time.monotonic()
    started = time.monotonic()
    _wait_for(traffic, lambda a: a[1] == 2, 60.0)
    run.figure("switch_seconds", time.monotonic() - started)
    time.sleep(1.0)  # traffic on version 2 after the switch
    return _finish(run, traffic, worker, updated_at)


SCENARIO = Scenario(
    title="Model update: files replaced inside version 1 are never picked up; version 2 switches live",
    targets=("tfserving",),
    figures={"answers_after_update": "events", "failed_requests": "events",
             "new_model_answers_after_update": "events", "old_model_answers_after_update": "events",
             "requests": "events", "switch_seconds": "seconds"},
    faulty=faulty,
    fixed=fixed,
    symptom=succeeds(Figure("new_model_answers_after_update", "<=", 0), Figure("old_model_answers_after_update", ">=", 5)),
    remedy=succeeds(Figure("failed_requests", "<=", 0), Figure("new_model_answers_after_update", ">=", 5)),
    cause="TF Serving identifies a servable by model name and version number, and polls the base path "
          "for version directories only. Overwriting the files inside an existing version directory "
          "changes nothing the server looks at: version 1 stays loaded from memory and keeps answering "
          "with the old weights (stale predictions), with no error anywhere. (A half-copied new version "
          "directory is the opposite trap: the server may try to load it before the copy finishes.)",
    fix="Publish each model as a new, higher version directory next to the old one, copied completely "
        "elsewhere on the same file system and renamed into place. With the default latest-version "
        "policy the server loads version 2, switches new requests to it once it is AVAILABLE and only "
        "then unloads version 1, so requests keep succeeding throughout (gRPC answers carry the "
        "version that served them). Roll back by removing version 2 or with a version policy/label.",
    references=("https://www.tensorflow.org/tfx/serving/serving_config#serving_a_specific_version_of_a_model",
                "https://github.com/tensorflow/serving/blob/master/tensorflow_serving/sources/storage_path/file_system_storage_path_source.proto",
                "https://github.com/kubeflow/kubeflow/issues/3031"),
)
