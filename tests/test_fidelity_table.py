"""The fidelity table of the TF Serving-compatible server lists every text the server composes.

The server composes each of its texts with ``tfs_compat.texts.T("...<name>...", name=value)``
(a string literal template).  These tests read the server's source with ``ast`` and check:

* every ``T`` call has a literal template whose placeholders are exactly its keyword arguments;
* no text reaches an error, status, log or stdout sink without going through ``T``, and no other
  string formatting (f-strings, ``%``, ``str.format``) exists in the package outside a short,
  reasoned allow-list (log-line layout, thread names, ...);
* every template is a row of the fidelity table in ``containers/tfserving-compat/README.md``,
  every row's text is a template the source still has, and every row cites its source (a
  tensorflow/serving file and line at 2.19.0, a ``TF core:`` file, a bundled library) or says
  **extension**.

Nothing here imports the server (no TensorFlow needed).
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Iterator, Optional

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "containers" / "tfserving-compat" / "tfs_compat"
README = ROOT / "containers" / "tfserving-compat" / "README.md"
PLACEHOLDER = re.compile(r"<([a-z][a-z0-9_]*)>")

# Calls whose argument is a text the server sends or logs: name -> index of the text argument.
SINKS: dict[str, int] = {
    "ServingError": 1, "invalid_argument": 0, "failed_precondition": 0, "not_found": 0,
    "_print": 0, "log_error": 0, "set_details": 0, "abort": 1,
}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}

# (module, function) where string formatting is not a composed message, with the reason.
FORMATTING_ALLOWED: dict[tuple[str, str], str] = {
    ("logs.py", "format"): "the glog line layout around a message (date, level, file:line)",
    ("batching.py", "__init__"): "batch thread names",
    ("rest.py", "_dispatch"): "the handler method name looked up for the REST action",
    ("json_codec.py", "_json_string"): "rapidjson's \\u00XX escape of a control character",
    ("json_codec.py", "format_decimal"): "WriteDecimal's printf %g / %.9g number formats",
    ("texts.py", "T"): "the KeyError for a template used with the wrong values (a bug here)",
}
SOURCE_CITATION = re.compile(
    r"tensorflow_serving/[\w/]+\.(?:cc|h|proto):\d+|TF core: `(?:tensorflow|tsl)/|rapidjson: `|absl: `|\*\*extension\*\*")


@dataclasses.dataclass(frozen=True)
class Template:
    text: str
    where: str  # file:line


@dataclasses.dataclass(frozen=True)
class Row:
    texts: tuple[str, ...]
    code: str
    source: str
    line: int


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.glob("*.py")):
        yield path.name, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _call_name(node: ast.Call) -> str:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return ""


def _is_t_call(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and _call_name(node) == "T" and isinstance(node.func, ast.Name)


def _templates() -> list[Template]:
    found = []
    for name, module in _modules():
        for node in ast.walk(module):
            if _is_t_call(node):
                assert isinstance(node, ast.Call)
                first = node.args[0] if node.args else None
                text = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else None
                found.append(Template(text if text is not None else "", f"{name}:{node.lineno}"))
    return found


def _functions(module: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """(enclosing function name or "<module>", node) for every node of the module."""
    def visit(node: ast.AST, function: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            yield inner, child
            yield from visit(child, inner)
    yield from visit(module, "<module>")


def _literal_text(node: ast.AST) -> bool:
    """A text composed in place: a literal, an f-string, or string arithmetic/formatting."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) or _literal_text(node.right)
    if isinstance(node, ast.IfExp):
        return _literal_text(node.body) or _literal_text(node.orelse)
    if isinstance(node, ast.Call) and _call_name(node) == "format":
        return True
    return False


def _sink_argument(node: ast.Call) -> Optional[ast.AST]:
    name = _call_name(node)
    if name in LOG_METHODS and isinstance(node.func, ast.Attribute):
        return node.args[0] if node.args else None
    if name in SINKS and len(node.args) > SINKS[name]:
        return node.args[SINKS[name]]
    return None


def _cells(line: str) -> list[str]:
    """A markdown table row's cells (``\\|`` inside a cell is not a separator)."""
    parts = re.split(r"(?<!\\)\|", line.strip())
    return [cell.strip() for cell in parts[1:-1]]


def _code_spans(cell: str) -> list[str]:
    """CommonMark code spans: a run of N backticks up to the next run of exactly N."""
    spans: list[str] = []
    index = 0
    while True:
        opening = re.compile(r"`+").search(cell, index)
        if opening is None:
            return spans
        ticks = opening.group(0)
        closing = re.compile(r"(?<!`)" + ticks + r"(?!`)").search(cell, opening.end())
        if closing is None:
            return spans
        content = cell[opening.end():closing.start()]
        if len(content) > 1 and content.startswith(" ") and content.endswith(" ") and content.strip():
            content = content[1:-1]
        spans.append(content)
        index = closing.end()


