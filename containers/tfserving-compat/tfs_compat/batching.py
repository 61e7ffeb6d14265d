"""Server-side batching, after TF Serving's ``BatchingSession`` over a shared batch scheduler.

Requests that feed and fetch the same tensors are queued together; a batch is closed when it is
full (``max_batch_size`` rows) or when its oldest task has waited ``batch_timeout_micros``.
``num_batch_threads`` threads run closed batches: the feeds are concatenated on dimension 0, the
Session runs once, and each output is split back by the tasks' row counts.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Callable, Optional

import numpy as np

from .config import BatchingOptions
from .status import Code, ServingError, invalid_argument
from .texts import T

SessionRun = Callable[[dict[str, np.ndarray], list[str], int], list[np.ndarray]]
Signature = tuple[tuple[str, ...], tuple[str, ...]]


@dataclasses.dataclass
class _Task:
    feeds: dict[str, np.ndarray]
    size: int
    timeout_ms: int
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: Optional[list[np.ndarray]] = None
    error: Optional[ServingError] = None


@dataclasses.dataclass
class _Batch:
    signature: Signature
    tasks: list[_Task] = dataclasses.field(default_factory=list)
    size: int = 0
    opened: float = dataclasses.field(default_factory=time.monotonic)


@dataclasses.dataclass
class BatchStats:
    batches: int = 0
    tasks: int = 0
    largest: int = 0


class BatchScheduler:
    """One queue per (feed names, fetch names); closed batches run on a small thread pool."""

    def __init__(self, run: SessionRun, options: BatchingOptions) -> None:
        self._run = run
        self.options = options
        self._lock = threading.Condition()
        self._open: dict[Signature, _Batch] = {}
        self._closed: collections.deque[_Batch] = collections.deque()
        self._stopped = False
        self.stats = BatchStats()
        self._threads = [threading.Thread(target=self._work, name=f"{options.thread_pool_name}_{i}",
                                          daemon=True)
                         for i in range(max(options.num_batch_threads, 1))]
        for thread in self._threads:
            thread.start()

    def run(self, feeds: dict[str, np.ndarray], fetches: list[str], timeout_ms: int) -> list[np.ndarray]:
        size = _task_size(feeds)
        if size > self.options.max_batch_size:
            raise invalid_argument(T("Task size <size> is larger than maximum input batch size <limit>",
                                     size=size, limit=self.options.max_batch_size))
        task = _Task(feeds=feeds, size=size, timeout_ms=timeout_ms)
        self._enqueue((tuple(sorted(feeds)), tuple(fetches)), task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs

    def _enqueue(self, signature: Signature, task: _Task) -> None:
        with self._lock:
            batch = self._open.get(signature)
            # ValidateBatchTaskQueueCapacity counts the queue's batches not yet taken by a thread,
            # the open one included.  TF's queue always ends in an open batch (maybe empty, maybe
            # full: a full batch stays open until a thread schedules it); here a full batch is
            # closed at once, so when there is no open batch the last waiting one plays its part.
            waiting = [closed for closed in self._closed if closed.signature == signature]
            back_size = batch.size if batch is not None else (waiting[-1].size if waiting else 0)
            if back_size + task.size > self.options.max_batch_size:
                enqueued = len(waiting) + (1 if batch is not None or not waiting else 0)
                if enqueued >= self.options.max_enqueued_batches:
                    raise ServingError(Code.UNAVAILABLE, T(
                        "The batch scheduling queue to which this task was submitted is full; currently "
                        "<enqueued> batches enqueued and max_enqueued_batches is <max_enqueued>",
                        enqueued=enqueued, max_enqueued=self.options.max_enqueued_batches))
                if batch is not None:
                    self._closed.append(self._open.pop(signature))
                batch = None
            if batch is None:
                batch = self._open[signature] = _Batch(signature=signature)
            batch.tasks.append(task)
            batch.size += task.size
            if batch.size >= self.options.max_batch_size:
                self._closed.append(self._open.pop(signature))
            self._lock.notify_all()

    def _next_batch(self) -> Optional[_Batch]:
        timeout = self.options.batch_timeout_micros / 1e6
        with self._lock:
            while not self._stopped:
                if self._closed:
                    return self._closed.popleft()
                now = time.monotonic()
                due = [s for s, b in self._open.items() if now - b.opened >= timeout]
                if due:
                    return self._open.pop(due[0])
                waits = [b.opened + timeout - now for b in self._open.values()]
                self._lock.wait(timeout=min(waits) if waits else 0.5)
            return None

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._process(batch)

    def _process(self, batch: _Batch) -> None:
        with self._lock:
            self.stats.batches += 1
            self.stats.tasks += len(batch.tasks)
            self.stats.largest = max(self.stats.largest, batch.size)
        try:
            outputs = self._run_batch(batch)
        except ServingError as error:
            for task in batch.tasks:
                task.error = error
                task.done.set()
            return
        for task, task_outputs in zip(batch.tasks, outputs):
            task.outputs = task_outputs
            task.done.set()

    def _run_batch(self, batch: _Batch) -> list[list[np.ndarray]]:
        feed_names, fetch_names = batch.signature
        merged: dict[str, np.ndarray] = {}
        for name in feed_names:
            parts = [task.feeds[name] for task in batch.tasks]
            if any(p.shape[1:] != parts[0].shape[1:] for p in parts):
                raise ServingError(Code.FAILED_PRECONDITION, T(
                    "Tensors with name '<name>' from different tasks have different shapes and padding is "
                    "turned off. Set pad_variable_length_inputs to true, or ensure that all tensors with "
                    "the same name have equal dimensions starting with the first dim.", name=name))
            merged[name] = np.concatenate(parts, axis=0)
        timeout_ms = max(task.timeout_ms for task in batch.tasks)
        combined = self._run(merged, list(fetch_names), timeout_ms)
        for tensor in combined:
            if tensor.ndim == 0:
                raise ServingError(Code.FAILED_PRECONDITION, T("Batched output tensor has 0 dimensions"))
            if tensor.shape[0] != batch.size:
                raise ServingError(Code.FAILED_PRECONDITION, T(
                    "Batched output tensor's 0th dimension does not equal the sum of the 0th dimension "
                    "sizes of the input tensors"))
        offsets = np.cumsum([0] + [task.size for task in batch.tasks])
        return [[tensor[offsets[i]:offsets[i + 1]] for tensor in combined] for i in range(len(batch.tasks))]

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            pending = list(self._closed) + list(self._open.values())
            self._closed.clear()
            self._open.clear()
            self._lock.notify_all()
        for batch in pending:  # finish what was queued rather than failing it
            self._process(batch)


def validate_batching_options(options: BatchingOptions) -> None:
    """``WrapSessionForBatching`` (servables/tensorflow/bundle_factory_util.cc), run while a model
    version loads: the last allowed batch size must be the maximum batch size."""
    if options.allowed_batch_sizes and options.allowed_batch_sizes[-1] != options.max_batch_size:
        raise invalid_argument(T(
            "Last entry in allowed_batch_sizes must match max_batch_size; last entry was <last>; "
            "expected <max_batch_size>", last=options.allowed_batch_sizes[-1],
            max_batch_size=options.max_batch_size))


def _task_size(feeds: dict[str, np.ndarray]) -> int:
    """``ComputeTensorBatchSize`` (batching_util.h)."""
    if not feeds:
        raise invalid_argument(T("Batching Run() must have at least one input tensor"))
    if any(array.ndim == 0 for array in feeds.values()):
        raise invalid_argument(T("Batching Run() input tensors must have at least one dimension"))
    sizes = {array.shape[0] for array in feeds.values()}
    if len(sizes) != 1:
        raise invalid_argument(T("Batching Run() input tensors must have equal 0th-dimension size"))
    return int(sizes.pop())
