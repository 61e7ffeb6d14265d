"""For bench/bench_dist.py only: every item of a heavy target in one xdist group (``--dist loadgroup``).

Loaded with ``-p loadgroup_plugin`` (bench/ on PYTHONPATH); the catalog itself does not use it,
because the measurement says grouping does not help on this machine (docs/cli.md, workers).
"""

from __future__ import annotations

from typing import Any

import pytest

GROUPED = ("tfserving", "tfjs")  # one Docker stream and one Chromium per worker


def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        target = getattr(item, "target_name", None)
        if target in GROUPED:
            item.add_marker(pytest.mark.xdist_group(target))
