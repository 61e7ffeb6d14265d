"""Type-check the harness and every scenario file with mypy: ``python -m harness.typecheck``.

One mypy invocation cannot take the whole scenario tree: its directories are not packages (their
names have dashes), so mypy names each file by its base name, and several share one
(``procedure.py``, ``litert.py``, ...).  So this runs mypy once over ``harness/`` and then over
the scenario files in batches whose base names are unique, with ``--follow-imports=silent`` so
that an error in the harness is counted once.  The settings are pyproject's ``[tool.mypy]``.

Prints mypy's error lines, then one summary line with the error count and the time; exits 1 on
any error (2 when mypy itself could not run).  ``python -m harness.typecheck PATH...`` checks only
the scenario files under the paths given.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from harness.paths import REPO_ROOT, SCENARIO_ROOT

ERROR_LINE = re.compile(r"^(?P<path>[^:\n]+):\d+(?::\d+)?: error: ")


def scenario_batches(files: Sequence[Path]) -> list[list[Path]]:
    """Split files into as few batches as the most shared base name needs, no base name twice in one."""
    batches: list[list[Path]] = []
    for path in sorted(files):
        batch = next((b for b in batches if all(p.name != path.name for p in b)), None)
        if batch is None:
            batch = []
            batches.append(batch)
        batch.append(path)
    return batches


def run_mypy(targets: Sequence[str], *, silent_imports: bool) -> tuple[int, list[str]]:
    """mypy's exit code and its output lines (without its own summary line).

    The batches share mypy's cache (``.mypy_cache``), keyed by module name: a ``procedure`` module
    cached from one batch is re-checked in the next because its content hash differs.
    """
    cmd = [sys.executable, "-m", "mypy", "--no-error-summary", "--no-pretty"]
    if silent_imports:
        cmd.append("--follow-imports=silent")
    proc = subprocess.run([*cmd, *targets], cwd=REPO_ROOT, capture_output=True, text=True)
    return proc.returncode, [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]


def _relative(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(resolved)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.typecheck", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="scenario files or directories to check (default: harness/ and scenarios/)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    roots = args.paths or [SCENARIO_ROOT]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        print(f"typecheck: error: no such file or directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    scenario_files = sorted({f.resolve() for p in roots for f in ([p] if p.is_file() else p.rglob("*.py"))
                             if "__pycache__" not in f.parts})
    runs: list[tuple[list[str], bool]] = [] if args.paths else [(["harness"], False)]
    runs += [([_relative(p) for p in batch], True) for batch in scenario_batches(scenario_files)]
    errors: list[str] = []
    crashed = ""
    for targets, silent in runs:
        code, lines = run_mypy(targets, silent_imports=silent)
        for line in lines:
            print(line)
        found = [ln for ln in lines if ERROR_LINE.match(ln)]
        errors += found
        if code not in (0, 1) or (code == 1 and not found):
            crashed = lines[-1] if lines else f"mypy exited with code {code}"
    files = {m.group("path") for m in map(ERROR_LINE.match, errors) if m}
    where = (f"{'' if args.paths else 'harness/ and '}{len(scenario_files)} scenario files, {len(runs)} mypy "
             f"run{'s' if len(runs) != 1 else ''}")
    took = f"{time.monotonic() - started:.1f} s"
    if crashed:
        print(f"typecheck: mypy could not run: {crashed} ({where}, {took})", file=sys.stderr)
        return 2
    if errors:
        print(f"typecheck: {len(errors)} error(s) in {len(files)} file(s) ({where}) in {took}")
        return 1
    print(f"typecheck: 0 errors ({where}) in {took}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
