"""``pitfalls reduce MODEL --finding TARGET:PATH --out DIR``: the smallest slice of the model's layers
that still shows the finding, written as a standalone reproducer.

The model passes the trust gate and is loaded as ``check`` loads it; the inputs are the check's
(``--inputs`` or synthesised).  Each candidate window of layers is rebuilt as a model of its own
(:mod:`harness.reduce.slicing`), written with the reference's inputs to it and the target's script,
and observed by that very script (:mod:`harness.reduce.oracle`); a window shows the finding when
the target's ``key`` of what the script saw equals the key on the whole model.  The window the
search keeps (:mod:`harness.reduce.search`) is run once more as a person would, ``python
reproduce.py`` in a fresh process, and must fail the same way; only then is the directory renamed
into place (nothing half-written).
"""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.check.model import PROBES
from harness.errors import HarnessError, UsageError
from harness.reduce.api import Observation, Reproducer, ScriptSpec, StagedWhole, parse_finding, reproducers
from harness.reduce.oracle import ScriptWorker, run_fresh
from harness.reduce.search import smallest_window
from harness.reduce.slicing import Slice, Window, build_slice, keras_module_of, sliceable_layers

Progress = Callable[[str], None]
SCRIPT = "reproduce.py"

#: exit codes of ``pitfalls reduce`` (docs/reduce.md)
REDUCED = 0  # a reproducer of fewer layers than the model, written
NOT_SHOWN = 1  # the whole model does not show the finding: nothing to reduce, nothing written
WHOLE_ONLY = 3  # only the whole model shows it: the reproducer written is the whole model
COULD_NOT_RUN = 4  # the reduction failed (a script broke on the whole model, a worker died): nothing written

#: what a script saw when the finding does not show: nothing beyond tolerance, or the runtime refused
#: to run here (coremltools predicts on macOS only) and so nothing could be compared
NOTHING_SHOWN = ("none", "skipped")
#: the inputs reduce feeds by default: check's sample (``--inputs`` or synthesised)
SAMPLE = "sample"


@dataclass
class ReduceResult:
    """What the reduction found and wrote."""

    finding: str
    observed: Observation  # on the whole model
    layers_total: int
    window: Window | None = None
    layers: list[str] = field(default_factory=list)
    reproduced: Observation | None = None  # the written script, run fresh
    candidates: int = 0
    out: Path | None = None
    message: str = ""

    probe: str = SAMPLE  # the inputs fed: check's sample or one of its synthetic probes
    cannot_reduce: str = ""  # why no layers could be cut (a SavedModel): the whole model is the reproducer
    calibration_file: str = ""  # the name of the --calibration set int8 is calibrated on (else the sample)

    def exit_code(self) -> int:
        if self.cannot_reduce:
            return WHOLE_ONLY if self.out is not None else NOT_SHOWN
        if self.window is None:
            return NOT_SHOWN
        return REDUCED if len(self.window) < self.layers_total else WHOLE_ONLY


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty directory unless ``overwrite``: one line, exit 2."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file is there; give a directory (it is created)")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UsageError(f"--out {out}: the directory is not empty; give another one, or --overwrite to replace it")


#: a finding as check labels one that showed on a further probe: ``TARGET PATH [wide]``
PROBE_LABEL = re.compile(r"^(?P<finding>.*?)\s*\[(?P<probe>[^\]]*)\]\s*$")


#: the "probe" of a finding check showed on its ``--calibration`` set (labelled ``[--calibration cal.npz]``)
CALIBRATION_PROBE = "calibration"


