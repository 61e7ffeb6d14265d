"""The version matrix (``pitfalls matrix``): the catalog run in several environments ("cells").

* :mod:`harness.matrix.spec` — the matrix file: which cells, which versions each requests;
* :mod:`harness.matrix.env` — a cell's environment: a uv venv (and npm packages) resolved and locked;
* :mod:`harness.matrix.run` — runs the selection in each cell, one results file per cell;
* :mod:`harness.matrix.record` — the matrix run file ``matrix.json`` (schema ``pitfalls-matrix/1``);
* :mod:`harness.matrix.report` — scenario × cell with the changes between neighbouring cells.
"""
