"""What a target declares to ``pitfalls reduce``: a :class:`Reproducer` in
``harness/targets/<name>/reproducer.py`` (``REPRODUCER``), found by :func:`reproducers`.

The target owns everything about its runtime: the findings it can reproduce (``paths``), the
standalone script that converts and runs a model with the runtime alone and prints what it saw
(``script``), what makes two observations "the same finding" (``key``) and the packages whose
versions a bug report needs.  The reducer owns the rest: slicing, the search, the output directory.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError

#: What a reproducer script saw, as it prints it (``REPRODUCER-RESULT {...}``): ``kind`` is
#: ``converter`` or ``runtime`` (with the runtime's own ``text``), ``divergence`` (with the figures),
#: ``none``; the reducer adds ``broken`` when the script itself could not run.
Observation = dict[str, Any]
#: the prefix of the line that carries a script's observation as JSON
RESULT_PREFIX = "REPRODUCER-RESULT "
#: the script's exit code when the finding shows (0 when it does not)
SHOWS_EXIT = 1


@dataclass(frozen=True)
class ScriptSpec:
    """What a script needs to know about the model beside it."""

    keras_module: str  # "keras" or "tf_keras": the module that loads the model file
    model_file: str  # "model.keras" or "model.h5"
    input_names: tuple[str, ...]  # one inputs/<name>.npy each, in the model's input order


@dataclass(frozen=True)
class Reproducer:
    """A target's standalone reproducers, one per finding path it can reproduce."""

    target: str
    paths: Mapping[str, str]  # path name -> what the script does on it
    script: Callable[[str, ScriptSpec], str]  # (path, spec) -> the script's source
    key: Callable[[Observation], tuple[str, ...]]  # equal keys: the same finding
    describe: Callable[[Observation], str]  # one line for a person
    packages: tuple[str, ...]  # pip distributions whose versions a bug report records
    requirements: str  # what the script needs to run, for the README


def reproducers() -> dict[str, Reproducer]:
    """Every target's declared reproducer, by target name (a target without ``reproducer.py`` has none)."""
    from harness.targets import TARGET_NAMES

    found: dict[str, Reproducer] = {}
    for name in TARGET_NAMES:
        module_name = f"harness.targets.{name}.reproducer"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        found[name] = module.REPRODUCER
    return found


def finding_names(found: Mapping[str, Reproducer]) -> list[str]:
    """``TARGET:PATH`` for every reproducible finding."""
    return [f"{target}:{path}" for target, reproducer in found.items() for path in reproducer.paths]


def parse_finding(text: str, found: Mapping[str, Reproducer]) -> tuple[Reproducer, str]:
    """``TARGET:PATH`` (or ``check``'s label ``TARGET PATH``) -> (reproducer, path); else a UsageError."""
    target, _, path = text.replace(" ", ":", 1).partition(":")
    known = ", ".join(finding_names(found))
    if target not in found:
        raise UsageError(f"--finding {text!r}: no reproducer for target {target!r}; reproducible findings: {known}")
    if path not in found[target].paths:
        raise UsageError(f"--finding {text!r}: {target} has no path {path!r}; reproducible findings: {known}")
    return found[target], path
