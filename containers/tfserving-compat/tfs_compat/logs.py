"""Logging to stderr in the glog shape TF Serving uses.

TF Serving lines look like ``2024-01-01 10:00:00.123456: I tensorflow_serving/model_servers/
server.cc:420] Running gRPC ModelServer at 0.0.0.0:8500 ...``.  Ours keep the shape, with our
own file names, so a reader (or a grep written for TF Serving's logs) finds the same messages.
"""

from __future__ import annotations

import logging
import sys
import time

LOGGER_NAME = "tfs_compat"

_LEVEL_LETTER: dict[int, str] = {
    logging.DEBUG: "I",
    logging.INFO: "I",
    logging.WARNING: "W",
    logging.ERROR: "E",
    logging.CRITICAL: "F",
}


class GlogFormatter(logging.Formatter):
    """``<date> <time>.<micros>: <L> <file>:<line>] <message>``."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        micros = int((record.created % 1) * 1_000_000)
        letter = _LEVEL_LETTER.get(record.levelno, "I")
        where = f"tfs_compat/{record.filename}:{record.lineno}"
        return f"{stamp}.{micros:06d}: {letter} {where}] {record.getMessage()}"


def configure_logging() -> logging.Logger:
    """Send our logger to stderr (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(GlogFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


def get_logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)
