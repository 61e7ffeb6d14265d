"""The results file as typed records: one :class:`Record` per scenario, target and variant.

Schema ``pitfalls-results/1`` (documented in docs/results-schema.md)::

    {"schema": "pitfalls-results/1", "created": ISO-8601, "environment": {...},
     "summary": {"<outcome>": count, ...},
     "records": [{"scenario", "taxonomy", "platform", "target", "variant", "outcome", "expected",
                  "verdict", "evidence": {"error", "figures", "notes", "texts", "versions"},
                  "seconds", "nodeid"}, ...]}

:class:`RunResults` and :class:`Record` are the data; ``to_json()`` / ``from_json()`` are the codec
(the plugin ships records from xdist workers as that JSON, the file holds it).  The outcome values
are :class:`harness.scenario.Outcome`'s, nowhere else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import re
import secrets
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from harness.artifacts import library_versions
from harness.errors import UsageError
from harness.scenario import Evidence, Outcome
from harness.targets import TARGET_NAMES
from harness.taxonomy import PLATFORMS

SCHEMA = "pitfalls-results/1"
T = TypeVar("T")
RECORD_FIELDS = ("scenario", "taxonomy", "platform", "target", "variant", "outcome", "expected",
                 "verdict", "evidence", "seconds", "nodeid")
PASSING = (Outcome.REPRODUCED, Outcome.WORKS)
#: what a scenario id of any catalog looks like: ``<platform>/<segment>/...``, each segment starting with a
#: letter or digit (no ``..``, no markup, no spaces).  An id of an older catalog loads (``pitfalls diff``
#: compares files across catalogs); one that is not shaped like this is refused.
SCENARIO_ID = re.compile(rf"(?:{'|'.join(PLATFORMS)})(?:/[A-Za-z0-9][A-Za-z0-9_.-]{{0,99}}){{1,8}}")
KNOWN_GAP_SUFFIX = "(a known gap, xfail)"
MATRIX_CELL_ENV = "PITFALLS_MATRIX_CELL"  # JSON: the version-matrix cell this run is (name, versions, lock digest)


def tracked_distributions() -> tuple[str, ...]:
    """The common distributions, then each target's runtime and clients (harness.targets.TargetInfo)."""
    from harness import targets

    return ("tensorflow", "keras", "tf-keras",
            *dict.fromkeys(p for t in targets.TARGETS for p in (*t.matrix_packages, *t.tracked_packages)),
            "numpy", "pytest", "pitfalls")


TRACKED_DISTRIBUTIONS = tracked_distributions()  # those of the targets declared at import


def environment() -> dict[str, Any]:
    """Where the run happened: platform, Python and the versions of the tracked packages."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "packages": library_versions(*tracked_distributions()),
    }
    cell = os.environ.get(MATRIX_CELL_ENV)
    if cell:  # set by `pitfalls matrix` for the run of one cell (harness.matrix.run)
        env["cell"] = json.loads(cell)
    return env


def decode_items(data: Any, schema: str, key: str, what: str, decode: Callable[[Any], T]) -> list[T]:
    """The list ``data[key]`` of a file of ``schema``, each item decoded; ValueError naming what is wrong."""
    if not isinstance(data, Mapping) or data.get("schema") != schema:
        found = data.get("schema") if isinstance(data, Mapping) else type(data).__name__
        raise ValueError(f"has schema {found!r}, expected {schema!r}")
    raw = data.get(key)
    if not isinstance(raw, list):
        raise ValueError(f"has no list of {key}")
    items = []
    for i, item in enumerate(raw):
        try:
            items.append(decode(item))
        except ValueError as exc:
            raise ValueError(f"{what} {i} {exc}") from None
    return items


@dataclass(frozen=True)
class Record:
    """What one variant of one scenario did on one target."""

    scenario: str
    taxonomy: str
    platform: str
    target: str
    variant: str
    outcome: Outcome
    expected: str
    verdict: str
    evidence: Evidence = field(default_factory=Evidence)
    seconds: float = 0.0
    nodeid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # fields a newer writer added, kept as read

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.scenario, self.target, self.variant)

    @property
    def known_gap(self) -> bool:
        """A strict xfail that failed as its scenario states (the verdict says so)."""
        return self.verdict.endswith(KNOWN_GAP_SUFFIX)

    def as_known_gap(self) -> "Record":
        return dataclasses.replace(self, verdict=f"{self.verdict} {KNOWN_GAP_SUFFIX}")

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values, in the field order of the schema."""
        return {"scenario": self.scenario, "taxonomy": self.taxonomy, "platform": self.platform,
                "target": self.target, "variant": self.variant, "outcome": self.outcome.value,
                "expected": self.expected, "verdict": self.verdict, "evidence": self.evidence.to_json(),
                "seconds": self.seconds, "nodeid": self.nodeid, **self.extra}

    @classmethod
    def from_json(cls, data: Any) -> "Record":
        """The inverse of :meth:`to_json`; a malformed record raises ValueError with one line."""
        if not isinstance(data, Mapping):
            raise ValueError(f"is a {type(data).__name__}, not an object")
        missing = [f for f in RECORD_FIELDS if f not in data]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        try:
            outcome = Outcome(data["outcome"])
        except ValueError:
            raise ValueError(f"has unknown outcome {data['outcome']!r}") from None
        texts = {f: data[f] for f in ("scenario", "taxonomy", "platform", "target", "variant", "expected",
                                     "verdict", "nodeid")}
        wrong = [f for f, v in texts.items() if not isinstance(v, str)]
        if wrong:
            raise ValueError(f"has a non-text {', '.join(wrong)}")
        check_identity(texts["scenario"], texts["target"])
        seconds = data["seconds"]
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
            raise ValueError(f"has seconds {seconds!r}, not a number")
        try:
            evidence = Evidence.from_json(data["evidence"])
        except ValueError as exc:
            raise ValueError(f"has bad evidence: {exc}") from None
        extra = {k: v for k, v in data.items() if k not in RECORD_FIELDS}
        return cls(outcome=outcome, evidence=evidence, seconds=float(seconds or 0.0), extra=extra, **texts)