def split_probe(finding: str, probe: str | None, calibration: str | Path | None = None) -> tuple[str, str]:
    """``(finding, probe)``: the probe check's label names after the path (``TARGET PATH [wide]``;
    ``[--calibration cal.npz]``, with ``calibration`` that file: :data:`CALIBRATION_PROBE`), else
    ``probe``, else the sample; a label's probe other than ``probe``: UsageError."""
    from harness.check.model import PROBES

    named = PROBE_LABEL.match(finding)
    if named is not None:
        labelled = named.group("probe").strip()
        if labelled.startswith("--calibration "):
            given = labelled[len("--calibration "):].strip()
            if calibration is None or Path(calibration).name != given:
                raise UsageError(f"--finding {finding!r}: check showed it on its --calibration set {given}; "
                                 f"give that file with --calibration")
            labelled = CALIBRATION_PROBE
        elif labelled not in PROBES:
            raise UsageError(f"--finding {finding!r}: [{labelled}] is not one of check's synthetic probes "
                             f"({', '.join(PROBES)}); for check's --inputs arrays pass that file with --inputs, "
                             "for its --calibration set --calibration")
        if probe is not None and probe != labelled:
            raise UsageError(f"--finding {finding!r} names the probe {labelled!r} but --probe says {probe!r}; "
                             "give one of them")
        return named.group("finding"), labelled
    return finding, probe or SAMPLE


def probe_feeds(model: Any, inputs: str | Path | None, probe: str,
                calibration: str | Path | None = None) -> "tuple[dict[str, Any], dict[str, Any] | None]":
    """``(fed, calibration set)``: what check feeds on ``probe`` (the sample itself, check's own
    :func:`harness.check.model.synthesise_probes`, or the ``--calibration`` set) and the set int8 is
    calibrated on as check calibrates it: the ``--calibration`` set when given, else the sample
    (None when that is the fed inputs themselves)."""
    from harness.check.model import PROBES, read_inputs, synthesise_inputs, synthesise_probes

    sample = read_inputs(Path(inputs), model) if inputs is not None else synthesise_inputs(model)
    given = read_inputs(Path(calibration), model) if calibration is not None else None
    if probe == CALIBRATION_PROBE:
        if given is None:
            raise UsageError(f"--probe {CALIBRATION_PROBE}: give the set with --calibration FILE.npz")
        return given, None
    if probe == SAMPLE:
        return sample, given
    if probe not in PROBES:
        raise UsageError(f"--probe {probe!r}: choose from {SAMPLE}, {', '.join(PROBES)}, {CALIBRATION_PROBE}")
    probes = synthesise_probes(model)
    if probe not in probes:
        raise UsageError(f"--probe {probe}: on this model it feeds exactly the sample, so check does not run it; "
                         f"use --probe {SAMPLE}")
    return probes[probe], given if given is not None else sample


