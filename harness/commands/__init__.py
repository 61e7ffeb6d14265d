"""The commands of ``pitfalls``: one module each, registered here in the order ``pitfalls --help`` lists them.

A command module ``harness/commands/<name>.py`` holds ``NAME`` (the word typed after ``pitfalls``),
``HELP`` (its line in ``pitfalls --help``), ``add_arguments(parser)`` and ``run(args) -> int`` (the exit
code; bad input raises :class:`harness.errors.UsageError`, which :mod:`harness.cli` turns into one line
and exit code 2).  A command imports heavy libraries and its tool's modules inside ``run`` only, so that
building the parser stays cheap.  Shared argument types and messages are in :mod:`harness.commands.common`.

Adding a command: the new module, and its line in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from typing import Callable

COMMANDS: tuple[str, ...] = (
    "list",
    "run",
    "explain",
    "report",
    "diff",
    "check",
    "check_config",
    "reduce",
    "cache",
    "site",
    "matrix",
    "merge",
)


@dataclass(frozen=True)
class Command:
    """One registered command: what its module declares."""

    module: str
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def load_command(module: str) -> Command:
    """The command that ``harness/commands/<module>.py`` declares."""
    found = importlib.import_module(f"{__name__}.{module}")
    return Command(module=module, name=found.NAME, help=found.HELP, add_arguments=found.add_arguments,
                   run=found.run)


def load_commands() -> tuple[Command, ...]:
    """Every registered command, in :data:`COMMANDS` order."""
    # importing harness.commands.list binds `list` in this package's namespace: no builtin named like a
    # command is used in this file
    return tuple(load_command(module) for module in COMMANDS)
