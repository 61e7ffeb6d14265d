"""What ``pitfalls check`` reports: typed records and their JSON (schema ``pitfalls-check/1``).

Documented in ``docs/check-schema.md``.  A :class:`CheckReport` holds, per target, a verdict,
every finding (not only the first), parity with the reference, the per-layer divergence table
when outputs diverge, figures (sizes, latencies) and versions.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

SCHEMA = "pitfalls-check/1"
Severity = Literal["blocker", "warning", "info"]
Verified = Literal["runtime", "static"]
Verdict = Literal["deploys", "warnings", "fails", "skipped"]
#: what a remedy did on the user's model, as the runtime showed it after the change
RemedyVerdict = Literal["works", "does not work", "not applicable"]
SEVERITIES: tuple[str, ...] = ("blocker", "warning", "info")


#: what :func:`text_key` rubs out of a runtime's text: paths, addresses, hex digests, numbers
_VARYING = ((re.compile(r"(?<!<)(?:/[^\s'\"():,\]<>]+)+"), "<path>"), (re.compile(r"0x[0-9a-fA-F]+"), "<addr>"),
            (re.compile(r"\b[0-9a-f]{12,}\b"), "<hex>"), (re.compile(r"\d+(?:\.\d+)?"), "<n>"))


def text_key(text: str) -> str:
    """A runtime text's identity across runs and models: its first non-empty line with file paths,
    addresses, hex digests and numbers replaced by placeholders, at most 200 characters."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    for pattern, placeholder in _VARYING:
        line = pattern.sub(placeholder, line)
    return line[:200]


@dataclass(frozen=True)
class RemedyTried:
    """One remedy tried on the user's model for a finding (:mod:`harness.check.remedies`).

    ``evidence`` is what the runtime said or measured after the change (its error text, or the
    parity and size figures); only a remedy whose verdict is ``works`` is called a fix.
    """

    name: str
    verdict: RemedyVerdict
    evidence: str
    change: str = ""  # what was changed, in words (the converter flag, the backend, the dtype sent...)
    scenario: str | None = None  # the catalog lesson the runtime's text after the change matches, if one does

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One thing a target said or showed about the model."""

    severity: Severity
    text: str  # the runtime's own text (verified=runtime) or what the static probe saw
    source: str  # where the text came from: "TFLiteConverter", "<runtime> interpreter", "served metadata", ...
    verified: Verified
    taxonomy: str | None = None  # challenge node id, when the finding is a known pitfall
    scenario: str | None = None  # the catalog scenario that teaches it (`pitfalls explain ID`)
    fix: str = ""
    step: str = ""  # prepare / load / predict / parity / quantize / profile / signature
    file: str = ""  # check-config: the bundle file the finding is about (relative to the checked directory)
    line: int | None = None  # check-config: its 1-based line, when the finding is about one
    where: str = ""  # the model's layers (and tf.function) that hold the ops the text names, e.g. an unsupported op
    remedies: tuple[RemedyTried, ...] = ()  # check: the remedies tried for it (--remedies auto)
    quoted: bool = False  # the text is a target runtime's own, verbatim (what the rules are matched on)

    @property
    def unknown(self) -> bool:
        """A target runtime's own text that no rule maps to a lesson (the catalog may grow toward it)."""
        return self.quoted and self.scenario is None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["remedies"] = [r.to_json() for r in self.remedies]
        return data

    def fixes(self) -> tuple[RemedyTried, ...]:
        """The remedies tried that worked: the only ones called a fix."""
        return tuple(r for r in self.remedies if r.verdict == "works")


@dataclass(frozen=True)
class LayerError:
    """The error of one layer's output, the converted model's tensor against Keras'."""

    layer: str
    tensor: str  # name of the converted model's tensor mapped to this layer
    max_abs: float
    rel_error: float  # ||got - want|| / ||want||
    sqnr_db: float
    passes: bool
    attribution: Literal["ok", "local", "accumulated"]
    #: the layer run alone on the same target and path, fed the reference's inputs to it (measured for
    #: the suspect layers only; None where not measured): its max |diff| and whether it passes alone
    local_max_abs: float | None = None
    local_passes: bool | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for k in ("max_abs", "rel_error", "sqnr_db", "local_max_abs"):
            if data[k] in (float("inf"), float("-inf")):
                data[k] = None if k != "sqnr_db" else ("inf" if data[k] > 0 else "-inf")
            elif isinstance(data[k], float) and data[k] != data[k]:  # NaN: JSON has none
                data[k] = "nan"
        return data


