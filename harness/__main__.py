"""``python -m harness``: the ``pitfalls`` command line."""

import sys

from harness.cli import main

sys.exit(main())