def reduce_model(path: str | Path, finding: str, out: str | Path, *, inputs: str | Path | None = None,
                 probe: str | None = None, calibration_file: str | Path | None = None,
                 imports: Sequence[str] = (), trust: bool = False,
                 overwrite: bool = False, progress: Progress | None = None) -> ReduceResult:
    """Reduce the model at ``path`` to the smallest slice that shows ``finding`` (on check's
    ``probe``: the sample by default, or the probe check's label names) and write the reproducer to
    ``out`` (see the module's docstring and docs/reduce.md)."""
    from harness.check.model import keras_feed, load_model
    from harness.targets.base import ModelSource
    from harness.trust import ModelRefused, model_concerns

    say = progress or (lambda message: None)
    finding, probe = split_probe(finding, probe, calibration_file)
    reproducer, finding_path = parse_finding(finding, reproducers())
    out_dir = Path(out).absolute()  # the worker runs the candidates from its own directory
    check_out_dir(out_dir, overwrite)
    source = ModelSource.from_path(path, trusted=trust, imports=tuple(imports))
    if not trust:
        concerns = model_concerns(source)
        if concerns:
            raise ModelRefused(source.path, concerns)
    say(f"loading {source.path} ({source.format})")
    model = load_model(source)
    feed, calibration = probe_feeds(model, inputs, probe, calibration_file)
    if finding_path not in reproducer.calibrated:
        if calibration_file is not None and probe != CALIBRATION_PROBE:
            say(f"--calibration: {reproducer.target}:{finding_path} calibrates on nothing (only "
                f"{', '.join(reproducer.calibrated) or 'no path of this target'} does); the set is not used")
        calibration = None  # this path calibrates on nothing
    calibration_name = Path(calibration_file).name if calibration_file is not None else ""
    calibrated_on = f"the --calibration set {calibration_name}" if calibration_name else "the sample"
    if probe == CALIBRATION_PROBE:
        say(f"feeding {calibrated_on}, as check feeds it")
    elif probe != SAMPLE or calibration is not None:
        say(f"feeding check's {probe}{' probe' if probe != SAMPLE else ''}"
            + (f"; calibrating on {calibrated_on}, as check does" if calibration else ""))
    if reproducer.whole is not None:
        return whole_deployed(model, feed, probe, reproducer, finding_path, out_dir, Path(out), say)
    if model.keras_model is None:
        return whole_saved_model(model.source.path, feed, calibration, probe, reproducer, finding_path, out_dir,
                                 Path(out), say, calibration_name)
    keras_model = model.keras_model
    layers = sliceable_layers(keras_model)
    label = f"{reproducer.target}:{finding_path}"
    module = keras_module_of(keras_model).__name__
    spec_of = lambda names: ScriptSpec(module, "model.keras" if module == "keras" else "model.h5",  # noqa: E731
                                       tuple(names))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reduce-", dir=out_dir.parent) as scratch:
        work = Path(scratch)
        built: dict[Window, Slice] = {}

        def candidate(window: Window) -> Path:
            made = build_slice(keras_model, window, feed, keras_feed(model, feed))
            built[window] = made
            directory = work / "candidates" / f"{window.start}-{window.stop}"
            write_candidate(directory, made, reproducer.script(finding_path, spec_of(made.input_names)),
                            spec_of(made.input_names))
            if calibration is not None:  # the sample's values at the same boundary
                write_arrays(directory / CALIBRATION,
                             build_slice(keras_model, window, calibration, keras_feed(model, calibration)).inputs)
            return directory

        result = ReduceResult(label, {}, len(layers), probe=probe, calibration_file=calibration_name)
        with ScriptWorker(work / "home") as worker:
            def observe(window: Window) -> Observation:
                result.candidates += 1
                try:
                    directory = candidate(window)
                except Exception as exc:  # noqa: BLE001 - a window Keras cannot rebuild shows nothing
                    return {"kind": "broken", "text": f"{type(exc).__name__}: {exc}"}
                found = worker.observe(directory / SCRIPT, directory)
                names = built[window].layers
                say(f"layers {window.start}..{window.stop - 1} ({names[0]}..{names[-1]}): "
                    f"{reproducer.describe(found)}")
                return found

            whole = Window(0, len(layers))
            result.observed = observe(whole)
            if result.observed.get("kind") == "broken":
                raise HarnessError(f"the {label} reproducer could not run on the whole model rebuilt from its layers",
                                   evidence=str(result.observed.get("text", ""))[-3000:],
                                   hint="the slice or the script failed before the runtime was reached")
            wanted = reproducer.key(result.observed)
            if result.observed.get("kind") in NOTHING_SHOWN:
                result.message = not_shown(label, reproducer, result.observed, probe)
                return result
            window = smallest_window(len(layers), lambda w: reproducer.key(observe(w)) == wanted)
        chosen = work / "candidates" / f"{window.start}-{window.stop}"
        say(f"kept layers {window.start}..{window.stop - 1}; running {SCRIPT} in a fresh process")
        code, again, output = run_fresh(chosen / SCRIPT, work / "fresh")
        if reproducer.key(again) != wanted:
            raise HarnessError(f"the reproducer of layers {window.start}..{window.stop - 1} did not show the same "
                               f"finding in a fresh process ({reproducer.describe(again)})",
                               evidence=output[-3000:], hint="this is a bug of pitfalls reduce: please report it")
        result.window, result.layers, result.reproduced = window, built[window].layers, again
        write_report(chosen, result, reproducer, finding_path, model.source.path, spec_of(()).model_file, code)
        _move_into_place(chosen, out_dir)
        result.out = out_dir
    whole_only = result.exit_code() == WHOLE_ONLY
    result.message = (f"{label}: {'only the whole model shows it' if whole_only else 'reduced'} to "
                      f"{len(result.layers)} of {result.layers_total} layers ({', '.join(result.layers)}) "
                      f"after {result.candidates} candidates; wrote {out}")
    return result


