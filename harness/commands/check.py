"""``pitfalls check MODEL``: pre-flight of a user's model on every target (:mod:`harness.check`)."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TextIO

from harness.commands.common import report_dir_of, split_list
from harness.registry import KNOWN_TARGETS

NAME = "check"
HELP = ("pre-flight of your own model on every target: findings, parity, "
        "the layer where outputs diverge; exit 1 when a target has a blocker")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help="a .keras file, an .h5 file or a SavedModel directory")
    p.add_argument("--targets", metavar="LIST", help="comma-separated targets (default: all: "
                   + ",".join(KNOWN_TARGETS) + ")")
    p.add_argument("--inputs", metavar="FILE.npz", help="sample inputs keyed by input name "
                   "(default: synthesised from the signature; see docs/check-schema.md)")
    p.add_argument("--probes", metavar="LIST", help="synthetic probes fed besides the sample inputs: wide, edge "
                   "(default: both; 'none' for the sample only); see docs/check-schema.md")
    p.add_argument("--calibration", metavar="FILE.npz", help="a calibration set keyed by input name (as --inputs): "
                   "fed to every path as a probe of its own and used as LiteRT int8's representative set")
    p.add_argument("--profile", metavar="LIST", help="LiteRT device profiles (default host,low-end,arm64; "
                   "arm64 is parity only, under qemu, and is left out where it cannot run)")
    p.add_argument("--remedies", choices=("auto", "none"), default="auto",
                   help="auto (default): after each target's findings, try the remedies that apply on the model "
                        "and show the runtime's verdict next to each finding; none: find only (faster)")
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import MODULE first (it registers the model's custom layers); repeatable. "
                        "MODULE is trusted code: it runs, and the model's config may name it")
    p.add_argument("--trust-model", action="store_true",
                   help="let the model run the code it carries (Lambda layers, Python/file-system/network ops); "
                        "by default such a model is refused or not run (see docs/security.md)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema pitfalls-check/1)")
    p.add_argument("--report-dir", metavar="DIR", help="write check.json and check.html there")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def run(args: argparse.Namespace) -> int:
    from harness.check import check
    from harness.check.render import summary, write_report_dir
    from harness.check.run import DEFAULT_PROFILES

    report_dir = report_dir_of(args.report_dir)
    with runtime_log_kept() as (terminal, log):
        report = check(args.model, targets=split_list(args.targets) or None, inputs=args.inputs,
                       profiles=split_list(args.profile) or DEFAULT_PROFILES, imports=tuple(args.imports or ()),
                       trust=args.trust_model, probes=_probes(args.probes), calibration=args.calibration,
                       remedies=args.remedies,
                       progress=None if args.quiet else (lambda m: print(f"check: {m}", file=terminal, flush=True)))
    report.runtime_log = log.text()
    if report_dir is not None:
        for path in write_report_dir(report, report_dir):
            print(f"check: wrote {path}", file=sys.stderr)
    print(json.dumps(report.to_json(), indent=1, default=str) if args.json else summary(report))
    return report.exit_code()


def _probes(value: str | None) -> list[str] | None:
    """``--probes``: None (all) when not given, [] for ``none``."""
    if value is None:
        return None
    names = split_list(value) or []
    return [] if names == ["none"] else names


#: the runtime log kept in the report: its last characters (TensorFlow can print a lot)
RUNTIME_LOG_CHARS = 100_000


class RuntimeLog:
    """What was written to file descriptor 2 while the check ran (read once it is over)."""

    def __init__(self) -> None:
        self.file: IO[bytes] | None = None

    def text(self) -> str:
        if self.file is None:
            return ""
        self.file.seek(0)
        data = self.file.read().decode("utf-8", errors="replace")
        self.file.close()
        self.file = None
        return data[-RUNTIME_LOG_CHARS:]


@contextmanager
def runtime_log_kept() -> Iterator[tuple[TextIO, RuntimeLog]]:
    """Send file descriptor 2 to a temporary file while the check runs, so that what TensorFlow,
    XLA, the converters and the workers print (``cuInit``, "computation placer already registered",
    progress bars) goes to the report's ``runtime_log``, not the terminal; yields the terminal's
    stream for pitfalls' own progress lines.  Where stderr is not file descriptor 2 (a test's
    captured stream) nothing is redirected and the log stays empty."""
    log = RuntimeLog()
    try:
        same = sys.stderr.fileno() == 2
    except (AttributeError, ValueError, io.UnsupportedOperation):
        same = False
    if not same:
        yield sys.stderr, log
        return
    sys.stderr.flush()
    saved = os.dup(2)
    kept = tempfile.TemporaryFile()
    log.file = kept
    os.dup2(kept.fileno(), 2)
    terminal = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield terminal, log
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        terminal.close()
