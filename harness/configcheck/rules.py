"""A configuration rule: what it checks, the catalog lesson that teaches it, what backs it, the fix.

Each target's configuration module (``harness/targets/<t>/bundle.py``, ``webapp.py``, ``android.py``)
declares its rules as :class:`ConfigRule` records and makes every finding through one of them, so a
finding always names its rule's lesson (``pitfalls explain <scenario>``) and taxonomy node; the docs
list every rule (``docs/check-config.md``; a test keeps the two in step).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.check.report import Finding, Severity, Verified


@dataclass(frozen=True)
class ConfigRule:
    """One configuration rule of a target."""

    id: str  # "tfserving/relative-base-path": target, then what is wrong
    scenario: str | None  # the catalog scenario that reproduces the failure; None: no lesson covers it
    severity: Severity
    fix: str
    backed_by: str  # the runtime's text or the runtime source the rule follows (listed in the docs)

    @property
    def taxonomy(self) -> str | None:
        from harness.taxonomy import taxonomy_node_for

        return taxonomy_node_for(self.scenario) if self.scenario else None

    def finding(self, text: str, *, file: str, line: int | None = None, verified: Verified = "static",
                source: str = "", severity: Severity | None = None) -> Finding:
        """A finding of this rule about ``file`` (relative to the checked directory) at ``line``."""
        return Finding(severity=severity or self.severity, text=text, source=source or f"rule {self.id}",
                       verified=verified, taxonomy=self.taxonomy, scenario=self.scenario, fix=self.fix,
                       step=self.id, file=file, line=line)

    def runtime_finding(self, text: str, *, file: str, line: int | None = None, source: str,
                        lesson: str | None = None, fix: str = "", severity: Severity | None = None) -> Finding:
        """A verified finding in the runtime's own words; ``lesson`` is the scenario the text matches, when a
        runtime rule knows it (else the rule's own)."""
        from dataclasses import replace

        from harness.taxonomy import taxonomy_node_for

        scenario = lesson or self.scenario
        return replace(self.finding(text, file=file, line=line, verified="runtime", source=source, severity=severity),
                       scenario=scenario, taxonomy=taxonomy_node_for(scenario) if scenario else None,
                       fix=fix or self.fix)
