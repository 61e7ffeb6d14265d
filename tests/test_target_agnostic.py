"""The tools name no target: ``harness/check/``, ``harness/diff.py``, ``harness/matrix/`` and
``harness/reduce/`` learn every target, backend and package from the declarations
(:mod:`harness.targets`), so adding one touches none of them (issue 20).

Token level, comments and docstrings included, case-insensitive: a file is cut into runs of letters
and digits (``ai-edge-litert`` gives ``litert``, ``litert_tensors`` gives ``litert``, ``WebGL`` gives
``webgl``), and no run may be a target's name or a tf.js backend's name.  ``cpu`` is left out: it is
a plain word before it is a backend.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.paths import REPO_ROOT
from harness.targets import TARGET_NAMES
from harness.targets.tfjs.backends import backend_names

TOOLS = (REPO_ROOT / "harness" / "check", REPO_ROOT / "harness" / "diff.py", REPO_ROOT / "harness" / "matrix",
         REPO_ROOT / "harness" / "reduce")
PLAIN_WORDS = {"cpu"}


def forbidden() -> set[str]:
    return {*TARGET_NAMES, *backend_names()} - PLAIN_WORDS


def named_targets(text: str) -> list[tuple[int, str]]:
    """(line, token) of every token of ``text`` that is a target's or a backend's name."""
    names = forbidden()
    return [(number, token) for number, line in enumerate(text.splitlines(), 1)
            for token in re.findall(r"[A-Za-z0-9]+", line) if token.lower() in names]


def tool_files() -> list[Path]:
    return sorted(p for root in TOOLS for p in ([root] if root.is_file() else root.rglob("*.py")))


def test_the_tools_name_no_target_or_backend() -> None:
    offenders = [f"{path.relative_to(REPO_ROOT)}:{line}: {token}" for path in tool_files()
                 for line, token in named_targets(path.read_text(encoding="utf-8"))]
    assert len(tool_files()) > 10
    assert not offenders, "tools that name a target or backend (declare it in harness/targets/<name>/):\n" + \
        "\n".join(offenders)


def test_the_token_check_can_fail() -> None:
    """What it catches: a package name, an identifier, a word in a comment, any case; not a longer word."""
    sample = ('PACKAGE = "ai-edge-litert"\ndef litert_tensors(): ...\n# runs on WebGL\n'
              'x = "tensorflowjs"  # coremltools\nDEVICE = "cpu"\n')
    assert named_targets(sample) == [(1, "litert"), (2, "litert"), (3, "WebGL")]
