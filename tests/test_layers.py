"""The package's shape: no import cycle in audit_app, no import inside a function in audit/,
and the domain imports neither the web API nor the console."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audit_app"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST, modules: set[str]) -> set[str]:
    """The audit_app modules `tree` imports anywhere (a name imported from a package counts as its module)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in modules}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return found & modules


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: _imports(ast.parse(path.read_text()), modules) - {name} for name, path in paths.items()}


def _is_package(name: str) -> bool:
    return name == "audit_app" or (PACKAGE / name.split(".", 1)[1].replace(".", "/")).is_dir()


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among modules (packages' __init__ re-exports excluded), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if node.startswith(f"{target}."):
                continue  # a module importing its own package's __init__
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_in_the_package() -> None:
    graph = {name: targets for name, targets in _graph().items() if not _is_package(name)}
    graph = {name: {t for t in targets if t in graph} for name, targets in graph.items()}
    assert _cycle(graph) is None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_inside_a_function_in_the_domain() -> None:
    late = []
    for path in (PACKAGE / "audit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                late += [
                    f"{path.name}:{inner.lineno}"
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Import | ast.ImportFrom)
                ]
    assert late == []


def test_the_domain_imports_neither_api_nor_ui() -> None:
    graph = _graph()
    for name, targets in graph.items():
        if name == "audit_app.audit" or name.startswith("audit_app.audit."):
            assert not {t for t in targets if t.startswith(("audit_app.api", "audit_app.ui"))}, name
