"""Error types shared by the harness, the targets and the scenarios.

Two families matter when a scenario is judged:

* :class:`RuntimeFailure` carries text that a third-party runtime produced (a TF exception
  message read back from a subprocess, a page error thrown by tf.js in Chromium, the JSON error
  body of a serving process).  A faulty variant reproduces its symptom only through real runtime
  text, so targets wrap such text verbatim in this type and say where it came from.
* :class:`HarnessError` is our own failure (missing set-up, timeout, bad input).  It never counts
  as a reproduced symptom.
"""

from __future__ import annotations


class HarnessError(Exception):
    """A failure of the harness or its environment, with evidence and a hint."""

    def __init__(self, message: str, *, hint: str = "", evidence: str = "") -> None:
        self.message = message
        self.hint = hint
        self.evidence = evidence
        text = message
        if evidence:
            text += f"\n--- evidence ---\n{evidence}"
        if hint:
            text += f"\nhint: {hint}"
        super().__init__(text)


class SetupError(HarnessError):
    """Something the harness needs is not installed or not running."""


class WaitTimeout(HarnessError):
    """A wait strategy gave up; the message says what it waited for and what it saw last."""


class NotApplicable(Exception):
    """Raised to skip a variant (or a target of a check) with an exact reason: a runtime that does
    not exist here, e.g. Core ML prediction off macOS.  Never a failure, never a pass."""


class UsageError(Exception):
    """Bad input from a user (command line, options, files): one line, exit code 2."""


class RuntimeFailure(Exception):
    """An error raised by a third-party runtime, carried verbatim.

    ``runtime`` names the runtime ("litert", "tfjs/chromium", "tfserving-compatible server", ...),
    ``kind`` the runtime's own error type name when it has one, ``message`` its exact text, and
    ``source`` how the text reached us (e.g. "exception in LiteRT worker process",
    "page error event", "HTTP 400 body").
    """

    def __init__(self, runtime: str, message: str, *, kind: str = "", source: str = "") -> None:
        self.runtime = runtime
        self.message = message
        self.kind = kind
        self.source = source
        prefix = f"[{runtime}] " + (f"{kind}: " if kind else "")
        super().__init__(prefix + message)
