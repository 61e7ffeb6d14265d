"""The three walkthroughs of docs/architecture.md, done as written: add a target, a backend, a tool.

The target is the code block of "Walkthrough: add a target", run as it stands (its module paths
point at the module the test makes of it); registering it is the one ``TARGETS`` line the walkthrough
adds, seen by every module that read the declarations.  ``check`` runs it on a tiny trained model,
the check's report lists it, ``diff`` compares its records and the matrix sets its package.
"""

from __future__ import annotations

import argparse
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from harness.paths import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"


def walkthrough(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"### Walkthrough: {title}")
    end = text.find("\n### ", start + 1)
    return text[start:end if end > 0 else len(text)]


def register_target(monkeypatch: pytest.MonkeyPatch, info: Any) -> None:
    """The one line "add a target" adds to ``TARGETS``, as every module that read the declarations sees it."""
    from harness import targets

    old = {"TARGETS": targets.TARGETS, "TARGET_INFO": targets.TARGET_INFO, "TARGET_NAMES": targets.TARGET_NAMES}
    new_targets = (*targets.TARGETS, info)
    new = {"TARGETS": new_targets, "TARGET_INFO": {t.name: t for t in new_targets},
           "TARGET_NAMES": tuple(t.name for t in new_targets)}
    for module in [m for name, m in sys.modules.items() if name == "harness" or name.startswith("harness.")]:
        for attribute, value in old.items():
            if getattr(module, attribute, None) is value:
                monkeypatch.setattr(module, attribute, new[attribute])


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """The walkthrough's code block as a module, its target registered."""
    block = re.search(r"```python\n(.*?)```", walkthrough("add a target"), re.S)
    assert block is not None, "the walkthrough has no code block"
    module = types.ModuleType("walkthrough_echo")
    source = block.group(1).replace("harness.targets.echo.target", "walkthrough_echo") \
        .replace("harness.targets.echo.checks", "walkthrough_echo")
    monkeypatch.setitem(sys.modules, "walkthrough_echo", module)
    exec(compile(source, str(DOC), "exec"), module.__dict__)  # noqa: S102 - the doc's own example
    register_target(monkeypatch, module.INFO)
    return module


@pytest.mark.slow
def test_a_target_added_as_the_walkthrough_says_is_checked_reported_and_diffed(echo: types.ModuleType,
                                                                                 tmp_path: Path) -> None:
    from harness.artifacts import ArtifactCache
    from harness.check import check
    from harness.check.render import html_page, summary
    from harness.models import ModelSpec, trained_model

    cache = ArtifactCache()
    model = trained_model(cache, ModelSpec("dense", "keras3")).model_file
    report = check(model, targets=["echo"], profiles=(), probes=(), cache=cache, progress=None)  # the declared loads alone
    echo_report = report.targets["echo"]
    assert echo_report.verdict == "deploys", summary(report)
    assert set(echo_report.parity) == {"echo", "echo@one-row"}  # both declared loads ran and compared
    assert echo_report.max_abs_diff is not None and echo_report.max_abs_diff < 1e-5  # Keras against Keras
    assert "echo.first_predict_s" in echo_report.figures and "echo.artifact_bytes" in echo_report.figures
    assert re.search(r"^  echo\s+deploys", summary(report), re.M)
    assert "echo@one-row" in html_page(report)
    # a declared target without check declarations: the common path, no KeyError
    from harness.targets import TargetInfo

    register_target(monkeypatch := pytest.MonkeyPatch(), TargetInfo("bare", "mobile", "walkthrough_echo:BareTarget",
                                                                    "#555555", "the echo target, nothing declared"))
    try:
        echo.BareTarget = type("BareTarget", (echo.EchoTarget,), {"name": "bare"})
        bare = check(model, targets=["bare"], profiles=(), probes=(), cache=cache, progress=None).targets["bare"]
        assert bare.verdict == "deploys" and set(bare.parity) == {"bare"}
    finally:
        monkeypatch.undo()


def test_a_target_added_as_the_walkthrough_says_reaches_diff_and_the_matrix(echo: types.ModuleType) -> None:
    from harness.diff import diff_results
    from harness.matrix.report import _ran_target
    from harness.matrix.spec import _short, optional, packages
    from harness.results import build_results, tracked_distributions

    def rec(outcome: str) -> dict[str, Any]:
        return {"scenario": "mobile/inference-speed", "taxonomy": "mobile/inference-speed", "platform": "mobile",
                "target": "echo", "variant": "fixed", "outcome": outcome, "expected": "succeeds", "verdict": "",
                "evidence": {"figures": {}, "figure_classes": {}, "bounds": []}, "seconds": 1.0, "nodeid": ""}

    changes = diff_results(build_results([rec("works")], env={}), build_results([rec("broken")], env={}))
    assert [(c.target, c.severity, c.what) for c in changes] == [("echo", "regression", "fixed variant now broken")]
    assert packages()["echo-runtime"] == "pip" and "echo-runtime" in optional() and _short("echo-runtime") == "echo"
    assert "echo-runtime" in tracked_distributions()
    cell = types.SimpleNamespace(extra={}, requested={"echo-runtime": "none"})
    assert not _ran_target(cell, "echo")  # type: ignore[arg-type]  # the two fields it reads
    assert _ran_target(types.SimpleNamespace(extra={}, requested={"echo-runtime": "1.0"}), "echo")  # type: ignore[arg-type]


def test_a_backend_added_as_the_walkthrough_says_reaches_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    text = walkthrough("add a backend")
    assert "`TABLE` in `harness/targets/tfjs/backends.py`" in text and "harness/targets/tfjs/checks.py" in text
    from harness.targets import target_checks
    from harness.targets.tfjs import backends

    made_up = backends.TfjsBackend("madeup", "a made-up backend", tolerance="float16", in_check=True)
    monkeypatch.setattr(backends, "TABLE", (*backends.TABLE, made_up))
    monkeypatch.delenv(backends.CHECK_BACKENDS_ENV, raising=False)
    declared = target_checks("tfjs")
    assert declared is not None and declared.loads is not None
    loads = {load.label: load for load in declared.loads(None)}  # type: ignore[arg-type]  # the loads read the table only
    assert loads["tfjs@madeup"].tolerance == "float16" and loads["tfjs@madeup"].options == {"backend": "madeup"}


def test_a_tool_added_as_the_walkthrough_says_is_a_command(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    text = walkthrough("add a tool")
    assert "`COMMANDS` in `harness/commands/__init__.py`" in text
    import harness.commands as commands
    from harness.cli import main
    from harness.errors import UsageError

    module = types.ModuleType("harness.commands.hello")
    module.NAME, module.HELP = "hello", "say hello to a name"  # type: ignore[attr-defined]

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("who")

    def run(args: argparse.Namespace) -> int:
        if not args.who.isalpha():
            raise UsageError(f"{args.who!r} is not a name: give letters only")
        print(f"hello {args.who}")
        return 0

    module.add_arguments, module.run = add_arguments, run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "harness.commands.hello", module)
    monkeypatch.setattr(commands, "COMMANDS", (*commands.COMMANDS, "hello"))
    assert main(["hello", "world"]) == 0 and capsys.readouterr().out == "hello world\n"
    assert main(["hello", "w0rld"]) == 2 and "not a name" in capsys.readouterr().err
