"""The one HTML layer (harness/render): every page from a template with autoescape, no markup built in Python.

The four page modules and the layer's own Python hold no HTML in their string literals; the only
Markup made in Python wraps Pygments' output (harness/render/__init__.py); no template opts out of
escaping.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from jinja2 import StrictUndefined, UndefinedError

from harness.paths import REPO_ROOT
from harness.render import environment, render

PAGE_MODULES = ("harness/report.py", "harness/site.py", "harness/matrix/report.py", "harness/check/render.py")
RENDER_DIR = REPO_ROOT / "harness" / "render"
TAG = re.compile(r"</?(html|head|body|div|span|td|th|tr|table|thead|tbody|p|pre|code|ul|li|a|h[1-6]|section|"
                 r"details|summary|svg|rect|line|text|title|script|style|link|meta|br|b|sup|nav|header|main|"
                 r"footer|col|colgroup|img|input)\b", re.IGNORECASE)
TEMPLATES = sorted((RENDER_DIR / "templates").rglob("*.j2"))


def python_sources() -> list[Path]:
    return [REPO_ROOT / m for m in PAGE_MODULES] + sorted(RENDER_DIR.rglob("*.py"))


def string_literals(path: Path) -> list[tuple[int, str]]:
    """Every string constant of a module (f-string parts included), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


@pytest.mark.parametrize("path", python_sources(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_markup_is_built_in_python(path: Path) -> None:
    found = [(line, text[:80]) for line, text in string_literals(path) if TAG.search(text)]
    assert not found, f"{path.relative_to(REPO_ROOT)} builds markup by hand (use a template): {found}"


def test_the_detector_sees_markup_in_a_string() -> None:
    assert TAG.search('f\'<td class="cell">{x}</td>\'') and TAG.search("<svg ") and not TAG.search("a < b and c > d")


def test_markup_is_made_only_of_pygments_output() -> None:
    """``Markup(...)`` is called in harness/render/__init__.py only (around Pygments' output), nowhere else."""
    calls = {}
    for path in sorted((REPO_ROOT / "harness").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        n = sum(1 for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Markup")
        if n:
            calls[str(path.relative_to(REPO_ROOT))] = n
    assert calls == {"harness/render/__init__.py": 2}


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: str(p.relative_to(RENDER_DIR)))
def test_no_template_opts_out_of_escaping(template: Path) -> None:
    source = template.read_text(encoding="utf-8")
    assert "|safe" not in source.replace(" ", "") and "autoescape" not in source and "Markup" not in source


def test_the_environment_escapes_and_refuses_undefined_names() -> None:
    env = environment()
    assert env.autoescape is True and env.undefined is StrictUndefined
    out = env.from_string("<p title=\"{{ v }}\">{{ v }}</p>").render(v='"><img src=x onerror=alert(1)>')
    assert "<img" not in out and "&#34;&gt;&lt;img" in out
    with pytest.raises(UndefinedError):
        render("chart.html.j2")  # no `chart` given: an error, never an empty page
