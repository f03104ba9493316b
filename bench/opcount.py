"""Count the Python bytecodes one request executes, by function or by source line.

On free-threaded 3.13 (no specializing interpreter) a bytecode costs about 140 machine
instructions on average, so this count is a quick, exact, noise-free guide to where the
request path spends its time; ``valgrind --tool=callgrind`` gives the instructions
themselves (see docs/free-threading.md). The request path is the one ``bench/inloop.py``
drives: the real HTTP/1.1 driver, ASGI adapter and stepper on a fake transport, in a
non-main thread.

    python bench/opcount.py                 # per function, hello app
    python bench/opcount.py --app stream --lines --top 60
    python bench/opcount.py --app starlette --layers   # per layer: ftserver, asyncio, framework
    python bench/opcount.py --shared        # loads of objects all worker threads share
    python bench/opcount.py --metrics       # with --metrics on (its cost: the difference)
    python bench/opcount.py --ops           # by instruction (LOAD_ATTR, CALL ...) over the whole path
    python bench/opcount.py --ops --lines   # by instruction and function

Attribute loads and stores cost more than most instructions on 3.13t (no specialization:
each one looks the name up in the type's MRO through the type cache, and then in the
instance), so ``--ops`` shows where a change removes work that a bytecode count weighs
the same as a ``LOAD_FAST``.

``--shared`` counts, per request, the loads that take a reference to an object every worker
thread touches: a mortal object that existed before the worker thread started (made at import
by the main thread), loaded as a code constant (large ints, bytes, tuples ... of imported
code), a global, or an attribute of a local (``self.config``). On 3.13t each such load writes
the object's shared reference count, which is what makes threads contend (docs/free-threading.md,
"What scales on 3.13t").
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dis
import gc
import inspect
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import inloop  # noqa: E402

from ftserver.config import Config  # noqa: E402
from ftserver.metrics import DIR_ENV  # noqa: E402
from ftserver.threads.host import WorkerHost, WorkerStats  # noqa: E402
from ftserver.threads.worker import new_driver  # noqa: E402


IMMORTAL = 2**32 - 1  # sys.getrefcount() of an immortal object on 3.13t
_MISSING = object()


def _loads(code: Any) -> dict[int, tuple[str, Any, str | None]]:
    """Offset -> (opname, argval, the local the previous instruction loaded) for the loads."""
    table: dict[int, tuple[str, Any, str | None]] = {}
    previous = None
    for ins in dis.get_instructions(code):
        if ins.opname in ("LOAD_CONST", "LOAD_GLOBAL", "LOAD_ATTR"):
            table[ins.offset] = (ins.opname, ins.argval, previous)
        previous = ins.argval if ins.opname == "LOAD_FAST" else None
    return table


def _loaded(frame: FrameType, opname: str, argval: Any, local: str | None) -> Any:
    """The object the load at hand will push, where it can be found without side effects."""
    if opname == "LOAD_CONST":
        return argval
    if opname == "LOAD_GLOBAL":
        name = argval
        value = frame.f_globals.get(name, _MISSING)
        return frame.f_builtins.get(name, _MISSING) if value is _MISSING else value
    if local is None:
        return _MISSING
    owner = frame.f_locals.get(local, _MISSING)
    if owner is _MISSING:
        return _MISSING
    try:
        value = inspect.getattr_static(owner, argval)
    except AttributeError:
        return _MISSING
    if type(value).__name__ == "member_descriptor":  # a slot: read it
        return getattr(owner, argval, _MISSING)
    return _MISSING if callable(value) or isinstance(value, (property, staticmethod, classmethod)) else value


ROOT = Path(__file__).resolve().parent.parent


def layer(filename: str) -> str:
    """Where a code object belongs: a module of ours, the harness, a package, or the stdlib."""
    path = Path(filename).resolve()
    if path.is_relative_to(ROOT / "ftserver"):
        return str(path.relative_to(ROOT))
    if path.is_relative_to(ROOT / "bench"):
        return "bench harness and app"
    parts = path.parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    return f"stdlib {path.parent.name if path.name == '__init__.py' or path.parent.name == 'asyncio' else path.stem}"


def count(
    app_name: str,
    n: int,
    by_line: bool,
    shared: bool = False,
    metrics: bool = False,
    layers: bool = False,
    ops: bool = False,
) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    loads: dict[Any, dict[int, tuple[str, Any, str | None]]] = {}
    before: set[int] = set()
    names: dict[str, str] = {}

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            if ops:
                op = dis.opname[code.co_code[frame.f_lasti]]
                counts[f"{op} {Path(code.co_filename).name}:{code.co_qualname}" if by_line else op] += 1
                return tracer
            if layers:
                where = names.get(code.co_filename)
                if where is None:
                    where = names[code.co_filename] = layer(code.co_filename)
            else:
                where = f"{Path(code.co_filename).name}:{code.co_qualname}"
            if shared:
                table = loads.get(code)
                if table is None:
                    table = loads[code] = _loads(code)
                load = table.get(frame.f_lasti)
                if load is None:
                    return tracer
                value = _loaded(frame, *load)
                if value is _MISSING or sys.getrefcount(value) >= IMMORTAL:
                    return tracer
                # (a global is taken as made at import: gc.get_objects() misses untracked dicts and tuples)
                if load[0] == "LOAD_ATTR" and id(value) not in before:
                    return tracer
                where = f"{where}:{frame.f_lineno} {load[0]} {load[1]!r:.40} ({type(value).__name__})"
            counts[f"{where}:{frame.f_lineno}" if by_line and not shared else where] += 1
        return tracer

    def thread_main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        interface = "rsgi" if hasattr(app, "__rsgi__") else "asgi"
        config = Config(app=app, lifespan="off", interface=interface, metrics=metrics)
        ctx = WorkerHost(loop, app, config, WorkerStats())
        protocol = new_driver(ctx)
        protocol.connection_made(inloop.FakeTransport())  # type: ignore[arg-type]

        def drive(left: int, done: asyncio.Future[None]) -> None:
            if left == 0:
                done.set_result(None)
                return
            protocol.data_received(data)
            loop.call_soon(drive, left - 1, done)

        for requests, traced in ((100, False), (n, True)):  # warm up, then count
            done = loop.create_future()
            loop.call_soon(drive, requests, done)
            if traced:
                sys.settrace(tracer)
            loop.run_until_complete(done)
            sys.settrace(None)
        ctx.stepper.close()
        ctx.stepper.cancel_all()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    app = inloop.app(app_name)  # imported by the main thread, as the server does
    data = inloop.request(app_name)
    if shared:
        before.update(id(o) for o in gc.get_objects())
    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", choices=sorted(inloop.APPS), default="hello")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--lines", action="store_true", help="count by source line, not by function")
    parser.add_argument("--shared", action="store_true", help="count loads of objects all threads share")
    parser.add_argument("--layers", action="store_true", help="count by module of ours, package or stdlib module")
    parser.add_argument("--metrics", action="store_true", help="with --metrics on")
    parser.add_argument("--ops", action="store_true", help="count by instruction, not by function")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    if args.metrics:
        os.environ[DIR_ENV] = tempfile.mkdtemp(prefix="opcount-metrics-")
    counts = count(args.app, args.n, args.lines, args.shared, args.metrics, args.layers, args.ops)
    what = "loads of shared objects" if args.shared else "bytecodes"
    print(f"{args.app}: {sum(counts.values()) / args.n:.0f} {what} per request")
    for where, total in counts.most_common(args.top):
        print(f"{total / args.n:8.1f}  {where}")


if __name__ == "__main__":
    main()
