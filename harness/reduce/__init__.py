"""``pitfalls reduce``: the smallest slice of a Keras model's layers that still shows a finding,
written as a standalone reproducer (issue 22 item 3; docs/reduce.md).

:mod:`~harness.reduce.api` is what a target declares (``harness/targets/<name>/reproducer.py``),
:mod:`~harness.reduce.slicing` cuts and rebuilds windows of layers, :mod:`~harness.reduce.search`
finds the smallest window, :mod:`~harness.reduce.oracle` runs the scripts, :mod:`~harness.reduce.run`
orchestrates and writes the directory.  Names no target.
"""
