"""Run the TF Serving-compatible server: ``python -m tfs_compat`` or ``python .../tfs_compat/__main__.py``."""

from __future__ import annotations

import os
import sys


def _entry() -> int:
    if not __package__:
        # Run as a file: make the package importable from its parent directory.
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from tfs_compat.cli import main

    return main()


def _exit_now(code: int) -> None:
    """Exit without the interpreter's slow TensorFlow teardown (seconds): we already shut down."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(_entry())
