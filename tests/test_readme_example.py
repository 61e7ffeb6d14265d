"""The README's one full example (finding -> localisation -> remedy -> reproducer), run as written.

The fenced block under "### One full example" is a shell session: each ``$ `` line a command, the
lines under it what that command printed (``...`` leaves lines out; a quoted line ending in `` ...``
is a prefix).  This test builds the model with the documented command, runs every command as a
person would (``pitfalls`` is ``python -m harness`` of this checkout; the reproducer in a fresh
process with a clean environment) in one scratch directory, and fails when a quoted line is no
longer printed, in that order.  Only a check's duration (``in 71.5s``) is not compared.  It also
reads what ``--report-dir`` wrote, so the example's claims hold beyond the terminal's wording.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from check_models import require_targets
from harness.paths import REPO_ROOT

README = REPO_ROOT / "README.md"
HEADING = "### One full example"
ELIDED = "..."
DURATION = re.compile(r" in \d+(\.\d+)?s$")


@dataclass
class Step:
    command: str
    quoted: list[str] = field(default_factory=list)


def example_steps(text: str) -> list[Step]:
    """The commands of the example's shell block and the lines quoted under each."""
    start = text.index(HEADING)
    block = re.search(r"```(?:console|sh)?\n(.*?)```", text[start:], re.S)
    assert block is not None, f"no code block under {HEADING!r}"
    steps: list[Step] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append(Step(line[2:].strip()))
        elif steps and line.strip() and line.strip() != ELIDED:
            steps[-1].quoted.append(line.rstrip())
    return steps


def _normal(line: str, here: Path) -> str:
    return DURATION.sub(" in …s", line.rstrip().replace(f"{here}/", ""))


def assert_quoted_in_order(quoted: list[str], printed: str, here: Path, command: str) -> None:
    lines = [_normal(line, here) for line in printed.splitlines()]
    at = 0
    for want in (_normal(q, here) for q in quoted):
        prefix = want.endswith(" " + ELIDED)
        stem = want[: -len(ELIDED)].rstrip() if prefix else want
        found = next((i for i in range(at, len(lines))
                      if (lines[i].startswith(stem) if prefix else lines[i] == stem)), None)
        assert found is not None, (f"README quotes a line `{command}` no longer prints (or not in this order):\n"
                                   f"{want}\n--- printed ---\n" + "\n".join(lines[-80:]))
        at = found + 1


def run_step(step: Step, here: Path) -> tuple[int, str]:
    """Run one command of the example in ``here``; its exit code and what it printed (stdout and stderr)."""
    command, _, echo = step.command.partition("; ")
    argv = shlex.split(command)
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(here / "home"), "PYTHONUNBUFFERED": "1"}
    (here / "home").mkdir(exist_ok=True)
    if argv[0] == "pitfalls":
        argv, env = [sys.executable, "-m", "harness", *argv[1:]], {**os.environ, "PYTHONPATH": str(REPO_ROOT),
                                                                   "PYTHONUNBUFFERED": "1"}
    elif argv[0] == "python" and argv[1].startswith("examples/"):  # the checkout's script, documented by path
        argv, env = [sys.executable, str(REPO_ROOT / argv[1]), *argv[2:]], clean
    else:  # the reproducer: any Python with the runtime, nothing of pitfalls
        assert argv[0] == "python", step.command
        argv, env = [sys.executable, *argv[1:]], clean
    done = subprocess.run(argv, cwd=here, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=1800)
    printed = done.stdout + (f"exit {done.returncode}\n" if echo == 'echo "exit $?"' else "")
    return done.returncode, printed


def test_the_readme_block_parses_into_the_four_steps() -> None:
    steps = example_steps(README.read_text(encoding="utf-8"))
    words = [shlex.split(s.command)[:2] for s in steps]
    assert [w[0] for w in words] == ["python", "pitfalls", "pitfalls", "python"], words
    assert words[1][1] == "check" and words[2][1] == "reduce"
    assert all(s.quoted for s in steps[1:]), "each of check, reduce and the reproducer quotes what it printed"


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path: Path) -> None:
    require_targets("litert")
    steps = example_steps(README.read_text(encoding="utf-8"))
    codes = []
    for step in steps:
        code, printed = run_step(step, tmp_path)
        assert_quoted_in_order(step.quoted, printed, tmp_path, step.command)
        codes.append(code)
    assert codes == [0, 0, 0, 1], codes  # built; check: warnings only; reduced; the reproducer shows it

    # what check wrote: the localised layer measured alone, the remedy that worked, the Model Explorer data
    report = json.loads((tmp_path / "report" / "check.json").read_text())
    litert = report["targets"]["litert"]
    divergence = next(d for d in litert["localised"] if d["path"] == "litert int8")
    assert divergence["measured_first_layer"] == divergence["first_layer"] == "spiky"
    finding = next(f for f in litert["findings"] if f["source"] == "litert int8")
    tried = {r["name"]: r for r in finding["remedies"]}
    assert tried["selective int8"]["verdict"] == tried["float16 instead"]["verdict"] == "works", tried
    assert "spiky" in tried["selective int8"]["change"] and "head" not in tried["selective int8"]["change"]
    assert list((tmp_path / "report").glob("model-explorer-*.json"))
    # what reduce wrote: one layer, the one check localised, diverging the same way in a fresh process
    record = json.loads((tmp_path / "repro" / "finding.json").read_text())
    assert record["layers"] == ["spiky"] and record["observed_by_reproducer"]["kind"] == "divergence"
