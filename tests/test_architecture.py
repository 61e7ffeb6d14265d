"""The layering of harness/: no import cycles, light modules stay light, the architecture doc names what exists."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT

HARNESS = REPO_ROOT / "harness"
HEAVY = ("tensorflow", "keras", "coremltools", "ai_edge_litert", "playwright", "docker")
ARCHITECTURE_DOC = REPO_ROOT / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(HARNESS.rglob("*.py")) if "__pycache__" not in p.parts}


def runtime_imports(path: Path) -> set[str]:
    """The harness modules a module imports when it runs: at module level or inside functions, but not
    under ``if TYPE_CHECKING:`` (those are for mypy only)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for statement in node.orelse:
                visit(statement)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in MODULES}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                walk(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    return cycles


def test_harness_has_no_import_cycles() -> None:
    graph = {m: runtime_imports(p) - {m} for m, p in MODULES.items()}
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in harness/: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_can_fail(tmp_path: Path) -> None:
    """Imports inside functions count, those under TYPE_CHECKING do not, and a cycle is found."""
    a = tmp_path / "a.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import harness.cli\n"
                 "def f():\n    from harness.scenario import Run\n")
    assert runtime_imports(a) == {"harness.scenario"}
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_targets_do_not_import_the_scenario_layer() -> None:
    """Targets are below scenarios: only a target's kit.py (the helpers scenarios use) may build expectations."""
    offenders = [m for m, p in MODULES.items() if m.startswith("harness.targets") and not m.endswith(".kit")
                 and "harness.scenario" in runtime_imports(p)]
    assert not offenders, f"target modules importing harness.scenario: {offenders}"
    assert "harness.scenario" not in runtime_imports(MODULES["harness.artifacts"])


LIGHT = sorted(m for m in MODULES if m in ("harness.scenario", "harness.artifacts")
               or m.startswith("harness.targets"))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_alone_and_light_ones_load_no_heavy_library(module: str) -> None:
    """Each module in a fresh interpreter, by itself: it imports (no cycle breaks it), and the scenario
    layer, the artifact cache and every target module load none of the heavy runtimes."""
    if module == "harness.__main__":
        pytest.skip("runs the command line when imported")
    code = (f"import importlib, json, sys; importlib.import_module({module!r}); "
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    heavy = json.loads(proc.stdout.strip().splitlines()[-1])
    if module in LIGHT:
        assert heavy == [], f"importing {module} loads {heavy}: import them inside the functions that need them"


def test_architecture_doc_names_only_what_exists() -> None:
    """Every harness module, package or file path the doc names exists, so the doc cannot drift."""
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`(harness(?:\.[a-z_0-9]+)+)`", text))
    assert named, "the doc names no harness module in backticks"
    missing = [m for m in sorted(named) if m not in MODULES]
    paths = set(re.findall(r"`((?:harness|scenarios|tests|docs|containers|bench)/[A-Za-z0-9_./-]*)`", text))
    missing += [p for p in sorted(paths) if "<" not in p and not (REPO_ROOT / p).exists()]
    assert not missing, f"{ARCHITECTURE_DOC.name} names what does not exist: {missing}"
    undocumented = [m for m in MODULES if m.count(".") == 1 and m not in named and not m.endswith("__main__")]
    assert not undocumented, f"{ARCHITECTURE_DOC.name} does not mention {undocumented}"


def test_typecheck_batches_keep_base_names_unique() -> None:
    from harness.typecheck import scenario_batches

    files = [Path(p) for p in ("a/procedure.py", "b/procedure.py", "c/procedure.py", "a/litert.py", "b/litert.py",
                               "x.py")]
    batches = scenario_batches(files)
    assert len(batches) == 3 and sorted(p for b in batches for p in b) == sorted(files)
    assert all(len({p.name for p in b}) == len(b) for b in batches)


def test_typecheck_counts_errors_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.typecheck import main

    for sub in ("one", "two"):  # the same base name twice: two batches
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "procedure.py").write_text(f"def {sub}(run) -> int:\n    return 'not an int'\n")
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert sum(": error: Incompatible return value type" in line for line in out) == 2
    assert re.fullmatch(r"typecheck: 2 error\(s\) in 2 file\(s\) \(2 scenario files, 2 mypy runs\) in [0-9.]+ s",
                        out[-1]), out[-1]
    (tmp_path / "two" / "procedure.py").write_text("def fixed(run) -> int:\n    return 1\n")
    assert main([str(tmp_path / "two")]) == 0
    assert capsys.readouterr().out.startswith("typecheck: 0 errors (1 scenario files, 1 mypy run)")