@dataclass
class Divergence:
    """Where outputs diverge: the first layer that fails while its inputs pass."""

    path: str  # which conversion path was localised: its label, e.g. "<target> int8"
    tolerance: dict[str, float]
    first_layer: str | None = None
    layers: list[LayerError] = field(default_factory=list)
    unmapped: list[str] = field(default_factory=list)  # Keras layers with no tensor in the converted model
    note: str = ""
    #: the suspect layers run alone: the first whose own (measured) error fails; None when none was
    #: measured or every measured one passes alone
    measured_first_layer: str | None = None
    measured: list[str] = field(default_factory=list)  # the layers run alone, in layer order

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "tolerance": self.tolerance, "first_layer": self.first_layer,
                "measured_first_layer": self.measured_first_layer, "measured": self.measured,
                "layers": [layer.to_json() for layer in self.layers], "unmapped": self.unmapped,
                "note": self.note}


@dataclass
class TargetReport:
    target: str
    verdict: Verdict = "deploys"
    reason: str = ""  # for skipped
    max_abs_diff: float | None = None
    findings: list[Finding] = field(default_factory=list)
    divergence: Divergence | None = None
    localised: list[Divergence] = field(default_factory=list)  # every path localised (divergence: the first)
    figures: dict[str, float] = field(default_factory=dict)  # sizes (bytes), latencies (s), per path/profile
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)  # per path: Parity.to_json()
    versions: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step ("prepare <path>", "load <path>"...)
    counts: dict[str, int] = field(default_factory=dict)  # costly things done: launches, loads, builds (harness.counts)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    def settle(self) -> None:
        """The verdict from the findings (skipped stays skipped)."""
        if self.verdict == "skipped":
            return
        if any(f.severity == "blocker" for f in self.findings):
            self.verdict = "fails"
        elif any(f.severity == "warning" for f in self.findings):
            self.verdict = "warnings"
        else:
            self.verdict = "deploys"

    def to_json(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "max_abs_diff": self.max_abs_diff,
                "findings": [f.to_json() for f in self.findings],
                "divergence": self.divergence.to_json() if self.divergence else
                {"first_layer": None, "layers": []},
                "localised": [d.to_json() for d in self.localised],
                "figures": self.figures, "parity": self.parity, "versions": self.versions,
                "seconds": round(self.seconds, 3), "timings": self.timings, "counts": self.counts}


@dataclass
class CheckReport:
    model: dict[str, Any]  # path, format, digest, inputs/outputs, parameters, layers
    inputs: dict[str, Any]  # how the sample inputs were made (file or synthesised, ranges)
    targets: dict[str, TargetReport] = field(default_factory=dict)
    created: str = ""
    seconds: float = 0.0
    trusted: bool = False  # --trust-model / trust=True: the model's own code was allowed to run
    findings: list[Finding] = field(default_factory=list)  # about the model file itself (the trust scan)
    runtime_log: str = ""  # what the runtimes printed (TensorFlow/XLA start-up, converters), kept off the terminal
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase of the whole check
    counts: dict[str, int] = field(default_factory=dict)  # the whole check's counts (its targets' included)

    @property
    def ok(self) -> bool:
        """True when the model file has no blocker and no requested target has one (skipped
        targets do not count against)."""
        return (not any(f.severity == "blocker" for f in self.findings)
                and all(t.verdict != "fails" for t in self.targets.values()))

    def trust_line(self) -> str:
        """One line on what the check let the model do (terminal and HTML)."""
        if self.trusted:
            return "model trusted (--trust-model): its own code (Lambda layers, Python ops) was allowed to run"
        if self.findings:
            return (f"model untrusted: the trust scan found {len(self.findings)} op(s) that touch the file system, "
                    "the network or Python; nothing was run (--trust-model runs it)")
        return "model untrusted: scanned, it carries no code beyond the runtimes' own ops"

    def unknown_texts(self) -> list[dict[str, str]]:
        """Every target runtime's text met in this check that no rule knows, once per (target, key),
        in the order met: ``target``, ``step``, ``source``, ``key`` (:func:`text_key`) and ``text``."""
        found: dict[tuple[str, str], dict[str, str]] = {}
        for name, target in self.targets.items():
            for f in target.findings:
                if f.unknown:
                    found.setdefault((name, text_key(f.text)), {"target": name, "step": f.step, "source": f.source,
                                                                 "key": text_key(f.text), "text": f.text})
        return list(found.values())

    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "created": self.created, "seconds": round(self.seconds, 3),
                "model": self.model, "inputs": self.inputs, "trusted": self.trusted,
                "findings": [f.to_json() for f in self.findings],
                "targets": {name: t.to_json() for name, t in self.targets.items()},
                "timings": self.timings, "counts": self.counts, "unknown_texts": self.unknown_texts(), "runtime_log": self.runtime_log}