def _table() -> list[Row]:
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Fidelity table"))
    rows = []
    for number, line in enumerate(lines[start + 1:], start + 2):
        if line.startswith("## "):
            break
        if not line.startswith("|") or line.startswith("| ---") or line.startswith("| text |"):
            continue
        cells = _cells(line)
        assert len(cells) == 3, f"README.md:{number}: a fidelity row has 3 cells, found {len(cells)}"
        texts = tuple(span.replace("\\|", "|").replace("\\n", "\n").replace("\\t", "\t")
                      for span in _code_spans(cells[0]))
        rows.append(Row(texts, cells[1], cells[2], number))
    return rows


# ---------------------------------------------------------------------- the source


def test_the_package_composes_texts_with_t() -> None:
    templates = _templates()
    assert len(templates) > 100, "the extraction found almost no templates: has T been renamed?"
    assert [t.where for t in templates if not t.text] == [], "T takes a string literal template"


def test_every_t_call_fills_exactly_its_placeholders() -> None:
    wrong = []
    for name, module in _modules():
        for node in ast.walk(module):
            if not _is_t_call(node):
                continue
            assert isinstance(node, ast.Call)
            first = node.args[0]
            if not isinstance(first, ast.Constant) or not isinstance(first.value, str):
                continue
            wanted = set(PLACEHOLDER.findall(first.value))
            given = {keyword.arg for keyword in node.keywords}
            if None in given or wanted != given or len(node.args) != 1:
                wrong.append(f"{name}:{node.lineno}: placeholders {sorted(wanted)}, values {sorted(map(str, given))}")
    assert wrong == []


def _bare_texts(name: str, module: ast.Module) -> list[str]:
    bare = []
    for node in ast.walk(module):
        if isinstance(node, ast.Call):
            argument = _sink_argument(node)
            if argument is not None and not _is_t_call(argument) and _literal_text(argument):
                bare.append(f"{name}:{node.lineno}: {ast.unparse(argument)[:80]}")
    return bare


def test_no_text_reaches_a_sink_without_t() -> None:
    bare = [text for name, module in _modules() for text in _bare_texts(name, module)]
    assert bare == [], "wrap these texts in T(...) and list them in the fidelity table"


@pytest.mark.parametrize("snippet, caught", [
    ('raise invalid_argument("bad")', True),
    ('raise ServingError(Code.UNKNOWN, f"bad {x}")', True),
    ('get_logger().info("a %s", x)', True),
    ('_print("x" + y)', True),
    ('raise invalid_argument(T("bad <x>", x=x))', False),
    ('raise ServingError(Code.UNKNOWN, str(error))', False),
    ('get_logger().error(text)', False),
])
def test_sink_check_catches_bare_texts(snippet: str, caught: bool) -> None:
    assert bool(_bare_texts("snippet", ast.parse(snippet))) == caught


def test_no_other_string_formatting() -> None:
    found = []
    for name, module in _modules():
        for function, node in _functions(module):
            formatted = isinstance(node, ast.JoinedStr) or (
                isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod)
                and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)) or (
                isinstance(node, ast.Call) and _call_name(node) == "format"
                and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Constant))
            if formatted and (name, function) not in FORMATTING_ALLOWED:
                found.append(f"{name}:{getattr(node, 'lineno', '?')} in {function}()")
    assert found == [], "compose texts with T(...), or add the place to FORMATTING_ALLOWED with a reason"


# ---------------------------------------------------------------------- the table


def test_every_template_is_in_the_fidelity_table() -> None:
    listed = {text for row in _table() for text in row.texts}
    missing = sorted({f"{t.where}: {t.text!r}" for t in _templates() if t.text not in listed})
    assert missing == [], "add these texts to the fidelity table in containers/tfserving-compat/README.md"


def test_every_table_text_is_in_the_source() -> None:
    composed = {t.text for t in _templates()}
    stale = [f"README.md:{row.line}: {text!r}" for row in _table() for text in row.texts if text not in composed]
    assert stale == [], "these fidelity rows name texts the server no longer composes"


def test_every_row_cites_its_source() -> None:
    rows = _table()
    assert rows, "no fidelity table found in the README"
    empty = [f"README.md:{row.line}" for row in rows if not row.texts]
    uncited = [f"README.md:{row.line}: {row.source[:60]!r}" for row in rows if not SOURCE_CITATION.search(row.source)]
    assert empty == [] and uncited == []


def test_extensions_are_marked_as_such() -> None:
    """Texts that exist only in this server say so in their row (they must not pass for TF Serving's)."""
    ours = {"Received signal <signal>; shutting down.", "REST handler failed",
            "--<flag> is accepted but not implemented by the TF Serving-compatible server; ignored."}
    rows = {text: row for row in _table() for text in row.texts}
    assert [text for text in ours if "**extension**" not in rows[text].source] == []


@pytest.mark.parametrize("cell, spans", [
    ("`a` / `b`", ["a", "b"]),
    ("`` x `saved_model.pb` y ``", ["x `saved_model.pb` y"]),
    ("` (Re-)adding model: <model>`", [" (Re-)adding model: <model>"]),
])
def test_code_span_reader(cell: str, spans: list[str]) -> None:
    assert _code_spans(cell) == spans
