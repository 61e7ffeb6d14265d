"""Compare two results files: which scenarios changed behaviour (``pitfalls diff OLD NEW``).

Records are matched by (scenario, target, variant).  A change is one of:

* ``outcome``: the outcome moved, e.g. ``reproduced`` -> ``not-reproduced`` (symptom no longer
  reproduced) or ``works`` -> ``broken`` (fixed variant now broken);
* ``error-text``: the runtime's error text differs (the symptom still reproduces, with new words);
* ``figure``: a figure moved by more than the threshold (relative, with a small absolute floor so
  that noise around zero does not count);
* ``added`` / ``removed``: a record exists on one side only.

A change is a **regression** when a variant that behaved as expected no longer does (outcome from
reproduced/works to anything but skipped), or when a fixed variant's latency, parity error or size
grew beyond the threshold.  It is an **improvement** in the opposite directions, and **changed**
otherwise.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

PASSING = ("reproduced", "works")
# figure name pattern -> absolute floor below which a move is noise
WORSE_WHEN_HIGHER: tuple[tuple[str, float], ...] = (
    (r"_ms$", 1.0), (r"max_abs_diff$", 1e-6), (r"parity", 1e-6), (r"_bytes$", 1024.0),
)
DEFAULT_THRESHOLD_PCT = 20.0


@dataclass(frozen=True)
class Change:
    scenario: str
    target: str
    variant: str
    kind: str  # outcome | error-text | figure | added | removed
    severity: str  # regression | improvement | changed
    what: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (record["scenario"], record["target"], record["variant"])


def _error_text(record: Mapping[str, Any]) -> str:
    err = (record.get("evidence") or {}).get("error") or {}
    return " ".join(str(err.get("message", "")).split())


def _floor_for(name: str) -> tuple[bool, float]:
    """Whether higher is worse for this figure, and its absolute noise floor."""
    for pattern, floor in WORSE_WHEN_HIGHER:
        if re.search(pattern, name):
            return True, floor
    return False, 1e-9


def _outcome_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> Change | None:
    a, b = old["outcome"], new["outcome"]
    if a == b:
        return None
    if a in PASSING and b != "skipped":
        severity = "regression"
    elif b in PASSING:
        severity = "improvement"
    else:
        severity = "changed"
    what = {("faulty", "reproduced"): "symptom no longer reproduced",
            ("fixed", "works"): "fixed variant now broken"}.get((new["variant"], a), "outcome changed")
    if b in PASSING:
        what = "symptom reproduced again" if b == "reproduced" else "fixed variant works again"
    elif b == "skipped":
        what = "now skipped: " + str(new.get("verdict", ""))[:200]
    elif a == "skipped":
        what = "now runs"
    return Change(*_key(new), "outcome", severity, what, a, b)


def _figure_changes(old: Mapping[str, Any], new: Mapping[str, Any], threshold_pct: float) -> list[Change]:
    changes = []
    fo = (old.get("evidence") or {}).get("figures") or {}
    fn = (new.get("evidence") or {}).get("figures") or {}
    for name in sorted(set(fo) & set(fn)):
        a, b = float(fo[name]), float(fn[name])
        worse_when_higher, floor = _floor_for(name)
        if abs(b - a) <= max(threshold_pct / 100.0 * abs(a), floor):
            continue
        pct = (b - a) / abs(a) * 100.0 if a else float("inf")
        severity = "changed"
        if worse_when_higher and new["variant"] == "fixed":
            severity = "regression" if b > a else "improvement"
        what = f"{name} {'rose' if b > a else 'fell'} by {pct:+.0f}%" if a else f"{name} moved from 0"
        changes.append(Change(*_key(new), "figure", severity, what, a, b))
    return changes


def diff_results(old: Mapping[str, Any], new: Mapping[str, Any],
                 threshold_pct: float = DEFAULT_THRESHOLD_PCT) -> list[Change]:
    """Every change between two validated results files, in scenario order."""
    before = {_key(r): r for r in old.get("records", [])}
    after = {_key(r): r for r in new.get("records", [])}
    changes: list[Change] = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None:
            changes.append(Change(*key, "added", "changed", "new record", None, b["outcome"]))  # type: ignore[index]
            continue
        if b is None:
            changes.append(Change(*key, "removed", "changed", "record no longer present", a["outcome"], None))
            continue
        outcome = _outcome_change(a, b)
        if outcome:
            changes.append(outcome)
        ta, tb = _error_text(a), _error_text(b)
        if ta and tb and ta != tb:
            changes.append(Change(*key, "error-text", "changed", "new error text", ta, tb))
        changes.extend(_figure_changes(a, b, threshold_pct))
    return changes


def environment_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Package versions (and Python) that differ between the two runs: the likely cause of a change."""
    before = dict((old.get("environment") or {}).get("packages") or {})
    after = dict((new.get("environment") or {}).get("packages") or {})
    before["python"] = (old.get("environment") or {}).get("python")
    after["python"] = (new.get("environment") or {}).get("python")
    return {k: (before.get(k), after.get(k)) for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.severity == "regression"]


def _short(value: Any, width: int = 60) -> str:
    text = "" if value is None else (f"{value:.6g}" if isinstance(value, float) else str(value))
    return text if len(text) <= width else text[: width - 1] + "…"


def changes_table(changes: list[Change], environment: Mapping[str, tuple[Any, Any]] | None = None) -> str:
    """A plain-text table of changes, one line each (no colours, fits a log)."""
    lines = [f"{name}: {a or 'absent'} -> {b or 'absent'}" for name, (a, b) in (environment or {}).items()]
    if lines:
        lines = ["versions changed: " + "; ".join(lines), ""]
    if not changes:
        return "\n".join(lines + ["no scenario changed behaviour"])
    header = ("severity", "scenario", "target", "variant", "change", "old -> new")
    rows = [(c.severity, c.scenario, c.target, c.variant, c.what, f"{_short(c.old)} -> {_short(c.new)}")
            for c in changes]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    n = len(regressions(changes))
    lines.append(f"{len(changes)} change(s), {n} regression(s)")
    return "\n".join(lines)
