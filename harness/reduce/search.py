"""The search for the smallest window of layers that still shows a finding: delta debugging over
contiguous windows of the layer order, as Polygraphy's ``debug reduce`` bisects ONNX nodes.

Bisect the end (the shortest prefix that shows it), then the start (the latest start that still
shows it with that end), then shrink one layer at a time from either end while the finding stays
(the bisection assumes that a window holding the culprit shows it; the linear pass catches where
that does not hold).  ``shows`` is asked at most once per window.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.reduce.slicing import Window


def smallest_window(count: int, shows: Callable[[Window], bool]) -> Window:
    """The smallest window of ``count`` layers that ``shows`` the finding; the caller has seen it on
    the whole model (``Window(0, count)``)."""
    seen: dict[Window, bool] = {Window(0, count): True}

    def asked(window: Window) -> bool:
        if window not in seen:
            seen[window] = shows(window)
        return seen[window]

    low, high = 1, count  # the shortest prefix: high always shows it
    while low < high:
        middle = (low + high) // 2
        if asked(Window(0, middle)):
            high = middle
        else:
            low = middle + 1
    stop = high
    low, high = 0, stop - 1  # the latest start: low always shows it
    while low < high:
        middle = (low + high + 1) // 2
        if asked(Window(middle, stop)):
            low = middle
        else:
            high = middle - 1
    found = Window(low, stop)
    while len(found) > 1:
        smaller = next((w for w in (Window(found.start + 1, found.stop), Window(found.start, found.stop - 1))
                        if asked(w)), None)
        if smaller is None:
            break
        found = smaller
    return found