def not_shown(label: str, reproducer: Reproducer, seen: Observation, probe: str) -> str:
    """What reduce says when the whole model shows nothing: the runtime's refusal to run here (then
    nothing could be compared), or nothing beyond tolerance on ``probe`` and check's other inputs to try."""
    if seen.get("kind") == "skipped":
        return (f"{label}: nothing could be compared here ({reproducer.describe(seen)}); "
                "nothing to reduce, nothing written")
    others = [name for name in (SAMPLE, *PROBES) if name != probe]
    return (f"{label}: the model does not show a finding ({reproducer.describe(seen)}); nothing to reduce, nothing "
            f"written (fed check's {probe}; if check showed it on another of its inputs, as in "
            f"`{label.replace(':', ' ', 1)} [{next(iter(PROBES))}]`, pass --probe {'|'.join(others)})")


#: what reduce says of a SavedModel (check loads it as its serving signature: no layer graph)
CANNOT_CUT = ("cannot reduce: a SavedModel has no Keras layer graph to cut (it is loaded as its serving_default "
              "signature, as a tf.Module saved with tf.saved_model.save or model.export is)")


def whole_saved_model(path: Path, feed: dict[str, Any], calibration: dict[str, Any] | None, probe: str,
                      reproducer: Reproducer, finding_path: str, out_dir: Path, shown_out: Path,
                      say: Progress, calibration_name: str = "") -> ReduceResult:
    """A SavedModel: no layers to cut, so the reproducer is the whole SavedModel, its inputs and the
    target's script, run once in a fresh process (exit 3 when it shows the finding, 1 when not)."""
    def stage(staged: Path) -> StagedWhole:
        copy_saved_model(path, staged / "saved_model")
        write_arrays(staged / "inputs", feed)
        if calibration is not None:
            write_arrays(staged / CALIBRATION, calibration)
        return StagedWhole("saved_model")

    return written_whole(CANNOT_CUT, stage, tuple(feed), path, probe, reproducer, finding_path, out_dir, shown_out,
                         say, calibration_name)


def whole_deployed(model: Any, feed: dict[str, Any], probe: str, reproducer: Reproducer, finding_path: str,
                   out_dir: Path, shown_out: Path, say: Progress) -> ReduceResult:
    """A target whose reproducer is always the whole model as it deploys it (:attr:`Reproducer.whole`):
    the target writes it, then the script runs once in a fresh process (exit 3 when it shows, 1 when not)."""
    whole = reproducer.whole
    assert whole is not None
    return written_whole(whole.reason, lambda staged: whole.stage(model, feed, staged, finding_path), tuple(feed),
                         model.source.path, probe, reproducer, finding_path, out_dir, shown_out, say)


def written_whole(reason: str, stage: Callable[[Path], StagedWhole], input_names: tuple[str, ...], path: Path,
                  probe: str, reproducer: Reproducer, finding_path: str, out_dir: Path, shown_out: Path,
                  say: Progress, calibration_name: str = "") -> ReduceResult:
    """The whole-model reproducer ``stage`` writes, with the target's script, run once in a fresh
    process and renamed into place when it shows the finding."""
    label = f"{reproducer.target}:{finding_path}"
    say(f"{reason}; trying the whole model")
    result = ReduceResult(label, {}, 0, cannot_reduce=reason, candidates=1, probe=probe,
                          calibration_file=calibration_name)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reduce-", dir=out_dir.parent) as scratch:
        staged = Path(scratch) / "reproducer"
        staged.mkdir()
        done = stage(staged)
        spec = ScriptSpec("saved_model", done.model_file, input_names)
        (staged / SCRIPT).write_text(reproducer.script(finding_path, spec), encoding="utf-8")
        code, seen, output = run_fresh(staged / SCRIPT, Path(scratch) / "fresh", args=done.args)
        say(f"whole model: {reproducer.describe(seen)}")
        if seen.get("kind") == "broken":
            raise HarnessError(f"the {label} reproducer could not run on the whole model", evidence=output[-3000:],
                               hint="the script failed before the runtime was reached (its own words are above)")
        result.observed = seen
        if seen.get("kind") in NOTHING_SHOWN:
            result.message = not_shown(label, reproducer, seen, probe)
            return result
        result.window, result.reproduced = Window(0, 0), seen
        write_report(staged, result, reproducer, finding_path, path, done.model_file, code, done)
        _move_into_place(staged, out_dir)
        result.out = out_dir
    result.message = (f"{label}: {reason}; the reproducer is the whole model "
                      f"({reproducer.describe(seen)}); wrote {shown_out}")
    return result


