"""The command registry: every module in harness/commands/ is registered, documented and keeps its interface.

`tests/fixtures/cli-interface.json` is the command line as argparse holds it (commands, their help, every
option with its flags, nargs, choices, defaults, metavar and help), taken before the commands moved out of
``harness/cli.py``.  A change to the command line shows up here; when it is intended, regenerate the
fixture with ``PYTHONPATH=$PWD .venv/bin/python tests/test_cli_commands.py`` and review its diff.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.paths import REPO_ROOT

INTERFACE = Path(__file__).parent / "fixtures" / "cli-interface.json"
COMMANDS_DIR = REPO_ROOT / "harness" / "commands"
NOT_COMMANDS = {"__init__", "common"}


def _plain(value: Any) -> Any:
    """A default or const as JSON, with the checkout's absolute path replaced so the fixture is portable."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, Path)):
        return str(value).replace(str(REPO_ROOT), "<repo>")
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return repr(value)


def _argument(action: argparse.Action) -> dict[str, Any]:
    kind = action.type
    return {"flags": list(action.option_strings), "dest": action.dest, "nargs": action.nargs,
            "const": _plain(action.const), "default": _plain(action.default),
            "type": None if kind is None else kind.__name__ if kind in (int, float, str) else "function",
            "choices": None if action.choices is None else list(action.choices),
            "required": action.required, "help": action.help, "metavar": action.metavar,
            "action": type(action).__name__}


def describe(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The command line as data: independent of the terminal width and of argparse's help layout."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    commands = []
    for name, command in sub.choices.items():
        commands.append({
            "name": name, "help": helps.get(name), "prog": command.prog, "description": command.description,
            "arguments": [_argument(a) for a in command._actions if not isinstance(a, argparse._HelpAction)],
            "exclusive": [[a.dest for a in g._group_actions] for g in command._mutually_exclusive_groups],
            "defaults": {k: _plain(v) for k, v in sorted(command._defaults.items()) if k != "func"}})
    return {"prog": parser.prog, "description": parser.description, "epilog": parser.epilog,
            "metavar": sub.metavar, "required": sub.required, "commands": commands}


def _current() -> dict[str, Any]:
    from harness.cli import build_parser

    return describe(build_parser())


def test_the_command_line_is_unchanged() -> None:
    expected = json.loads(INTERFACE.read_text(encoding="utf-8"))
    current = _current()
    assert [c["name"] for c in current["commands"]] == [c["name"] for c in expected["commands"]]
    for mine, before in zip(current["commands"], expected["commands"]):
        assert mine == before, (f"`pitfalls {mine['name']}` changed; if intended, regenerate "
                                f"{INTERFACE.relative_to(REPO_ROOT)} (see this file's docstring)")
    assert current == expected


def test_the_interface_description_sees_a_changed_help_text() -> None:
    from harness.cli import build_parser

    parser = build_parser()
    before = describe(parser)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    option = next(a for a in sub.choices["diff"]._actions if a.dest == "threshold")
    option.help = "another text"
    assert describe(parser) != before


def _command_modules() -> list[str]:
    return sorted(p.stem for p in COMMANDS_DIR.glob("*.py") if p.stem not in NOT_COMMANDS)


def test_every_command_module_is_registered_once_and_keeps_the_interface() -> None:
    from harness.commands import COMMANDS, load_commands

    assert sorted(COMMANDS) == _command_modules(), "a module in harness/commands/ is not in COMMANDS (or one gone)"
    assert len(set(COMMANDS)) == len(COMMANDS)
    for command in load_commands():
        module = sys.modules[f"harness.commands.{command.module}"]
        assert command.name == module.NAME and command.help == module.HELP
        assert command.add_arguments is module.add_arguments and command.run is module.run
        assert command.name.replace("-", "_") == command.module, "a command's module is named for the command"


def test_the_parser_lists_the_commands_in_registry_order() -> None:
    from harness.cli import build_parser
    from harness.commands import COMMANDS

    assert [c["name"] for c in describe(build_parser())["commands"]] == [m.replace("_", "-") for m in COMMANDS]


def test_every_command_is_documented_in_docs_cli() -> None:
    """docs/cli.md has a section per command and a row in its table of commands."""
    from harness.commands import COMMANDS as MODULES

    COMMANDS = [m.replace("_", "-") for m in MODULES]  # a command's module is named for the command
    text = (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = set(re.findall(r"^#+ .*?`pitfalls ([a-z-]+)", text, flags=re.M))
    rows = set(re.findall(r"^\| `pitfalls ([a-z-]+)", text, flags=re.M))
    assert sorted(set(COMMANDS) - sections) == [], "docs/cli.md has no section for these commands"
    assert sorted(set(COMMANDS) - rows) == [], "docs/cli.md's table of commands lacks these"
    assert sorted(rows - set(COMMANDS)) == [], "docs/cli.md's table names commands that do not exist"


def test_the_add_a_command_walkthrough_names_what_exists() -> None:
    """docs/architecture.md's "A command" step names the registry and files that exist, and the test here."""
    text = (REPO_ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    step = re.search(r"^- \*\*A command\*\*:(.*?)(?=^- \*\*|^#|\Z)", text, flags=re.M | re.S)
    assert step, "docs/architecture.md has no '- **A command**:' step under 'Where to add things'"
    paths = re.findall(r"`((?:harness|tests|docs)/[A-Za-z0-9_./<>-]+)`", step.group(1))
    assert {"harness/commands/<name>.py", "harness/commands/__init__.py", "docs/cli.md",
            "tests/test_cli_commands.py"} <= set(paths), paths
    for path in paths:
        where = REPO_ROOT / path.replace("<name>", "run")
        assert where.exists(), f"the walkthrough names {path}, which does not exist"
    assert {"NAME", "HELP", "add_arguments", "run", "COMMANDS"} <= set(re.findall(r"`(\w+)", step.group(1)))


def test_help_imports_no_heavy_library() -> None:
    """`pitfalls --help` and each command's help build every parser and load no runtime."""
    from harness.commands import COMMANDS
    from test_architecture import HEAVY

    code = ("import contextlib, io, json, sys\nfrom harness.cli import main\n"
            f"for argv in [['--help']] + [[c, '--help'] for c in {list(COMMANDS)!r}]:\n"
            "    with contextlib.redirect_stdout(io.StringIO()):\n"
            "        try:\n            main(argv)\n        except SystemExit:\n            pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


if __name__ == "__main__":  # regenerate the fixture after an intended change of the command line
    INTERFACE.write_text(json.dumps(_current(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {INTERFACE}")


@pytest.mark.parametrize("command", ["check", "check-config"])
def test_a_report_dir_that_is_a_file_is_one_line_and_exit_2(command: str, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    target = tmp_path  # check-config takes a project directory
    if command == "check":
        target = tmp_path / "model.keras"
        target.touch()
    occupied = tmp_path / "report"
    occupied.write_text("a file the user keeps")
    assert main([command, str(target), "--report-dir", str(occupied)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file; give a directory" in err[0]
    assert occupied.read_text() == "a file the user keeps"
