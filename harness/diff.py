"""Compare two results files: which scenarios changed behaviour (``pitfalls diff OLD NEW``).

Records are matched by (scenario, target, variant).  A change is one of:

* ``outcome``: the outcome moved, e.g. ``reproduced`` -> ``not-reproduced`` (symptom no longer
  reproduced) or ``works`` -> ``broken`` (fixed variant now broken); always reported;
* ``applicability``: one side is ``not-applicable`` (the installed versions lie outside the
  scenario's ``applies`` ranges) and the other is not, e.g. ``reproduced`` -> ``not-applicable``
  after an upgrade; always reported, never a regression (the scenario says it does not hold there);
* ``added`` / ``removed``: a record exists on one side only; always reported;
* ``error-text``: the runtime's error text differs once its volatile parts are normalised
  (:data:`TEXT_RULES`: timestamps, temporary and cache paths, ports, container ids, addresses,
  process and thread ids, log prefixes), i.e. the runtime says something else;
* ``figure``: a figure moved in a way its class says is real.  The class is the one the scenario
  declares for the figure (``Scenario(figures=...)``, :data:`harness.scenario.FigureClass`, recorded
  in ``evidence.figure_classes``; an undeclared figure is ``exact``); a results file written before
  figures declared classes falls back, explicitly, to :data:`LEGACY_FIGURE_CLASSES` (rules over the
  figure's name, first match wins).  The bounds are those the expectation states
  (``evidence.bounds``; an older file: read from its ``expected`` text, :func:`legacy_bounds`):

  ``parity`` (a difference to a reference)
      crosses a bound of the scenario's own expectation, or moves by an order of magnitude or more
      with the larger value above the float-noise floor :data:`PARITY_FLOOR`;
  ``size`` (bytes)
      any difference (sizes are deterministic);
  ``latency_ms``, ``seconds``, ``ratio``, ``speedup`` (timings)
      a bound of the scenario's expectation flips, or it moves beyond the noise band
      (``threshold_pct``: by default a factor of 20 either way, because on a shared 2-core machine
      the median of a core-pinned run moved by x10 between two runs of the same versions, and a
      ratio built on it by x3; absolute times also by more than :data:`TIMING_FLOOR`); when both
      records hold repeats (``evidence.repeats[name]``, a list of samples) it moved only when the
      two sample ranges do not overlap *and* the medians moved beyond the same noise band: repeats
      show the spread within one run, but the load changes between runs (a paired ratio of
      ``mobile/inference-speed`` had its median at 272 in one run and 28 in the next, ranges apart,
      on the same versions beside other work), so they confirm a move and never widen what counts.
      A dedicated quiet machine narrows the band with ``--threshold``.  So a timing is judged by the
      scenario's own bounds, and only a catastrophic move (a hang, a lost accelerator) counts
      beyond them;
  ``events`` (answers, requests, errors, wrong answers counted under load or in a race)
      a bound flips, or, in a fixed variant, it moves between zero and non-zero (a faulty variant's
      race makes a random number of them);
  ``exact`` (everything else: counts, flags, accuracies)
      any difference.

A change is a **regression** when a variant that behaved as expected no longer does (outcome from
reproduced/works to anything but skipped or not-applicable), when a figure now violates a bound it satisfied, or when
a fixed variant's parity error, size or absolute time grew (or its speedup fell).  It is an **improvement** in the
opposite directions, and **changed** otherwise.
"""

from __future__ import annotations

import math
import json
import re
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from harness.scenario import FIGURE_CLASSES, Bound, Outcome

PASSING: tuple[str, ...] = (Outcome.REPRODUCED.value, Outcome.WORKS.value)
NOT_APPLICABLE: str = Outcome.NOT_APPLICABLE.value
#: Timing noise band: a timing figure without repeats moved when max/min exceeds 1 + pct/100.
DEFAULT_THRESHOLD_PCT = 1900.0
PARITY_FLOOR = 1e-6  # a difference below this is float noise, whatever its relative move
PARITY_ORDERS = 1.0  # moves of at least this many orders of magnitude count
TIMING_FLOOR = {"ms": 1.0, "seconds": 0.01}  # absolute moves below these are noise


@dataclass(frozen=True)
class Change:
    scenario: str
    target: str
    variant: str
    kind: str  # outcome | applicability | error-text | figure | added | removed
    severity: str  # regression | improvement | changed
    what: str
    old: Any
    new: Any

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------- texts


