"""A scenario's source as its lesson: the faulty and the fixed code a student compares.

:func:`variant_code` takes the real source of the two variant functions from the scenario file and
puts before each the module-level definitions only it uses (e.g. ``FAULTY_JS``); what both use is
returned apart.  ``pitfalls explain`` prints it and the HTML report shows it.

:func:`flag_pair` finds the shape this project forbids: both variants a single call of the same
function that differ only in literal arguments (``_go(run, quantize=False)`` / ``_go(run,
quantize=True)``), which hides the lesson in the shared function.  Plain Python, no heavy import.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

from harness.scenario import VARIANTS, Scenario


@dataclass(frozen=True)
class VariantCode:
    """The code a student compares: each variant with what only it uses, and what both share."""

    faulty: str
    fixed: str
    shared: str = ""


def _module_definitions(module_source: str) -> dict[str, ast.stmt]:
    defs: dict[str, ast.stmt] = {}
    for node in ast.parse(module_source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name) and target.id != "SCENARIO":
                    defs[target.id] = node
    return defs


def _reachable(name: str, defs: dict[str, ast.stmt]) -> set[str]:
    """Module-level names a definition uses, following the functions it calls."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        node = defs.get(todo.pop())
        if node is None:
            continue
        for used in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & set(defs):
            if used not in seen and used != name:
                seen.add(used)
                if isinstance(defs[used], (ast.FunctionDef, ast.AsyncFunctionDef)):
                    todo.append(used)
    return seen


def _is_code(node: ast.stmt) -> bool:
    """A function, a class, or a string constant (e.g. JavaScript run in the page)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    value = getattr(node, "value", None)
    return isinstance(value, ast.Constant) and isinstance(value.value, str)


def variant_code(scenario: Scenario) -> VariantCode:
    """The real source of the two variant functions, each preceded by the module-level definitions
    only it uses (e.g. ``FAULTY_JS``), plus the helpers both use (where a flag may hide the fix)."""
    fns = {v: scenario.variant(v) for v in VARIANTS}
    try:
        own = {v: textwrap.dedent(inspect.getsource(fn)).rstrip() for v, fn in fns.items()}
        module = inspect.getmodule(fns["faulty"])
        if module is None:
            raise TypeError("no module")
        module_source = inspect.getsource(module)
    except (OSError, TypeError):
        return VariantCode(*(f"# the source of {getattr(fn, '__name__', fn)!r} is not available"
                             for fn in fns.values()))
    defs = _module_definitions(module_source)
    names = {v: getattr(fn, "__name__", "") for v, fn in fns.items()}
    reach = {v: _reachable(names[v], defs) - set(names.values()) for v in VARIANTS}

    def source_of(selected: set[str]) -> list[str]:
        return [ast.get_source_segment(module_source, defs[n]) or "" for n in defs if n in selected]

    faulty_only, fixed_only = reach["faulty"] - reach["fixed"], reach["fixed"] - reach["faulty"]
    shared = {n for n in reach["faulty"] & reach["fixed"] if _is_code(defs[n])}
    return VariantCode("\n\n".join(source_of(faulty_only) + [own["faulty"]]),
                       "\n\n".join(source_of(fixed_only) + [own["fixed"]]),
                       "\n\n".join(source_of(shared)))


# --------------------------------------------------------------------------------------------
# Flag pairs


def _single_call(fn: Any) -> ast.Call | None:
    """The call a variant consists of (``f(...)`` or ``return f(...)``, after a docstring), or None."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    node = tree.body[0] if tree.body else None
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    body = list(node.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    if len(body) != 1 or not isinstance(body[0], (ast.Expr, ast.Return)):
        return None
    value = body[0].value
    return value if isinstance(value, ast.Call) else None


def _literal(node: ast.expr) -> bool:
    """A flag-like literal: a number, a bool, None or a one-line string (a multi-line string is code)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant) and not (isinstance(node.value, str) and "\n" in node.value)


def _same_but_literals(a: ast.expr, b: ast.expr) -> bool:
    if _literal(a) and _literal(b):
        return True
    return ast.dump(a) == ast.dump(b)


def _calls_differ_only_in_literals(a: ast.Call, b: ast.Call) -> bool:
    if ast.dump(a.func) != ast.dump(b.func) or len(a.args) != len(b.args):
        return False
    if [k.arg for k in a.keywords] != [k.arg for k in b.keywords]:
        return False
    return (all(_same_but_literals(x, y) for x, y in zip(a.args, b.args))
            and all(_same_but_literals(x.value, y.value) for x, y in zip(a.keywords, b.keywords)))


def flag_pair(scenario: Scenario) -> str | None:
    """Why the two variants are a flag pair (one shared call, only literal arguments differ), or None."""
    faulty, fixed = scenario.faulty, scenario.fixed
    if isinstance(faulty, functools.partial) and isinstance(fixed, functools.partial):
        if faulty.func is fixed.func:
            return f"both variants are functools.partial of {getattr(faulty.func, '__name__', faulty.func)}"
        return None
    a, b = _single_call(faulty), _single_call(fixed)
    if a is None or b is None or not _calls_differ_only_in_literals(a, b):
        return None
    how = ("the same call" if ast.dump(a) == ast.dump(b) else "one call of the same function, differing only in "
           "literal arguments")
    return (f"faulty and fixed are {how} ({ast.unparse(a)} / {ast.unparse(b)}): spell the wrong and the "
            "right code in the variants themselves")
