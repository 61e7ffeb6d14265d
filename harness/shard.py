"""Sharded runs: split the selected scenario files into N shards, merge the shards' results files.

``pitfalls run --shard K/N [--durations FILE]`` runs shard K of N (1-based).  The unit of the
split is the scenario *file*: every variant and target of one file stays in one shard (they share
cached models and servers).  With durations (a previous results file: a file's duration is the
sum of its records' ``seconds``) the split is a greedy bin packing, longest file first onto the
lightest shard (ties by name and shard number); a selected file the durations do not know gets
their median.  Without durations (or when they know none of the selected files) the files are
ordered by the sha256 of their id and dealt round-robin.  Both are deterministic: every shard of
a CI matrix computes the same split from the same selection and durations, and records its digest
(``split``) so that :func:`merge` can tell shards of one split from shards of different ones.

``pitfalls merge A.json B.json ... --out merged.json`` (:func:`merge`) joins shards (or any
results files of one environment) into one results file that ``report`` and ``diff`` read as one
run.  The CI system is the distributed engine (``.github/workflows/catalog.yml``); nothing here
schedules anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import UsageError
from harness.results import Record, RunResults, load_run

STRATEGIES = ("durations", "hash")
SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
COMPARED_ENVIRONMENT = ("python", "packages", "cell")  # what must agree between merged files


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> ShardSpec:
    """``"2/3"`` -> ShardSpec(2, 3); anything else is a one-line UsageError."""
    m = SHARD_SPEC.match(text or "")
    if not m:
        raise UsageError(f"--shard takes K/N (shard K of N, 1-based), e.g. --shard 2/3, not {text!r}")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1:
        raise UsageError(f"--shard {text}: the number of shards must be 1 or more")
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and {count} (shards are numbered from 1)")
    return ShardSpec(index, count)


def file_durations(run: RunResults) -> dict[str, float]:
    """Seconds per scenario file (the sum of its records' ``seconds``), keyed by scenario id."""
    found: dict[str, float] = {}
    for r in run.records:
        found[r.scenario] = found.get(r.scenario, 0.0) + max(r.seconds, 0.0)
    return found


def load_durations(path: Path) -> dict[str, float]:
    """Per-file durations from a previous results file; a bad file is a one-line UsageError."""
    if path.is_dir():
        raise UsageError(f"--durations {path} is a directory; give a results file such as results/latest.json")
    try:
        run = load_run(path)
    except UsageError as exc:
        raise UsageError(f"--durations: {exc}") from None
    if not run.records:
        raise UsageError(f"--durations {path} has no records to take durations from; give the results file "
                         "of a previous run, or leave --durations out for the hash split")
    return file_durations(run)


@dataclass(frozen=True)
class Split:
    """Every shard's files (scenario ids, sorted), how they were chosen and the expected seconds."""

    shards: tuple[tuple[str, ...], ...]
    strategy: str  # "durations" | "hash"
    expected_seconds: tuple[float, ...] | None  # per shard, when durations were known

    @property
    def digest(self) -> str:
        """Names this split: equal for every shard computed from the same selection and durations."""
        text = json.dumps([list(s) for s in self.shards], separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def imbalance(self) -> float | None:
        """(slowest - fastest) / slowest of the expected seconds; None without durations."""
        if not self.expected_seconds or max(self.expected_seconds) <= 0:
            return None
        return (max(self.expected_seconds) - min(self.expected_seconds)) / max(self.expected_seconds)


def _hash_key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def split(ids: Sequence[str], count: int, durations: Mapping[str, float] | None = None) -> Split:
    """Split scenario ids into ``count`` shards (see the module docstring); deterministic."""
    if count < 1:
        raise ValueError(f"count must be 1 or more, not {count}")
    unique = sorted(set(ids))
    known = {sid: float(durations[sid]) for sid in unique if durations and sid in durations}
    if not known:
        shards: list[list[str]] = [[] for _ in range(count)]
        for i, sid in enumerate(sorted(unique, key=lambda s: (_hash_key(s), s))):
            shards[i % count].append(sid)
        return Split(tuple(tuple(sorted(s)) for s in shards), "hash", None)
    assert durations is not None
    median = statistics.median(float(v) for v in durations.values())
    cost = {sid: known.get(sid, median) for sid in unique}
    loads = [0.0] * count
    bins: list[list[str]] = [[] for _ in range(count)]
    for sid in sorted(unique, key=lambda s: (-cost[s], s)):
        lightest = min(range(count), key=lambda k: (loads[k], k))
        bins[lightest].append(sid)
        loads[lightest] += cost[sid]
    return Split(tuple(tuple(sorted(b)) for b in bins), "durations", tuple(round(x, 3) for x in loads))


def shard_environment(spec: ShardSpec, the_split: Split, durations_from: Path | None) -> dict[str, Any]:
    """What a shard's results file records under ``environment["shard"]``."""
    return {"index": spec.index, "count": spec.count, "files": list(the_split.shards[spec.index - 1]),
            "durations_from": str(durations_from) if durations_from else None, "strategy": the_split.strategy,
            "split": the_split.digest, "selected": sum(len(s) for s in the_split.shards),
            "expected_seconds": (the_split.expected_seconds[spec.index - 1]
                                 if the_split.expected_seconds else None)}


# --------------------------------------------------------------------------------------------
# machine size


def default_workers(cpus: int | None = None, memory_bytes: int | None = None,
                    per_worker_bytes: int = 3 * 1024 ** 3, reserve_bytes: int = 2 * 1024 ** 3) -> int:
    """xdist workers this machine can take: one per core, as many as fit in memory, at least 1.

    ``per_worker_bytes`` is the peak resident memory of one worker and what it starts (TensorFlow,
    Chromium, LiteRT worker processes, the serving container); see docs/cli.md for the measurement.
    ``memory_bytes`` defaults to the machine's available memory (``MemAvailable``).
    """
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                          else os.cpu_count() or 1)
    if memory_bytes is None:
        memory_bytes = _available_memory()
    by_memory = (memory_bytes - reserve_bytes) // per_worker_bytes if memory_bytes else cpus
    return max(1, min(cpus, int(by_memory)))


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# --------------------------------------------------------------------------------------------
# merge


@dataclass(frozen=True)
class Merged:
    """The merged run, and the scenario files shards were given that have no record in any input."""

    run: RunResults
    missing_files: tuple[str, ...]


def _compared(env: Mapping[str, Any]) -> dict[str, Any]:
    return {k: env.get(k) for k in COMPARED_ENVIRONMENT if k in env}


def merge(inputs: Sequence[Path], allow_different_environments: bool = False) -> Merged:
    """Join results files into one run; refuses (UsageError) what cannot be one run.

    Refused: fewer than two files, a file that is not a results file of this schema
    (:func:`harness.results.load_run`), package or Python versions (or version-matrix cells) that
    differ unless ``allow_different_environments``, a record (scenario, target, variant) in two
    files, and an incomplete or mixed set of shards.  The merged environment is the first file's,
    without its ``shard``, plus ``merged_from``.
    """
    if len(inputs) < 2:
        raise UsageError("merge needs two results files or more (e.g. `pitfalls merge shard-*.json --out merged.json`)")
    paths = [Path(p) for p in inputs]
    seen_paths: dict[Path, Path] = {}
    for p in paths:
        real = p.resolve()
        if real in seen_paths:
            raise UsageError(f"{p} is given twice; give each results file once")
        seen_paths[real] = p
    runs = [(p, load_run(p)) for p in paths]
    first_path, first = runs[0]
    if not allow_different_environments:
        want = _compared(first.environment)
        for p, run in runs[1:]:
            got = _compared(run.environment)
            if got != want:
                keys = sorted(set(want) | set(got))
                what = []
                for k in keys:
                    if k == "packages":
                        a, b = want.get(k) or {}, got.get(k) or {}
                        what += [f"{n} {a.get(n)} vs {b.get(n)}" for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]
                    elif want.get(k) != got.get(k):
                        what.append(f"{k} {want.get(k)} vs {got.get(k)}")
                raise UsageError(f"{p} comes from a different environment than {first_path} ({'; '.join(what)}); "
                                 "merge files of one environment, or pass --allow-different-environments")
    _check_shards(runs)
    owner: dict[tuple[str, str, str], Path] = {}
    records: list[Record] = []
    for p, run in runs:
        for r in run.records:
            if r.key in owner:
                raise UsageError(f"duplicate record {r.scenario} {r.variant}[{r.target}] in {owner[r.key]} and {p}; "
                                 "each scenario, target and variant may come from one file only")
            owner[r.key] = p
            records.append(r)
    recorded = {r.scenario for r in records}
    assigned = [f for _, run in runs for f in (_shard_of(run) or {}).get("files", [])]
    missing = tuple(sorted({f for f in assigned if f not in recorded}))
    env = {k: v for k, v in first.environment.items() if k != "shard"}
    sources: list[dict[str, Any]] = []
    for p, run in runs:
        shard = _shard_of(run)
        entry: dict[str, Any] = {"path": str(p), "created": run.created, "records": len(run.records),
                                 "shard": f"{shard['index']}/{shard['count']}" if shard else None}
        if _compared(run.environment) != _compared(first.environment):
            entry["environment"] = _compared(run.environment)
        sources.append(entry)
    env["merged_from"] = sources
    return Merged(RunResults.build(records, env), missing)


def _shard_of(run: RunResults) -> dict[str, Any] | None:
    shard = run.environment.get("shard")
    return shard if isinstance(shard, dict) else None


def _check_shards(runs: Sequence[tuple[Path, RunResults]]) -> None:
    shards = [(p, _shard_of(r)) for p, r in runs]
    sharded = [(p, s) for p, s in shards if s is not None]
    if not sharded:
        return
    plain = [p for p, s in shards if s is None]
    if plain:
        raise UsageError(f"{plain[0]} is not a shard but {sharded[0][0]} is; merge the shards of one run only")
    for p, s in sharded:
        if not (isinstance(s.get("index"), int) and isinstance(s.get("count"), int) and 1 <= s["index"] <= s["count"]
                and isinstance(s.get("files"), list)):
            raise UsageError(f"{p} has a malformed shard entry in its environment ({s!r}); re-run that shard")
    p0, s0 = sharded[0]
    for p, s in sharded[1:]:
        if s["count"] != s0["count"] or s.get("split") != s0.get("split"):
            raise UsageError(f"{p} is shard {s['index']}/{s['count']} of a different split than {p0} "
                             f"(shard {s0['index']}/{s0['count']}): run every shard with the same selection, "
                             "options and --durations file")
    by_index: dict[int, Path] = {}
    for p, s in sharded:
        if s["index"] in by_index:
            raise UsageError(f"shard {s['index']}/{s['count']} is given twice: {by_index[s['index']]} and {p}")
        by_index[s["index"]] = p
    count = s0["count"]
    missing = [k for k in range(1, count + 1) if k not in by_index]
    if missing:
        have = ", ".join(f"{k}/{count}" for k in sorted(by_index))
        raise UsageError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(f'{k}/{count}' for k in missing)} "
                         f"missing (have {have}); pass every shard's results file")
