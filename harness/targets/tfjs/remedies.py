"""What ``pitfalls check`` tries on TensorFlow.js for a finding (see :mod:`harness.check.remedies`).

Another backend where one backend fails or diverges (the backends of the check's table that ran
on the same sample give the verdict; the cpu backend is run when none did); the graph model where
the layers model fails; the converter's ``--skip_op_check`` where it refuses ops (whether the
runtime then loads the model is its verdict).  tensorflowjs_converter 4.x has no option that skips
op fusion (its options: ``tensorflowjs_converter --help``), so that remedy is not offered.
"""

from __future__ import annotations

import re

from harness.check.remedies import Remedy, path_of, path_result, trial_path
from harness.check.report import Finding, RemedyTried, TargetReport
from harness.check.steps import Context, first_rows
from harness.targets.base import Target
from harness.targets.tfjs.backends import check_backends

NAME = "tfjs"

#: rows a remedy's browser run predicts (as the check's own backend loads)
ROWS = 2

_ON_BACKEND = re.compile(rf"{NAME}@(\w+)")


def backend_of(finding: Finding) -> str | None:
    """The backend a finding is about (``tfjs@wasm`` in its step or source), or None."""
    found = _ON_BACKEND.search(path_of(finding)) or _ON_BACKEND.search(finding.step)
    return found.group(1) if found else None


def _other_backend(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    failing = backend_of(finding)
    ran = {b.name: path_result(OTHER_BACKEND, report, f"{NAME}@{b.name}", b.tolerance)
           for b in check_backends() if b.name != failing}
    results = {name: r for name, r in ran.items() if r is not None}
    working = [name for name, r in results.items() if r.verdict == "works"]
    if working:
        return RemedyTried(OTHER_BACKEND.name, "works", "; ".join(results[n].evidence for n in working),
                           f"tf.setBackend({working[0]!r}) instead of {failing!r}")
    if results:
        return RemedyTried(OTHER_BACKEND.name, "does not work", "; ".join(r.evidence for r in results.values()),
                           OTHER_BACKEND.change)
    fallback = "cpu" if failing != "cpu" else "wasm"
    return trial_path(OTHER_BACKEND, target, first_rows(ctx, ROWS), f"{NAME}@{fallback}", {},
                      load_options={"backend": fallback})


def _graph_model(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    done = [r for r in (path_result(GRAPH_MODEL, report, f"{NAME}@{b.name}", b.tolerance) for b in check_backends())
            if r is not None]
    working = [r for r in done if r.verdict == "works"]
    if working:
        return working[0]
    return trial_path(GRAPH_MODEL, target, first_rows(ctx, ROWS), f"{NAME} graph@cpu", {"format": "graph"},
                      load_options={"backend": "cpu"})


def _skip_op_check(target: Target, report: TargetReport, finding: Finding, ctx: Context) -> RemedyTried:
    return trial_path(SKIP_OP_CHECK, target, first_rows(ctx, ROWS), f"{NAME} skip_op_check@cpu",
                      {"converter_args": ["--skip_op_check"]}, load_options={"backend": "cpu"})


OTHER_BACKEND = Remedy(
    "another backend", "tf.setBackend(...) with another backend of the table (cpu, wasm, webgl)",
    "the other backends' runs on the same sample (run when none ran)", _other_backend,
    when=lambda f: backend_of(f) is not None and f.step.split(" ")[0] in ("load", "predict", "parity"))
GRAPH_MODEL = Remedy(
    "graph model", "convert the SavedModel to a graph model and load it with tf.loadGraphModel",
    "the graph model's runs on the same sample", _graph_model,
    when=lambda f: f"{NAME} layers" in f.step or path_of(f).startswith(f"{NAME} layers"))
SKIP_OP_CHECK = Remedy(
    "--skip_op_check", "tensorflowjs_converter --skip_op_check (convert although tf.js lists no kernel)",
    "converted and loaded in the browser on the cpu backend", _skip_op_check,
    pattern=r"Unsupported Ops in the model before optimization", step=f"prepare {NAME}")

REMEDIES: tuple[Remedy, ...] = (OTHER_BACKEND, GRAPH_MODEL, SKIP_OP_CHECK)