def copy_saved_model(source: Path, target: Path) -> None:
    """The SavedModel's directories and regular files; a symbolic link in it is refused (it could
    carry a file from outside the model into the reproducer a user sends upstream)."""
    for current, dirs, files in os.walk(source, followlinks=False):
        here = Path(current)
        for name in dirs + files:
            if (here / name).is_symlink():
                raise UsageError(f"{here / name}: a symbolic link inside the SavedModel; reduce copies the model "
                                 "into the reproducer: give a copy without links")
        (target / here.relative_to(source)).mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.copyfile(here / name, target / here.relative_to(source) / name, follow_symlinks=False)


#: the directory of the sample's arrays beside a reproducer fed a probe (int8 calibrates on them)
CALIBRATION = "calibration"


def write_arrays(directory: Path, arrays: dict[str, Any]) -> None:
    """One ``<name>.npy`` per array in ``directory`` (created)."""
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        np.save(directory / f"{name}.npy", value, allow_pickle=False)


def write_candidate(directory: Path, made: Slice, script: str, spec: ScriptSpec) -> None:
    """The sub-model, its inputs (one ``.npy`` per input) and the script, in ``directory``."""
    directory.mkdir(parents=True)
    made.model.save(directory / spec.model_file)
    write_arrays(directory / "inputs", {name: made.inputs[name] for name in made.input_names})
    (directory / SCRIPT).write_text(script, encoding="utf-8")


def versions_of(reproducer: Reproducer) -> dict[str, str]:
    from harness.artifacts import library_versions

    return {"python": platform.python_version(), "platform": platform.platform(),
            **library_versions(*reproducer.packages)}


def write_report(directory: Path, result: ReduceResult, reproducer: Reproducer, finding_path: str,
                 model_path: Path, model_file: str, exit_code: int, staged: StagedWhole | None = None) -> None:
    """``versions.json`` (for a target's whole-model reproducer also as ``versions.txt``),
    ``finding.json`` and ``README.md`` beside the reproducer."""
    versions = {**versions_of(reproducer), **(staged.versions if staged is not None else {})}
    (directory / "versions.json").write_text(json.dumps(versions, indent=1) + "\n", encoding="utf-8")
    if reproducer.whole is not None:  # a script of no Python packages (TF Serving's): the versions to paste
        (directory / "versions.txt").write_text("".join(f"{name}: {version}\n" for name, version in versions.items()),
                                                encoding="utf-8")
    window = result.window
    assert window is not None and result.reproduced is not None
    record: dict[str, Any] = {"schema": "pitfalls-reduce/1", "finding": result.finding,
                              "path": finding_path, "probe": result.probe,
                              "calibrated": (directory / CALIBRATION).is_dir(),
                              "calibration_file": result.calibration_file or None, "description": reproducer.paths[finding_path],
                              "model": str(model_path), "layers_total": result.layers_total,
                              "window": [window.start, window.stop], "layers": result.layers, "model_file": model_file,
                              "candidates": result.candidates, "observed_on_model": result.observed,
                              "observed_by_reproducer": result.reproduced, "key": list(reproducer.key(result.reproduced)),
                              "script_exit_code": exit_code, "cannot_reduce": result.cannot_reduce or None,
                              "script_args": list(staged.args) if staged is not None else [],
                              "ran_here": staged.ran_here if staged is not None else "",
                              "files": dict(staged.files) if staged is not None else {},
                              "versions_txt": reproducer.whole is not None}
    (directory / "finding.json").write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    (directory / "README.md").write_text(readme_text(record, reproducer, versions), encoding="utf-8")


