"""``main``: flags, start, wait for SIGTERM/SIGINT, shut down (after TF Serving's main.cc)."""

from __future__ import annotations

import signal
import sys
from types import FrameType
from typing import Mapping, Optional

from . import __version__
from .forkserver import fork_server_port, fork_server_token, serve_forever
from .flags import ParsedFlags, flag_specs, parse_flags, usage_text
from .logs import configure_logging, get_logger
from .status import ServingError
from .texts import T

EXIT_FAILURE = 255  # main() returns -1


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _log_ignored(values: Mapping[str, object]) -> None:
    for spec in flag_specs():
        if not spec.implemented and values[spec.name] != spec.default:
            get_logger().warning(T("--<flag> is accepted but not implemented by the TF Serving-compatible "
                                   "server; ignored.", flag=spec.name))


def main(argv: Optional[list[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fork_port = fork_server_port()
    if fork_port is not None:  # the harness's start-up speed-up, not TF Serving: see forkserver.py
        return serve_forever(args, fork_port, fork_server_token())
    configure_logging()
    specs = flag_specs()
    usage = usage_text(T("tensorflow_model_server (TF Serving-compatible server)"), specs)
    flags = parse_flags(args, specs, lambda text: get_logger().error(text))
    if not flags.ok:
        _print(usage)
        return EXIT_FAILURE
    if flags.get_bool("version"):
        import tensorflow as tf

        _print(T("TensorFlow ModelServer: tfs_compat-<version> (TF Serving-compatible server)\n"
                 "TensorFlow Library: <tf_version>\n", version=__version__, tf_version=tf.__version__))
        return 0
    if flags.unknown:
        _print(T("unknown argument: <argument>\n<usage>", argument=flags.unknown[0], usage=usage))
    _log_ignored(flags.values)
    return _serve(flags)


def _serve(flags: ParsedFlags) -> int:
    from .server import ModelServer

    server = ModelServer(flags)

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        get_logger().info(T("Received signal <signal>; shutting down.", signal=signum))
        server.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.build_and_start()
    except ServingError as error:
        _print(T("Failed to start server. Error: <status>\n", status=error.to_string()))
        server.stop()
        return EXIT_FAILURE
    server.wait()
    server.stop()
    return 0
