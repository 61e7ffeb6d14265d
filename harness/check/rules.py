"""Which known pitfall a runtime's text is: patterns over the texts, each naming its catalog lesson.

The rules are data, declared by each target package with its check paths
(``harness/targets/<name>/checks.py``, :attr:`harness.check.steps.TargetChecks.rules`).  A rule's
``scenario`` is the catalog scenario that reproduces the same text on a tiny model, so the user can
run ``pitfalls explain <scenario>``; its taxonomy node is derived from the scenario id (tests check
that every rule names a scenario that exists and targets the same runtime).  A text that no rule
knows is still reported, verbatim, as a finding without a lesson.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.check.report import Severity


@dataclass(frozen=True)
class Rule:
    target: str
    pattern: str  # a regular expression searched in the runtime's text
    scenario: str
    fix: str
    severity: Severity = "blocker"

    @property
    def taxonomy(self) -> str | None:
        from harness.taxonomy import taxonomy_node_for

        return taxonomy_node_for(self.scenario)


def all_rules() -> tuple[Rule, ...]:
    """Every declared target's rules, in the order of :data:`harness.targets.TARGETS`."""
    from harness.targets import TARGET_NAMES, target_checks

    found: list[Rule] = []
    for name in TARGET_NAMES:
        checks = target_checks(name)
        found.extend(checks.rules if checks is not None else ())
    return tuple(found)


def rule_for(target: str, text: str) -> Rule | None:
    from harness.targets import TARGET_NAMES, target_checks

    if target not in TARGET_NAMES:  # a made-up or removed target declares no rules
        return None
    checks = target_checks(target)
    for rule in checks.rules if checks is not None else ():
        if rule.target == target and re.search(rule.pattern, text, flags=re.DOTALL):
            return rule
    return None
