"""The one way this server composes a text: ``T(template, **values)``.

Every error, status and log text the server words itself is written as ``T("...<name>...",
name=value)``, with ``<name>`` placeholders.  The template is a string literal at the call, so
``tests/test_fidelity_table.py`` finds every composed text in the source (with ``ast``) and
checks that the fidelity table in ``containers/tfserving-compat/README.md`` lists it with the
TF Serving (or TensorFlow) source it imitates, or marks it as this server's own extension.
Texts that TensorFlow produces at run time (kernel and loader errors) pass through unchanged and
never go through ``T``.
"""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"<([a-z][a-z0-9_]*)>")


def T(template: str, /, **values: object) -> str:  # noqa: N802 - a marker, short on purpose
    """``template`` with each ``<name>`` replaced by ``str(values[name])``.

    A placeholder without a value, or a value without a placeholder, is a bug in this server.
    """
    names = set(PLACEHOLDER.findall(template))
    if names != set(values):
        raise KeyError(f"text template {template!r} takes {sorted(names)}, given {sorted(values)}")
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), template)
