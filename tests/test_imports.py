"""The package's import graph: no circle, and ``alps`` imports at the top of each module.

An import inside a function is allowed only where it defers a heavy optional dependency on purpose
(torch, mmengine, mmseg, segment_anything, or an ``alps`` module that imports them); each such line says so
with a ``# deferred:`` comment, so that a hidden circle cannot come back as a function-level import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "alps"
MARK = "# deferred:"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """The ``alps`` modules one import statement names (``from alps.x import y``: alps.x.y if a module)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parent = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
            base = ".".join([*parent, base]).strip(".")
        names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
    found = []
    for name in names:
        while name and name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        if name in MODULES and name.startswith("alps"):
            found.append(name)
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, int, str]]]:
    """Import edges between ``alps`` modules (wherever the import is), and unmarked ones in functions."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    unmarked = []
    for module, path in MODULES.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        for function in ast.walk(tree):
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.Import | ast.ImportFrom):
                        ours = _imported(node, module, path.name == "__init__.py")
                        if (
                            ours
                            and MARK not in lines[node.lineno - 1]
                            and MARK not in lines[node.end_lineno - 1]
                        ):
                            unmarked.append((module, node.lineno, lines[node.lineno - 1].strip()))
        for node in ast.walk(tree):
            # Imports in functions count too: a circle hidden in a function is still a circle.
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[module].update(
                    n for n in _imported(node, module, path.name == "__init__.py") if n != module
                )
    return graph, unmarked


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_has_no_circle():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_a_circle_would_be_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_imports_inside_functions_are_marked_deferrals():
    _, unmarked = _graph()
    assert unmarked == [], "alps imports inside functions without a `# deferred: <why>` comment"
