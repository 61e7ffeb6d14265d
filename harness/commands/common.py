"""What several commands share: argument types, the scenario selection and warnings about the catalog."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from harness.errors import UsageError
from harness.registry import Catalog, normalise_selection


def warn_problems(catalog: Catalog) -> None:
    for problem in catalog.problems:
        print(f"pitfalls: warning: skipped a scenario file that cannot be loaded: {problem}", file=sys.stderr)


def report_dir_of(value: str | None) -> Path | None:
    """``--report-dir``: None when not given, else the directory (made later); a file there is refused."""
    if value is None:
        return None
    report_dir = Path(value)
    if report_dir.exists() and not report_dir.is_dir():
        raise UsageError(f"--report-dir {report_dir} is a file; give a directory")
    return report_dir


def default_results(args: argparse.Namespace) -> Path:
    """The results file when none is given: :mod:`harness.cli` puts it in ``args.default_results``."""
    return Path(args.default_results)


def select_files(catalog: Catalog, selections: Sequence[str], targets: Sequence[str]) -> list[Path]:
    """The scenario files a selection names (platform, taxonomy prefix or scenario id)."""
    from harness.taxonomy import challenge_ids

    chosen: dict[str, Path] = {}
    for raw in selections or [""]:
        sel = normalise_selection(raw)
        hits = {sid: p for sid, p in catalog.files.items() if not sel or sid == sel or sid.startswith(sel + "/")}
        if not hits:
            if any(c == sel or c.startswith(sel + "/") for c in challenge_ids()):
                raise UsageError(f"no scenario covers {raw!r} yet (the challenge exists; `pitfalls list` shows what does)")
            raise UsageError(f"unknown selection {raw!r}: give a platform (server, mobile, browser), a taxonomy "
                             "prefix such as browser/model-loading, or a scenario id (see `pitfalls list`)")
        chosen.update(hits)
    if targets:
        by_id = {s.id: s for s in catalog.scenarios}
        chosen = {sid: p for sid, p in chosen.items() if sid not in by_id or set(by_id[sid].targets) & set(targets)}
        if not chosen:
            raise UsageError(f"no selected scenario runs on {', '.join(targets)} (see `pitfalls list`)")
    return [chosen[sid] for sid in sorted(chosen)]


def worker_count(text: str) -> int:
    """``-n N`` or ``-n auto`` (one per core, as many as fit in memory)."""
    if text == "auto":
        from harness.shard import default_workers

        return default_workers()
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-n takes a number or `auto`, not {text!r}") from None


def split_list(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]

