"""Static checks of the package's shape (docs/architecture.md): no import circles, small
modules, no private name imported from another module."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ftserver"
#: "Modules small (≤ ~600 lines)".
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _top_level_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Imports run when the module is (type-)checked or imported: module level, including
    ``if TYPE_CHECKING:`` and try/except blocks, not those inside functions."""
    found: list[ast.Import | ast.ImportFrom] = []
    todo: list[ast.stmt] = list(ast.parse(path.read_text(), str(path)).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, (ast.If, ast.Try)):
            todo += node.body + node.orelse + getattr(node, "finalbody", [])
            for handler in getattr(node, "handlers", []):
                todo += handler.body
    return found


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _imported_modules(module: str, path: Path) -> set[str]:
    """The ftserver modules ``module`` imports (a name imported from a package that is a
    submodule of it counts as that submodule)."""
    targets: set[str] = set()
    for node in _top_level_imports(path):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        base = _resolve(module, path, node)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            targets.add(sub if sub in MODULES else base)
    return {target for target in targets if target in MODULES and target != module}


def _cycles() -> list[list[str]]:
    graph = {module: sorted(_imported_modules(module, path)) for module, path in MODULES.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module)
    return cycles


def test_no_import_circles():
    assert _cycles() == []


def test_the_circle_check_finds_a_circle(monkeypatch):
    graph_of = {"ftserver.a": {"ftserver.b"}, "ftserver.b": {"ftserver.a"}}
    monkeypatch.setattr(f"{__name__}.MODULES", {name: Path(name) for name in graph_of})
    monkeypatch.setattr(f"{__name__}._imported_modules", lambda module, path: graph_of[module])
    assert _cycles() == [["ftserver.a", "ftserver.b", "ftserver.a"]]


def test_modules_are_small():
    sizes = {module: len(path.read_text().splitlines()) for module, path in MODULES.items()}
    assert {module: lines for module, lines in sizes.items() if lines > MAX_LINES} == {}


def test_no_private_name_is_imported_from_another_module():
    found = [
        f"{module}: from {node.module} import {alias.name}"
        for module, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.ImportFrom)
        and _resolve(module, path, node).startswith("ftserver")
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]
    assert found == []