@dataclass(frozen=True)
class TextRule:
    """A volatile part of a runtime's text, replaced by a placeholder before texts are compared."""

    name: str
    pattern: re.Pattern[str]
    replacement: str
    example: str  # a real-looking text the rule applies to (tests check each)


def _rule(name: str, pattern: str, replacement: str, example: str) -> TextRule:
    return TextRule(name, re.compile(pattern), replacement, example)


_PATH_END = r"[^\s'\"`,;:()\[\]{}<>]*"

#: Applied in order (log prefixes before bare timestamps, cache paths before temporary paths).
TEXT_RULES: tuple[TextRule, ...] = (
    _rule("tf-function-id", r"\b(__inference_\w+?|__forward_\w+?|__backward_\w+?)_\d+\b", r"\1_<n>",
          'fused["StringSplitV2:", "StringSplit/StringSplitV2@__inference_serve_8683"]'),
    _rule("tf-function-node", r"\{\{function_node (\w+?)_\d+\}\}", r"{{function_node \1_<n>}}",
          "One of JPEG, PNG, GIF, BMP required. [[{{function_node map_while_body_18638}}{{node map/while/DecodePng}}]]"),
    _rule("tf-log-prefix", r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?: [IWEF] [\w./-]+:\d+\] ", "",
          "2026-12-01 07:36:21.894355: W tfs_compat/core.py:117] No versions of servable model found"),
    _rule("glog-prefix", r"\b[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [\w./-]+:\d+\] ", "",
          "I1201 07:25:46.123456  4711 loader_harness.cc:74] Loading servable version {name: model version: 1}"),
    _rule("python-log-prefix", r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL):[\w.]+:", "",
          "WARNING:absl:Found untraced functions such as _update_step_xla"),
    _rule("iso-timestamp", r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?", "<time>",
          "request at 2026-12-01T07:25:46.123+00:00 failed"),
    _rule("clock-time", r"\b\d{2}:\d{2}:\d{2}(?:\.\d+)?\b", "<time>", "[07:25:46.123] worker exited"),
    _rule("pitfalls-cache-entry", r"(?:/[\w.-]+)*/(?:\.cache/)?pitfalls(?:-env)?/([\w-]+)/[0-9a-f]{16,}", r"<cache>/\1/<entry>",
          "Could not open /root/.cache/pitfalls/tflite/0a1b2c3d4e5f60718293/model.tflite"),
    _rule("temp-path", r"(?:/private)?(?:/tmp|/var/tmp|/var/folders)/" + _PATH_END, "<tmp>",
          "SavedModel file does not exist at: /tmp/pitfalls-run-x1y2z3/fixed-abc/model/1"),
    _rule("run-directory", r"\bpitfalls-(?:run|cli|nginx|call)-[\w-]+|\bpytest-of-\w+/pytest-\d+|\btmp[a-z0-9_]{8}\b",
          "<run-dir>", "see pitfalls-run-k2j3h4/faulty-1 for the log"),
    _rule("loopback-port", r"\b(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):\d{2,5}\b", r"\1:<port>",
          "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:45121: Connection refused"),
    _rule("container-id", r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b", "<id>",
          "No such container: 3f2a9c81d0e4"),
    _rule("container-name", r"\bpitfalls-[a-z]+-(?:\d+-)?[0-9a-f]{6,}\b", "<container>",  # the names targets give their containers
          "Conflict. The container name \"/pitfalls-serving-3f9a0c21bd\" is already in use"),
    _rule("hex-address", r"\b0x[0-9a-fA-F]{6,}\b", "0x<addr>", "<tflite.Interpreter object at 0x7f3a2c1b9d50>"),
    _rule("process-id", r"\b(pid|PID|process)([ =:#]+)\d+", r"\1\2<pid>", "worker process 81234 exited with signal 9"),
    _rule("thread-id", r"\b(thread|Thread|tid|TID)([ =:#-]+)\d+", r"\1\2<tid>", "Exception in thread Thread-17 (worker)"),
)


def canonical_json_spans(text: str) -> str:
    """Every JSON object embedded in ``text`` rewritten with its keys sorted.

    tf.js quotes a model's JSON in its errors, and the key order of that JSON is not stable
    between converter runs of the same versions (seen: ``numArgs`` before or after
    ``leakyreluAlpha`` in browser/model-loading/selection-usage-of-apis); the values are compared.
    """
    decoder = json.JSONDecoder()
    out: list[str] = []
    i = 0
    while True:
        start = text.find("{", i)
        if start < 0:
            out.append(text[i:])
            return "".join(out)
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            out.append(text[i:start + 1])
            i = start + 1
            continue
        out.append(text[i:start])
        out.append(json.dumps(value, sort_keys=True, separators=(",", ":")) if isinstance(value, dict)
                   else text[start:end])
        i = end


