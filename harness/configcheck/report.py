"""What ``pitfalls check-config`` reports (schema ``pitfalls-check-config/1``, docs/check-config.md).

The findings are :class:`harness.check.report.Finding` records, the same as ``pitfalls check``'s,
with ``file`` and ``line`` set: one finding model for both tools.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.check.report import SEVERITIES, Finding

SCHEMA = "pitfalls-check-config/1"


@dataclass
class BundleReport:
    """One kind of deployment bundle found in one checked directory."""

    path: str  # the directory as given
    kind: str  # tfserving / tfjs / litert
    pieces: dict[str, list[str]]  # role -> files (relative to ``path``)
    verified: str = "not asked"  # "yes" / "skipped: <why>" / "not asked"
    seconds: float = 0.0
    #: what the runtime measured besides the findings (e.g. a web app's pages: load and first-predict times,
    #: tf.memory().numTensors before each prediction), one mapping per run
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "pieces": self.pieces, "verified": self.verified,
                "seconds": round(self.seconds, 3), "runs": self.runs}


@dataclass
class ConfigReport:
    paths: list[str]
    bundles: list[BundleReport] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    created: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.severity == "blocker" for f in self.findings)

    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def sorted_findings(self) -> list[Finding]:
        """Blockers first, then by file and line."""
        return sorted(self.findings, key=lambda f: (SEVERITIES.index(f.severity), f.file, f.line or 0))

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "created": self.created, "seconds": round(self.seconds, 3), "paths": self.paths,
                "ok": self.ok, "bundles": [b.to_json() for b in self.bundles],
                "findings": [f.to_json() for f in self.sorted_findings()]}