def _shown(value: str, limit: int = 60) -> str:
    """``value`` as a one-line repr, clipped: what an error message may quote of an untrusted text."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "…" + text[-3:]


def check_identity(scenario: str, target: str) -> None:
    """Refuse a record whose target is not a declared one or whose scenario id is not shaped like a
    catalog id (ValueError, one line): such a text never reaches a page, a path or a node id."""
    if target not in TARGET_NAMES:
        raise ValueError(f"has target {_shown(target)}, not one of {', '.join(TARGET_NAMES)}")
    if not SCENARIO_ID.fullmatch(scenario):
        raise ValueError(f"has scenario {_shown(scenario)}, not a catalog id (<platform>/<category>/..., "
                         "letters, digits, '.', '_', '-')")


def summarize(records: Iterable[Record]) -> dict[str, int]:
    counts = Counter(r.outcome for r in records)
    return {o.value: counts.get(o, 0) for o in Outcome}


@dataclass(frozen=True)
class RunResults:
    """A whole results file: where the run happened, the counts, and the records in scenario order."""

    schema: str
    created: str
    environment: dict[str, Any]
    summary: dict[str, int]
    records: tuple[Record, ...]

    @classmethod
    def build(cls, records: Iterable[Record], env: Mapping[str, Any] | None = None) -> "RunResults":
        ordered = tuple(sorted(records, key=lambda r: r.key))
        return cls(schema=SCHEMA, created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                   environment=dict(env if env is not None else environment()), summary=summarize(ordered),
                   records=ordered)

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "created": self.created, "environment": self.environment,
                "summary": dict(self.summary), "records": [r.to_json() for r in self.records]}

    @classmethod
    def from_json(cls, data: Any) -> "RunResults":
        """The inverse of :meth:`to_json`; raises ValueError with one line naming what is wrong."""
        records = decode_items(data, SCHEMA, "records", "record", Record.from_json)
        env = data.get("environment")
        if env is not None and not isinstance(env, Mapping):
            raise ValueError("has an environment that is not an object")
        return cls(schema=SCHEMA, created=str(data.get("created") or "?"), environment=dict(env or {}),
                   summary=summarize(records), records=tuple(records))


# --------------------------------------------------------------------------------------------
# Files


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it into place: never a half-written file.

    The file gets the mode any new file gets (0666 less the umask: 0644 under the usual 022),
    not the 0600 of a ``mkstemp`` file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, data: Any) -> None:
    """Write JSON atomically (see :func:`write_text_atomically`)."""
    write_text_atomically(path, json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")


def write_run(path: Path, run: RunResults) -> None:
    write_json_atomically(path, run.to_json())


def load_run(path: Path) -> RunResults:
    """Read and validate a results file; a bad one raises UsageError with one clear line."""
    if not path.is_file():
        raise UsageError(f"results file not found: {path} (run `pitfalls run` first, or pass a path)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"results file {path} is not valid JSON ({exc}); re-run `pitfalls run` to rewrite it") from None
    try:
        return RunResults.from_json(data)
    except ValueError as exc:
        raise UsageError(f"results file {path}{':' if str(exc).startswith('record') else ''} {exc}") from None


def load_results(path: Path) -> dict[str, Any]:
    """A validated results file as its JSON-shaped dict (what :mod:`harness.diff` reads)."""
    return load_run(path).to_json()


def build_results(records: Iterable[Mapping[str, Any]], env: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A results file's JSON from JSON-shaped records (validated through :class:`Record`)."""
    return RunResults.build((Record.from_json(r) for r in records), env).to_json()
