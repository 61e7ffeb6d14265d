"""One way in: scenarios import a target's public face only, and the import graph has no cycle.

* A scenario (``scenarios/**.py``) may import from a target package its ``target`` module, its
  ``kit``, ``convert``, ``backends`` or ``profiles`` module, or :mod:`harness.targets.base`; never the
  modules behind them (a worker, a page, a client, a host, a container, the arm64 runner, the forked
  servers).  Checked on the AST: every ``import`` and ``from ... import`` anywhere in the file
  (module level, ``if TYPE_CHECKING:`` blocks, inside functions).
* The static import graph of ``harness`` has no cycle among **module-level** imports, those under
  ``if TYPE_CHECKING:`` included (they are the types a module depends on, and mypy follows them).
  Imports inside functions are left out of that graph: they are how a module defers a heavy or
  late dependency, and :mod:`tests.test_architecture` already finds a cycle of imports that run
  (module level or inside functions, TYPE_CHECKING excluded).
* Inside one target package every import counts, wherever it is written (module level, function,
  TYPE_CHECKING): the modules of one target form layers (``kit`` above ``target`` above
  ``client``/``worker``/``page``...), so even a lazy import back up is a design cycle, as
  ``tfserving/target.py`` importing ``tfserving/kit.py`` (which names the target) was.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT
from tests.test_architecture import MODULES, find_cycles, module_name

HARNESS = REPO_ROOT / "harness"  # MODULES and module_name come from test_architecture, over the same tree
SCENARIOS = REPO_ROOT / "scenarios"
PUBLIC_FACE = ("target", "kit", "convert", "backends", "profiles")  # what a scenario may import of a target


def imported_modules(node: ast.AST, package: str) -> set[str]:
    """Every module an ``import``/``from`` statement directly in ``node`` names (``a.b`` and, for
    ``from a import b``, also ``a.b``, in case ``b`` is a submodule); ``package`` resolves relative imports."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names}
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parts = parts[:len(parts) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        return {base} | {f"{base}.{a.name}" for a in node.names}
    return set()


def imports_of(path: Path, *, inside_functions: bool) -> set[str]:
    """The modules ``path`` imports: at module level (``if TYPE_CHECKING:`` and other blocks included),
    and with ``inside_functions`` also those written inside functions and methods."""
    name = module_name(path) if path.is_relative_to(HARNESS) else ""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and not inside_functions:
                continue
            found.update(imported_modules(child, package))
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def forbidden_target_import(module: str) -> bool:
    """True for a module of a target package (one that exists) that is not part of its public face."""
    parts = module.split(".")
    return module in MODULES and len(parts) >= 4 and parts[:2] == ["harness", "targets"] and parts[3] not in PUBLIC_FACE


def test_scenarios_import_only_the_public_face_of_targets() -> None:
    offenders = [f"{path.relative_to(REPO_ROOT)}: {module}"
                 for path in sorted(SCENARIOS.rglob("*.py"))
                 for module in sorted(imports_of(path, inside_functions=True))
                 if module.startswith("harness.targets.") and forbidden_target_import(module)]
    assert not offenders, ("scenarios import target internals (use the target's target/kit/convert/backends/"
                           "profiles module, or add the move to the target's public face):\n" + "\n".join(offenders))


def test_the_public_face_rule_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The attack: internals imported at module level, under TYPE_CHECKING, inside a function, as a
    submodule in a ``from`` list, or as ``import a.b``; all are found, the public face passes."""
    scenario = tmp_path / "sneaky.py"
    scenario.write_text(
        "from typing import TYPE_CHECKING\n"
        "from harness.targets.tfjs.kit import MODEL_URL\n"
        "from harness.targets.litert.target import LitertTarget\n"
        "import harness.targets.tfserving.client\n"
        "from harness.targets.tfjs import page\n"
        "if TYPE_CHECKING:\n    from harness.targets.tfjs.page import TfjsPage\n"
        "def on_device(path):\n    from harness.targets.litert.worker import predict\n    return predict(path, [])\n")
    found = sorted(m for m in imports_of(scenario, inside_functions=True)
                   if m.startswith("harness.targets.") and forbidden_target_import(m))
    assert found == ["harness.targets.litert.worker", "harness.targets.tfjs.page",
                     "harness.targets.tfserving.client"]
    assert "harness.targets.litert.worker" not in imports_of(scenario, inside_functions=False)
    assert not forbidden_target_import("harness.targets.base")
    assert not forbidden_target_import("harness.targets.litert.kit")
    assert forbidden_target_import("harness.targets.litert.arm64")
    assert not forbidden_target_import("harness.targets.base.ModelSource")  # a name, not a module


def test_the_public_face_offers_what_the_lessons_need() -> None:
    """The moves that scenarios used to take from internals are on the public face, and are the same objects."""
    from harness.targets.litert import kit as litert_kit
    from harness.targets.litert import worker as litert_worker
    from harness.targets.litert.target import LitertTarget
    from harness.targets.tfjs import kit as tfjs_kit
    from harness.targets.tfjs import page as tfjs_page
    from harness.targets.tfjs import target as tfjs_target

    assert litert_kit.predict is litert_worker.predict and litert_kit.interpreter is litert_worker.interpreter
    assert tfjs_target.TfjsPage is tfjs_page.TfjsPage and tfjs_target.RequestSeen is tfjs_page.RequestSeen
    assert "tf.loadLayersModel(url)" in tfjs_kit.PREDICT_LAYERS_JS
    assert "tf.loadGraphModel(url)" in tfjs_kit.PREDICT_GRAPH_JS
    assert LitertTarget().profile_unavailable_reason(litert_kit.PROFILES["host"]) is None


def test_harness_module_level_imports_have_no_cycle() -> None:
    graph = {m: (imports_of(p, inside_functions=False) & set(MODULES)) - {m} for m, p in MODULES.items()}
    cycles = find_cycles(graph)
    assert not cycles, "module-level import cycles in harness/: " + "; ".join(" -> ".join(c) for c in cycles)


TARGET_PACKAGES = sorted({m.split(".")[2] for m in MODULES if m.count(".") >= 3 and m.startswith("harness.targets.")})


@pytest.mark.parametrize("package", TARGET_PACKAGES)
def test_a_target_package_has_no_cycle_even_through_lazy_imports(package: str) -> None:
    prefix = f"harness.targets.{package}"
    mine = {m: p for m, p in MODULES.items() if m == prefix or m.startswith(prefix + ".")}
    graph = {m: (imports_of(p, inside_functions=True) & set(mine)) - {m} for m, p in mine.items()}
    cycles = find_cycles(graph)
    assert not cycles, f"import cycles in {prefix} (imports inside functions and under TYPE_CHECKING count): " + \
        "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_checks_can_fail(tmp_path: Path) -> None:
    """A TYPE_CHECKING import counts at module level; a function's import counts only when asked;
    the walk finds a three-module cycle and none in a chain."""
    module = tmp_path / "a.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from harness.targets.tfserving.target import T\n"
                      "def load():\n    from harness.targets.tfserving.kit import model_base_path\n")
    assert "harness.targets.tfserving.target" in imports_of(module, inside_functions=False)
    assert "harness.targets.tfserving.kit" not in imports_of(module, inside_functions=False)
    assert "harness.targets.tfserving.kit" in imports_of(module, inside_functions=True)
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
