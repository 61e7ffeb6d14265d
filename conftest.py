"""Load the pitfalls pytest plugin (also registered through the `pytest11` entry point), and keep the
cyclic garbage collector off the objects that outlive a test.

A test process that has imported TensorFlow and Keras holds about half a million objects that live
until it exits (modules, op registries, layers of the session's models).  Python's full collection
walks all of them each time, and measured in this suite's check tests it ran 19 times in two tests,
1.1 to 3.2 s each on a busy machine, finding 7 to 4,859 objects to free: about a tenth of those
tests' time.  After each test the young garbage is collected and whatever survived is frozen
(:func:`gc.freeze`), so later collections walk only what the next test creates.  Every
:data:`FULL_COLLECTION_EVERY` tests everything is thawed and collected once, so a model whose
fixture ended is still freed.
"""

from __future__ import annotations

import gc

pytest_plugins = ["harness.plugin"]

#: tests between two full collections (thaw, collect, freeze again)
FULL_COLLECTION_EVERY = 100

_finished = [0]


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    _finished[0] += 1
    if _finished[0] % FULL_COLLECTION_EVERY == 0:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()
