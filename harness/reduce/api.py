"""What a target declares to ``pitfalls reduce``: a :class:`Reproducer` in
``harness/targets/<name>/reproducer.py`` (``REPRODUCER``), found by :func:`reproducers`.

The target owns everything about its runtime: the findings it can reproduce (``paths``), the
standalone script that converts and runs a model with the runtime alone and prints what it saw
(``script``), what makes two observations "the same finding" (``key``) and the packages whose
versions a bug report needs.  The reducer owns the rest: slicing, the search, the output directory.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
class StagedWhole:
    """What a target wrote for a whole-model reproducer (:attr:`Reproducer.whole`), and how it is run here."""

    model_file: str  # the file or directory of the model, as the reproducer holds it
    args: tuple[str, ...] = ()  # the script's arguments for the run here (e.g. the local image)
    ran_here: str = ""  # one sentence for the README: what the script ran against here
    versions: Mapping[str, str] = field(default_factory=dict)  # beside the packages' versions
    files: Mapping[str, str] = field(default_factory=dict)  # the README's lines on the files it wrote beyond the model


@dataclass(frozen=True)
class WholeModel:
    """A target whose findings are the deployed model's as a whole (its served signature, its state):
    ``reason`` why no layers are cut, ``stage(model, feed, directory, path)`` writes the model as the
    target deploys it, the inputs and whatever else the script reads into ``directory``."""

    reason: str
    stage: Callable[[Any, Mapping[str, Any], Path, str], StagedWhole]


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
    #: the paths whose script calibrates on ``calibration/`` when it is there (int8): reduce writes the
    #: sample there when it feeds one of check's probes, as check calibrates on its sample
    calibrated: tuple[str, ...] = ()
    #: set for a target whose reproducer is always the whole model as it deploys it (no cutting)
    whole: WholeModel | None = None


def reproducers() -> dict[str, Reproducer]:
    """Every target's declared reproducer, by target name (a target without ``reproducer.py`` has none)."""
    from harness.targets import TARGET_NAMES

    found: dict[str, Reproducer] = {}
    for name in TARGET_NAMES:
        module_name = f"harness.targets.{name}.reproducer"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # no reproducer.py (or a target declared outside harness/targets/)
            if not exc.name or not module_name.startswith(exc.name):
                raise
            continue
        found[name] = module.REPRODUCER
    return found


def finding_names(found: Mapping[str, Reproducer]) -> list[str]:
    """``TARGET:PATH`` for every reproducible finding."""
    return [f"{target}:{path}" for target, reproducer in found.items() for path in reproducer.paths]


def parse_finding(text: str, found: Mapping[str, Reproducer]) -> tuple[Reproducer, str]:
    """``TARGET:PATH`` (or ``check``'s label ``TARGET PATH``; a bare ``TARGET``, check's label of the
    common path, is the target's first path) -> (reproducer, path); else a UsageError."""
    target, _, path = text.strip().replace(" ", ":", 1).partition(":")
    known = ", ".join(finding_names(found))
    if target not in found:
        raise UsageError(f"--finding {text!r}: no reproducer for target {target!r}; reproducible findings: {known}")
    path = path or next(iter(found[target].paths))
    if path not in found[target].paths:
        raise UsageError(f"--finding {text!r}: {target} has no path {path!r}; reproducible findings: {known}")
    return found[target], path


#: the line of a script template that holds its settings (replaced by :func:`filled_script`)
SETTINGS_LINE = re.compile(r"^SETTINGS: dict\[str, Any\] = \{.*?\}\n", re.S | re.M)


#: the line of a script template that imports the shared part (replaced by that part's code)
COMMON_IMPORT = re.compile(r"^from harness\.reduce\.script_common import (?:\([\w,\s]+\)|[\w, ]+)\n", re.M)


def common_script_part() -> str:
    """:mod:`harness.reduce.script_common`'s code without its docstring, to paste into a script."""
    source = Path(__file__).with_name("script_common.py").read_text(encoding="utf-8")
    body = source.split('"""', 2)[2].lstrip("\n")
    return "# the part every pitfalls reproducer script shares\n" + body


def filled_script(template: Path, settings: Mapping[str, Any]) -> str:
    """A target's script template with its ``SETTINGS: dict[str, Any] = {...}`` statement replaced by
    ``settings`` (plain strings, numbers, booleans and lists, written as Python literals) and its
    import of :mod:`harness.reduce.script_common` replaced by that module's code: the script
    imports nothing of pitfalls."""
    source = template.read_text(encoding="utf-8")
    source, imported = COMMON_IMPORT.subn(lambda _: common_script_part(), source, count=1)
    if imported != 1:
        raise ValueError(f"{template} does not import harness.reduce.script_common (its shared part)")
    filled, count = SETTINGS_LINE.subn(lambda _: f"SETTINGS: dict[str, Any] = {dict(settings)!r}\n", source, count=1)
    if count != 1:
        raise ValueError(f"{template} has no `SETTINGS: dict[str, Any] = {{...}}` statement to fill in")
    return filled


def describe_observation(found: Observation, key: Callable[[Observation], tuple[str, ...]], runtime: str) -> str:
    """One line for a person: an error's kind, type, key sentence and ops; a divergence's figures."""
    kind = found.get("kind")
    if kind in ("converter", "runtime"):
        _, error, sentence, ops = key(found)
        return f"{kind} error {error}: {sentence}" + (f" ({ops})" if ops else "")
    if kind == "divergence":
        if found.get("max_abs_diff") is None:
            return f"divergence: {found.get('text', 'output shapes differ')}"
        return f"divergence: max |{runtime} - Keras| {found['max_abs_diff']:.4g} > {found['bound']:.4g}"
    if kind == "none":
        return (f"no finding: max |{runtime} - Keras| {found.get('max_abs_diff', 0.0):.4g} "
                f"<= {found.get('bound', 0.0):.4g}")
    return f"{kind}: {str(found.get('text', ''))[:300]}"


def error_key(found: Observation, sentences: Sequence[re.Pattern[str]], op_name: re.Pattern[str]) -> tuple[str, ...]:
    """The same finding, for a target whose ``sentences`` say what went wrong and whose ``op_name``
    finds the ops a text names: the same kind; for an error, the same error type, the first key
    sentence found (else the first line, numbers and MLIR locations blanked) and the same set of
    ops (locations, tensor shapes, node numbers may differ); for a divergence, beyond the same
    tolerance (the script's, fixed per path)."""
    kind = str(found.get("kind"))
    if kind not in ("converter", "runtime"):
        return (kind,)
    text = str(found.get("text", ""))
    sentence = next((m.group(0) for pattern in sentences if (m := pattern.search(text))), None)
    if sentence is None:
        first = next((line for line in text.splitlines() if line.strip()), "")
        sentence = re.sub(r"\d+", "N", re.sub(r"loc\(.*?\)", "", first)).strip()[:200]
    ops = sorted({next((g for g in m.groups() if g), m.group(0)) for m in op_name.finditer(text)})
    return (kind, str(found.get("error", "")), sentence, ",".join(ops))


def error_keyed(sentences: Sequence[re.Pattern[str]], op_name: re.Pattern[str],
                runtime: str) -> tuple[Callable[[Observation], tuple[str, ...]], Callable[[Observation], str]]:
    """A target's ``(key, describe)`` from the sentences its runtime says what went wrong with and
    the pattern of the ops it names (:func:`error_key`, :func:`describe_observation`)."""
    def key(found: Observation) -> tuple[str, ...]:
        return error_key(found, sentences, op_name)

    def describe(found: Observation) -> str:
        return describe_observation(found, key, runtime)

    return key, describe