def _fenced(text: str, language: str = "") -> str:
    """``text`` in a Markdown code fence longer than any run of backticks inside it."""
    runs = [len(m) for m in re.findall(r"`+", text)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def calibration_source(record: dict[str, Any]) -> str:
    """Whose values ``calibration/`` holds: the ``--calibration`` set's or check's sample's."""
    name = record.get("calibration_file")
    return f"the --calibration set `{name}`" if name else "the sample"


def inputs_sentence(record: dict[str, Any]) -> str:
    """What the inputs are (check's probe, its --calibration set) and what int8 is calibrated on."""
    probe = record.get("probe", SAMPLE)
    fed = ("" if probe == SAMPLE else
           f"The inputs are the --calibration set `{record.get('calibration_file')}`, fed as `pitfalls check` feeds "
           "it (a probe of its own). " if probe == CALIBRATION_PROBE else
           f"The inputs are `pitfalls check`'s `{probe}` probe ({PROBES[probe]}). ")
    calibrated = (f"`{CALIBRATION}/` holds {calibration_source(record)}'s values at the same inputs, the set int8 "
                  "quantisation is calibrated on (as `pitfalls check` calibrates)." if record["calibrated"] else "")
    return (fed + calibrated).strip()


def readme_text(record: dict[str, Any], reproducer: Reproducer, versions: dict[str, str]) -> str:
    """The README of a reproducer directory: what an upstream bug report needs."""
    seen = record["observed_by_reproducer"]
    shown = str(seen.get("text") or reproducer.describe(seen))
    lines = [
        f"# Reproducer: {record['finding']} ({reproducer.describe(seen)})",
        "",
        f"{reproducer.paths[record['path']]}.",
        "",
        (f"The model is the whole SavedModel `{Path(record['model']).name}`, copied as `{record['model_file']}/` "
         f"({record['cannot_reduce']}); `inputs/` holds the inputs it was fed."
         if record.get("cannot_reduce") == CANNOT_CUT else
         f"The model is the whole of `{Path(record['model']).name}`, as `{record['model_file']}/` "
         f"({record['cannot_reduce']}); `inputs/` holds the inputs it was fed."
         if record.get("cannot_reduce") else
         f"The model is {len(record['layers'])} of the original {record['layers_total']} layers "
         f"({', '.join(record['layers'])}), with their trained weights, cut out of `{Path(record['model']).name}` "
         "by `pitfalls reduce`; `inputs/` holds the values the original model feeds to them."),
        *(["", inputs_sentence(record)] if record.get("probe", SAMPLE) != SAMPLE or record["calibrated"] else []),
        "",
        "## Run it",
        "",
        _fenced("python reproduce.py", "sh"),
        "",
        *([f"Here it ran as `python reproduce.py {' '.join(record['script_args'])}`: {record['ran_here']}", ""]
          if record.get("ran_here") else []),
        f"It needs {reproducer.requirements}; nothing else (no pitfalls). It exits 1 when the problem shows, "
        "0 when it does not, and its last line is what it saw, as JSON.",
        "",
        "## What it printed here",
        "",
        _fenced(shown),
        "",
        "## Versions",
        "",
        *[f"- {name}: {version}" for name, version in versions.items()],
        "",
        "## Files",
        "",
        f"- `{record['model_file']}/`: " + ("the SavedModel" if record.get("cannot_reduce") else "the reduced model")
        if record.get("cannot_reduce") else f"- `{record['model_file']}`: the reduced model",
        "- `inputs/*.npy`: its inputs, one file per model input",
        *[f"- `{name}`: {what}" for name, what in record.get("files", {}).items()],
        *([f"- `{CALIBRATION}/*.npy`: {calibration_source(record)}'s values at those inputs (the int8 calibration set)"]
          if record["calibrated"] else []),
        "- `reproduce.py`: the standalone script",
        "- `finding.json`: what was observed on the whole model and by this script; `versions.json`"
        + (" (`versions.txt`: the same, one per line)" if record.get("versions_txt") else ""),
        "",
    ]
    return "\n".join(lines)


def _move_into_place(staged: Path, out: Path) -> None:
    """Rename ``staged`` to ``out`` (same file system); an old ``out`` is moved aside first, then removed."""
    aside: Path | None = None
    if out.exists():
        aside = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
        out.rename(aside)
    staged.rename(out)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)