def normalise_text(text: str) -> str:
    """A runtime text with its volatile parts replaced (:data:`TEXT_RULES`), the keys of embedded JSON
    objects sorted and spaces collapsed."""
    for rule in TEXT_RULES:
        text = rule.pattern.sub(rule.replacement, text)
    if "{" in text:
        text = canonical_json_spans(text)
    return " ".join(text.split())


def _error_text(record: Mapping[str, Any]) -> str:
    err = (record.get("evidence") or {}).get("error") or {}
    return " ".join(str(err.get("message", "")).split())


# ---------------------------------------------------------------------------------- figures

@dataclass(frozen=True)
class Judged:
    """How a figure class is judged: as a parity, size, timing, events or exact figure; the unit of an
    absolute time (its noise floor); whether a higher value is worse (None: no direction)."""

    kind: str
    unit: str | None = None
    worse_when_higher: bool | None = None


#: Every :data:`harness.scenario.FigureClass`, with how a move of it is judged.
JUDGED: dict[str, Judged] = {
    "parity": Judged("parity", worse_when_higher=True),
    "size": Judged("size", worse_when_higher=True),
    "latency_ms": Judged("timing", unit="ms", worse_when_higher=True),
    "seconds": Judged("timing", unit="seconds", worse_when_higher=True),
    "ratio": Judged("timing"),
    "speedup": Judged("timing", worse_when_higher=False),
    "events": Judged("events"),
    "exact": Judged("exact"),
    "evidence": Judged("evidence"),
}
assert set(JUDGED) == set(FIGURE_CLASSES), "every figure class is judged"

#: Results files written before figures declared their class: the class from the figure's name,
#: (class, pattern), first match wins; "exact" when none matches.  Only :func:`figure_class_in`
#: reads it, for a record without ``evidence.figure_classes``.
LEGACY_FIGURE_CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("parity", re.compile(r"max_abs_diff|abs_diff|(^|_)diff(_|$)|max_diff|sqnr|max_steps|scale_error"
                          r"|after_update_vs_(new|old)_model")),
    ("size", re.compile(r"bytes|megabytes|size_ratio")),
    ("latency_ms", re.compile(r"(^|_)ms(_|$)")),
    ("seconds", re.compile(r"seconds")),
    ("speedup", re.compile(r"speedup|throughput|per_second")),
    ("ratio", re.compile(r"latency|slowdown|ratio|_over_|_vs_(cpu|builtin|xnnpack|reference|optimised|quantized)")),
    ("events", re.compile(r"answers|answered|requests|^errors$|failed|(^|_)wrong(_|$)")),
)
_BOUND = re.compile(r"\b([A-Za-z_]\w*) (<=|>=|<|>) (-?(?:\d+\.?\d*(?:e[-+]?\d+)?|inf))\b")
_OPS = {">": lambda a, b: a > b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b}


def legacy_figure_class(name: str) -> str:
    """The class of a figure of an older results file, from its name (:data:`LEGACY_FIGURE_CLASSES`)."""
    for cls, pattern in LEGACY_FIGURE_CLASSES:
        if pattern.search(name):
            return cls
    return "exact"


def figure_class_in(record: Mapping[str, Any], name: str) -> str:
    """The class of figure ``name`` in ``record``: the scenario's declaration (``exact`` when it
    declares none), or, for a record written before classes were recorded, :func:`legacy_figure_class`."""
    declared = (record.get("evidence") or {}).get("figure_classes")
    if declared is None:
        return legacy_figure_class(name)
    cls = declared.get(name, "exact")
    return cls if cls in JUDGED else "exact"


def legacy_bounds(expected: str) -> list[Bound]:
    """The bounds an older record's ``expected`` text states (``name op value``)."""
    return [(name, op, float(value)) for name, op, value in _BOUND.findall(expected)]


