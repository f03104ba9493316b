"""Static checks for the free-threading traps that cost more than a few nanoseconds.

On free-threaded 3.13, ``dict.get()`` called from a worker thread on a dict another live
thread made (a module-level table, made by the main thread at import) spins through 40
``sched_yield()`` calls per call, and worker threads doing it at once hand the dict's lock
back and forth for milliseconds (docs/free-threading.md, "Objects owned by another
thread"). Subscription and ``in`` do not. Worker code must not call ``.get()`` (or
``.setdefault()``/``.pop()``) on a module-level dict.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ftserver"
#: Code that runs on worker (event loop or WSGI handler) threads.
WORKER_CODE = sorted(
    path for folder in ("protocols", "threads", "interfaces") for path in (PACKAGE / folder).rglob("*.py")
)
LOCKING_METHODS = {"get", "setdefault", "pop"}


def _module_dicts(tree: ast.Module) -> set[str]:
    """Names bound at module level to a dict display, comprehension or ``dict(...)``."""
    names: set[str] = set()
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        is_dict = isinstance(value, (ast.Dict, ast.DictComp)) or (
            isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict"
        )
        if is_dict:
            names.update(target.id for target in targets if isinstance(target, ast.Name))
    return names


def _violations(path: Path) -> list[str]:
    """``file:line: NAME.method()`` for each locking call on a module-level dict."""
    tree = ast.parse(path.read_text(), str(path))
    tables = _module_dicts(tree)
    return [
        f"{path.name}:{node.lineno}: {node.func.value.id}.{node.func.attr}()"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOCKING_METHODS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in tables
    ]


def test_the_rule_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("TABLE = {1: 2}\nOTHER: dict = dict(a=1)\ndef f(k):\n    return TABLE.get(k), OTHER.pop(k), TABLE[k]\n")
    assert [line.split(": ", 1)[1] for line in _violations(sample)] == ["TABLE.get()", "OTHER.pop()"]


@pytest.mark.parametrize("path", WORKER_CODE, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_worker_code_calls_no_locking_method_on_a_module_level_dict(path):
    assert _violations(path) == []
