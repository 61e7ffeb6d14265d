"""The ``pitfalls`` command line's entry point: the parser built from the command registry, and exit codes.

Each command is a module in :mod:`harness.commands` (``NAME``, ``HELP``, ``add_arguments``, ``run``),
listed in :data:`harness.commands.COMMANDS`; this module only builds the parser from that list, splits
off what goes to pytest after ``--``, turns a SIGTERM into the teardown of a Ctrl-C, and maps errors to
exit codes.  It never imports a heavy library itself.  Bad input gets one line on stderr and exit code 2
(:class:`harness.errors.UsageError`), and nothing is written.  The results file a command reads or writes
when none is given is :data:`DEFAULT_RESULTS` here, passed to the commands as ``args.default_results``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import NoReturn, Sequence

from harness.commands import load_commands
from harness.errors import UsageError
from harness.paths import DEFAULT_RESULTS


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors become one-line usage errors (exit code 2 via :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="pitfalls", description="Reproduce deep-learning deployment challenges "
                            "(Chen et al., ESEC/FSE 2020) as faulty/fixed scenarios on real runtimes.",
                            epilog="`pitfalls run SELECTION -- PYTEST_ARGS` passes the options after `--` to pytest.")
    parser.set_defaults(default_results=DEFAULT_RESULTS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    sub.required = True
    for command in load_commands():
        p = sub.add_parser(command.name, help=command.help)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:  # `pitfalls run SELECTION -- -x --maxfail 2`: the rest goes to pytest
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    try:
        args = parser.parse_args(argv)
        if extra:
            if args.command != "run":
                raise UsageError(f"`--` passes options to pytest and only goes with `run`, not `{args.command}`")
            args.pytest_args = extra
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None  # a CI job's SIGTERM
        try:                                                                              # tears down as Ctrl-C does
            return int(args.func(args))
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    except UsageError as exc:
        print(f"pitfalls: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
