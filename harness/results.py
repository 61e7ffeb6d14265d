"""The results file: environment plus one record per scenario, target and variant.

Schema ``pitfalls-results/1`` (documented in docs/results-schema.md)::

    {"schema": "pitfalls-results/1", "created": ISO-8601, "environment": {...},
     "summary": {"<outcome>": count, ...},
     "records": [{"scenario", "taxonomy", "platform", "target", "variant", "outcome", "expected",
                  "verdict", "evidence": {"error", "figures", "notes", "texts", "versions"},
                  "seconds", "nodeid"}, ...]}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from harness.artifacts import library_versions
from harness.errors import UsageError

SCHEMA = "pitfalls-results/1"
OUTCOMES = ("reproduced", "not-reproduced", "works", "broken", "skipped", "error")
RECORD_FIELDS = ("scenario", "taxonomy", "platform", "target", "variant", "outcome", "expected",
                 "verdict", "evidence", "seconds", "nodeid")
TRACKED_DISTRIBUTIONS = ("tensorflow", "keras", "tf-keras", "tensorflowjs", "coremltools",
                         "ai-edge-litert", "playwright", "docker", "tensorflow-serving-api",
                         "numpy", "pytest", "pitfalls")


def environment() -> dict[str, Any]:
    """Where the run happened: platform, Python and the versions of the tracked packages."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": library_versions(*TRACKED_DISTRIBUTIONS),
    }


def summarize(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(r["outcome"] for r in records)
    return {o: counts.get(o, 0) for o in OUTCOMES}


def build_results(records: list[dict[str, Any]], env: dict[str, Any] | None = None) -> dict[str, Any]:
    ordered = sorted(records, key=lambda r: (r["scenario"], r["target"], r["variant"]))
    return {
        "schema": SCHEMA,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": env or environment(),
        "summary": summarize(ordered),
        "records": ordered,
    }


def write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON next to ``path`` and rename it into place: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_results(path: Path) -> dict[str, Any]:
    """Read and validate a results file; a bad one raises UsageError with one clear line."""
    if not path.is_file():
        raise UsageError(f"results file not found: {path} (run `pitfalls run` first, or pass a path)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"results file {path} is not valid JSON ({exc}); re-run `pitfalls run` to rewrite it") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise UsageError(f"results file {path} has schema {found!r}, expected {SCHEMA!r}")
    records = data.get("records")
    if not isinstance(records, list):
        raise UsageError(f"results file {path} has no list of records")
    for i, record in enumerate(records):
        missing = [f for f in RECORD_FIELDS if not isinstance(record, dict) or f not in record]
        if missing:
            raise UsageError(f"results file {path}: record {i} lacks {', '.join(missing)}")
        if record["outcome"] not in OUTCOMES:
            raise UsageError(f"results file {path}: record {i} has unknown outcome {record['outcome']!r}")
    return data
