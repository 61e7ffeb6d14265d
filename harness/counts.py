"""Counts of the costly things a run does: browser launches, servers started, models loaded,
artifacts built or found in the cache, reference computations.

Code that does such a thing calls :func:`count` with what it did; whoever wants the tally of a
stretch of work opens :func:`counting` around it and reads the :class:`collections.Counter` it
yields.  Tallies nest (the whole check and each of its targets) and follow the work into the
threads it is handed to when the thread runs in a copy of the caller's context
(``contextvars.copy_context().run``).  Seconds are never counted here: the counts are what a test
can assert on a busy machine ("one browser launch per check"), the seconds only what a person reads.
"""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

_OPEN: contextvars.ContextVar[tuple[Counter[str], ...]] = contextvars.ContextVar("pitfalls_counts", default=())
_LOCK = threading.Lock()  # one tally may be counted into from several threads
_PURPOSE: contextvars.ContextVar[str] = contextvars.ContextVar("pitfalls_count_purpose", default="")


def count(what: str, n: int = 1) -> None:
    """Add ``n`` to ``what`` in every tally open in this context (nothing when none is)."""
    tallies = _OPEN.get()
    if not tallies:
        return
    purpose = _PURPOSE.get()
    what = f"{purpose}: {what}" if purpose else what
    with _LOCK:
        for tally in tallies:
            tally[what] += n


@contextmanager
def counting() -> Iterator[Counter[str]]:
    """A fresh tally of what :func:`count` is told inside the block (and in the tallies around it)."""
    tally: Counter[str] = Counter()
    token = _OPEN.set((*_OPEN.get(), tally))
    try:
        yield tally
    finally:
        _OPEN.reset(token)


@contextmanager
def on_behalf_of(purpose: str) -> Iterator[None]:
    """Inside the block, what is counted is counted as ``"<purpose>: <what>"``: the extra work of a
    step (layers run alone, remedies tried) apart from the path's own ("model loads" stays the
    loads of the paths checked)."""
    token = _PURPOSE.set(purpose)
    try:
        yield
    finally:
        _PURPOSE.reset(token)


def as_dict(tally: Counter[str]) -> dict[str, int]:
    """The tally as a plain mapping in name order (for JSON)."""
    with _LOCK:
        return {name: tally[name] for name in sorted(tally)}
