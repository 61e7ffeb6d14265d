"""``pitfalls check MODEL``: a pre-flight of a user's own model on every target.

Python API: ``check(path, targets=[...]) -> CheckReport`` (``report.ok``, ``report.to_json()``);
CLI: ``pitfalls check``; pytest fixture: ``pitfalls_check``.  See docs/check-schema.md.
"""

from harness.check.report import CheckReport, Finding, TargetReport
from harness.check.run import check

__all__ = ["CheckReport", "Finding", "TargetReport", "check"]