def figure_bounds(record: Mapping[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """The bounds a record's expectation states, by figure: ``evidence.bounds``, or for an older
    record the ``name op value`` phrases of its ``expected`` text."""
    typed = (record.get("evidence") or {}).get("bounds")
    bounds = ([(str(b["figure"]), str(b["op"]), float(b["bound"])) for b in typed] if typed is not None
              else legacy_bounds(str(record.get("expected") or "")))
    found: dict[str, list[tuple[str, float]]] = {}
    for name, op, value in bounds:
        found.setdefault(name, []).append((op, value))
    return found


def _satisfies(value: float, bounds: Sequence[tuple[str, float]]) -> bool:
    return all(_OPS[op](value, bound) for op, bound in bounds)


def _factor(a: float, b: float) -> float:
    lo, hi = sorted((abs(a), abs(b)))
    return math.inf if lo == 0 else hi / lo


def _repeats(record: Mapping[str, Any], name: str) -> list[float]:
    samples = ((record.get("evidence") or {}).get("repeats") or {}).get(name) or []
    return [float(s) for s in samples if isinstance(s, (int, float))]


def figure_moved(figure_class: str, a: float, b: float, *, bounds: Sequence[tuple[str, float]] = (),
                 repeats: tuple[Sequence[float], Sequence[float]] = ((), ()),
                 threshold_pct: float = DEFAULT_THRESHOLD_PCT, variant: str = "fixed") -> str | None:
    """Why a move from ``a`` to ``b`` of a figure of class ``figure_class`` is a real change (None when
    it is noise)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return None
    if bounds and _satisfies(a, bounds) != _satisfies(b, bounds):
        return "now violates its bound" if _satisfies(a, bounds) else "now satisfies its bound"
    judged = JUDGED[figure_class]
    cls = judged.kind
    if cls == "evidence":
        return None  # one sample, no statistic: only its bound (above) can make it a change
    if cls in ("exact", "size"):
        return "changed"
    if cls == "parity":
        if max(abs(a), abs(b)) < PARITY_FLOOR:
            return None
        orders = math.log10(_factor(max(abs(a), PARITY_FLOOR), max(abs(b), PARITY_FLOOR)))
        return f"moved by {orders:.1f} orders of magnitude" if orders >= PARITY_ORDERS else None
    if cls == "events":
        return "moved between zero and non-zero" if variant == "fixed" and (a == 0) != (b == 0) else None
    ra, rb = repeats
    if len(ra) >= 3 and len(rb) >= 3:
        overlap = max(ra) >= min(rb) and max(rb) >= min(ra)
        ma, mb = statistics.median(ra), statistics.median(rb)
        if not overlap and _factor(ma, mb) > 1 + threshold_pct / 100:
            return f"repeats moved (median {ma:.4g} -> {mb:.4g}, ranges apart)"
        return None
    unit = judged.unit
    if unit and abs(b - a) <= TIMING_FLOOR[unit]:
        return None
    return f"moved beyond the noise band (x{_factor(a, b):.2g})" if _factor(a, b) > 1 + threshold_pct / 100 else None


def _key(record: Mapping[str, Any]) -> tuple[str, str, str]:
    return (record["scenario"], record["target"], record["variant"])


def _outcome_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> Change | None:
    a, b = old["outcome"], new["outcome"]
    if a == b:
        return None
    if NOT_APPLICABLE in (a, b):
        if b == NOT_APPLICABLE:
            what = "no longer applies on these versions: " + str(new.get("verdict", ""))[:200]
        else:
            what = f"applies on these versions again: now {b}"
        return Change(*_key(new), "applicability", "changed", what, a, b)
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
    bounds = figure_bounds(new)
    for name in sorted(set(fo) & set(fn)):
        a, b = float(fo[name]), float(fn[name])
        cls = figure_class_in(new, name)
        why = figure_moved(cls, a, b, bounds=bounds.get(name, ()), threshold_pct=threshold_pct,
                           repeats=(_repeats(old, name), _repeats(new, name)), variant=new["variant"])
        if why is None:
            continue
        severity = "changed"
        worse = JUDGED[cls].worse_when_higher
        if why == "now violates its bound":
            severity = "regression"
        elif why == "now satisfies its bound":
            severity = "improvement"
        elif worse is not None and new["variant"] == "fixed":
            severity = "regression" if (b > a) == worse else "improvement"
        pct = f" by {(b - a) / abs(a) * 100.0:+.0f}%" if a else " from 0"
        what = f"{name} {'rose' if b > a else 'fell'}{pct} ({cls}: {why})"
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
            changes.append(Change(*key, "added", "changed", "new record", None, after[key]["outcome"]))
            continue
        if b is None:
            changes.append(Change(*key, "removed", "changed", "record no longer present", a["outcome"], None))
            continue
        outcome = _outcome_change(a, b)
        if outcome:
            changes.append(outcome)
        ta, tb = _error_text(a), _error_text(b)
        if ta and tb and normalise_text(ta) != normalise_text(tb):
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
