"""One HTML layer: every page the harness writes comes from a Jinja2 template of this package.

The environment escapes every value (``autoescape=True`` for every template, whatever its name) and
refuses an undefined name (``StrictUndefined``): a page cannot hold a value that was not escaped or a
typo that renders as nothing.  The only markup that enters from Python is Pygments' own output,
wrapped in :class:`~markupsafe.Markup` by :func:`highlight` and :func:`highlighted_lines` here.

Templates (``templates/``): ``pitfalls.css`` (the one stylesheet: inline in the one-file pages,
``body.page``; linked as ``site.css`` by the lesson site, ``body.site``), ``page.html.j2`` (the frame
of the one-file pages), ``macros.html.j2`` (evidence, key-value tables, badges, charts, code),
``report.html.j2``, ``matrix.html.j2``, ``check.html.j2``, and the site's ``site/*.html.j2``
(``frame``, ``index``, ``lesson``, ``macros``).
Charts are :class:`harness.render.charts.Chart` data (positions computed in Python), drawn by one macro.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape


def format_number(value: Any) -> str:
    """A figure as the pages show it: short, ``0`` for zero, 3 significant digits at the extremes."""
    if not isinstance(value, float):
        return str(value)
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e6 or abs(value) < 0.01:
        return f"{value:.3g}"
    return f"{value:.4g}"


def coordinate(value: float) -> str:
    """A position or size in a chart: one decimal, no trailing zero."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def json_text(value: Any, indent: int | None = 1) -> str:
    """``value`` as JSON text for a reader (escaped like any text when rendered)."""
    return json.dumps(value, indent=indent, default=str)


@functools.cache
def environment() -> Environment:
    """The one Jinja2 environment (built once per process, never changed after)."""
    env = Environment(loader=PackageLoader("harness.render", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["number"] = format_number
    env.filters["coord"] = coordinate
    env.filters["json_text"] = json_text
    return env


def render(template: str, **context: Any) -> str:
    """The page ``template`` (a name under ``templates/``) rendered with ``context``, every value escaped."""
    return environment().get_template(template).render(**context)


def stylesheet() -> str:
    """The one stylesheet (``templates/pitfalls.css``): inline in the one-file pages, ``site.css`` of the site."""
    return resources.files("harness.render").joinpath("templates", "pitfalls.css").read_text(encoding="utf-8")


def highlight(code: str, lexer_name: str = "python") -> Markup:
    """``code`` coloured by Pygments (its own escaped output, hence Markup)."""
    from pygments import highlight as pygments_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    return Markup(pygments_highlight(code, get_lexer_by_name(lexer_name), HtmlFormatter(nowrap=True)))


def highlighted_lines(code: str) -> list[Markup]:
    """One fragment per line of ``code``, coloured by Pygments (a multi-line string stays coloured:
    Pygments closes and reopens its spans at each line end)."""
    from pygments import highlight as pygments_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    plain = code.split("\n")
    out = pygments_highlight(code, PythonLexer(stripnl=False, ensurenl=True), HtmlFormatter(nowrap=True))
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(plain):  # never seen; keep the lines right rather than coloured
        return [escape(line) for line in plain]
    return [Markup(line) for line in lines]  # Pygments' own output: escaped by Pygments


def pygments_stylesheet(scope: str = ".hl") -> str:
    """Pygments' colours (default style), scoped to ``scope``."""
    from pygments.formatters import HtmlFormatter

    return str(HtmlFormatter(style="default").get_style_defs(scope))
