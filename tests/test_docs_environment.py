"""docs/cli.md's "Environment" list names every ``PITFALLS_*`` variable the code reads, and no other."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "cli.md"
VARIABLE = re.compile(r"\bPITFALLS_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
#: names that look like variables but are not read from the environment, with the reason
NOT_VARIABLES = {"PITFALLS_INDEX": "a JavaScript global of the lesson site (harness/site_assets)"}


def _code_variables() -> dict[str, str]:
    files = [*ROOT.glob("harness/**/*.py"), *ROOT.glob("harness/**/*.js"), ROOT / "run.sh",
             *ROOT.glob("scripts/*.sh"), *ROOT.glob(".ci/*"), *ROOT.glob("tests/conformance/*.py"),
             *ROOT.glob("bench/*.py")]
    found: dict[str, str] = {}
    for path in files:
        if path.is_file():
            for name in VARIABLE.findall(path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(name, str(path.relative_to(ROOT)))
    return {name: where for name, where in found.items() if name not in NOT_VARIABLES}


def _documented() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("\n## Environment\n", 1)[1].split("\n## ", 1)[0]
    return set(VARIABLE.findall(section))


def test_every_variable_the_code_reads_is_documented() -> None:
    missing = {name: where for name, where in _code_variables().items() if name not in _documented()}
    assert not missing, f"add these to the Environment list of {DOC.relative_to(ROOT)}: {missing}"


def test_every_documented_variable_is_read_somewhere() -> None:
    stale = _documented() - set(_code_variables())
    assert not stale, f"{DOC.relative_to(ROOT)} lists variables no code reads any more: {sorted(stale)}"
