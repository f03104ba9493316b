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


# -- objects every worker thread would share ------------------------------------------------
#
# On 3.13t a module-level ``threading.local`` is slow to read from every thread (cpython #128691),
# an ``lru_cache``d function is one shared cache all threads update, and a module-level lock is
# one lock all threads contend for (rows of ``python bench/sharing.py``; docs/free-threading.md,
# "What scales on 3.13t"). Worker code keeps such state per worker thread (``WorkerHost``) instead.
SHARED_STATE_FACTORIES = {
    "threading.local": "a threading.local",
    "threading.Lock": "a module-level lock",
    "threading.RLock": "a module-level lock",
    "threading.Condition": "a module-level lock",
    "functools.lru_cache": "an lru_cache",
    "functools.cache": "an lru_cache",
}


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a name or attribute chain, else ""."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def _shared_state(path: Path) -> list[str]:
    """``file:line: what`` for each thread-local, cache decorator, or lock made at module level."""
    tree = ast.parse(path.read_text(), str(path))
    aliases: dict[str, str] = {}  # local name -> dotted origin (from threading import local)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("threading", "functools"):
            for alias in node.names:
                aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def origin(expr: ast.expr) -> str:
        name = _dotted(expr.func if isinstance(expr, ast.Call) else expr)
        head, _, rest = name.partition(".")
        return f"{aliases[head]}.{rest}".rstrip(".") if head in aliases else name

    found = []
    for node in ast.walk(tree):
        decorators = getattr(node, "decorator_list", [])
        for decorator in decorators:
            what = origin(decorator)
            if what in ("functools.lru_cache", "functools.cache"):
                found.append(f"{path.name}:{decorator.lineno}: {SHARED_STATE_FACTORIES[what]}")
        if isinstance(node, ast.Call) and origin(node) == "threading.local":
            found.append(f"{path.name}:{node.lineno}: a threading.local")
    for node in tree.body:  # locks made at import: one for every thread
        value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
        if isinstance(value, ast.Call) and origin(value) in SHARED_STATE_FACTORIES:
            what = SHARED_STATE_FACTORIES[origin(value)]
            entry = f"{path.name}:{node.lineno}: {what}"
            if entry not in found:
                found.append(entry)
    return found


def test_the_shared_state_rule_finds_what_it_looks_for(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import functools, threading\nfrom threading import local as L, Lock\nfrom functools import cache\n"
        "A = threading.local()\nB = L()\nC = Lock()\nD = threading.RLock()\n"
        "@functools.lru_cache(maxsize=8)\ndef f(): pass\n@cache\ndef g(): pass\n"
        "class K:\n    def __init__(self):\n        self.lock = threading.Lock()\n"
    )
    assert sorted(line.split(": ", 1)[1] for line in _shared_state(sample)) == [
        "a module-level lock", "a module-level lock", "a threading.local", "a threading.local", "an lru_cache", "an lru_cache",
    ]  # fmt: skip


@pytest.mark.parametrize("path", WORKER_CODE, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_worker_code_shares_no_thread_local_cache_or_module_level_lock(path):
    assert _shared_state(path) == []
