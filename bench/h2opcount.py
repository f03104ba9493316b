"""Count the Python bytecodes one HTTP/2 request executes, by function (as ``opcount.py``
does for HTTP/1.1): the real ``HTTP2Driver``, ASGI adapter and stepper on a fake
transport, each request a HEADERS frame (END_STREAM) made beforehand by h2's client.

    python bench/h2opcount.py                # per function, hello app
    python bench/h2opcount.py --streams 10   # requests arriving 10 per read
    python bench/h2opcount.py --shared       # loads of objects all worker threads share
    python bench/h2opcount.py --parallel 1,2 # no tracing: CPU µs per request, 1 and 2 threads at once

``--shared`` counts, per request, the loads that take a reference to an object every worker
thread touches (``opcount.py --shared`` explains which), and also the values h2 reads out of
its module-level tables by subscript (``_transitions[(state, input)]``). ``--parallel``
runs the same harness in N threads side by side, each with its own connection, and prints
the CPU time per request of each thread count (best of ``--reps``): what the request path
itself costs more when threads run at once, without the kernel or a load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dis
import gc
import inspect
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import inloop  # noqa: E402

from ftserver.config import Config  # noqa: E402
from ftserver.threads.host import WorkerHost, WorkerStats  # noqa: E402
from ftserver.threads.http2 import HTTP2Driver  # noqa: E402

FIELDS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"127.0.0.1:8000"), (b":path", b"/"), (b"user-agent", b"h2load")]
MISSING = object()
IMMORTAL = 2**32 - 1  # sys.getrefcount() of an immortal object on 3.13t


def client_reads(requests: int, per_read: int) -> tuple[bytes, list[bytes]]:
    """The client's preface and SETTINGS, then its requests, ``per_read`` per read."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    # (the connection's receive window at its largest, as h2load's: 65,535 bytes would
    # hold back the responses after ~5,000 requests)
    client.increment_flow_control_window(2**31 - 1 - 65535)
    preface = client.data_to_send()
    reads = []
    for _ in range(0, requests, per_read):
        for _ in range(per_read):
            client.send_headers(client.get_next_available_stream_id(), FIELDS, end_stream=True)
        reads.append(client.data_to_send())
    return preface, reads


def serve(app_name: str, reads: list[bytes], preface: bytes, warm: int, tracer: Any = None) -> float:
    """Feed ``reads`` to one driver on this thread's own loop (the first ``warm`` untraced);
    the thread's CPU seconds for the rest."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = inloop.app(app_name)
    ctx = WorkerHost(loop, app, Config(app=app, lifespan="off", interface="asgi", h2_max_concurrent_streams=1000), WorkerStats())
    driver = HTTP2Driver(ctx)
    driver.connection_made(inloop.FakeTransport())
    driver.data_received(bytes(preface))
    spent = 0.0

    def drive(batches: list[bytes], index: int, traced: bool, done: asyncio.Future[None]) -> None:
        # (from a loop callback, as the selector would: not inside a task)
        if index == len(batches):
            done.set_result(None)
            return
        if traced:
            sys.settrace(tracer)
        driver.data_received(batches[index])
        if traced:
            sys.settrace(None)
        loop.call_soon(drive, batches, index + 1, traced, done)

    # (the reads copied here: bytes this thread made, as a socket's recv would)
    for batches, traced in (([bytes(r) for r in reads[:warm]], False), ([bytes(r) for r in reads[warm:]], tracer is not None)):
        done = loop.create_future()
        loop.call_soon(drive, batches, 0, traced, done)
        start = time.thread_time()
        loop.run_until_complete(done)
        spent = time.thread_time() - start
    ctx.stepper.close()
    ctx.stepper.cancel_all()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    return spent


def _loads(code: Any) -> dict[int, tuple[str, Any]]:
    """Offset -> (kind, what) for the instructions that push an object: ``const`` (its
    value), ``fast`` (local names), ``global`` (a name), ``attr`` (an expression, then the
    name: ``self.machine.state``), ``table`` (a module-level table's value, ``T[key]``)."""
    table: dict[int, tuple[str, Any]] = {}
    expr: Any = None  # what the previous instruction pushed, if known
    table_global = None  # a LOAD_GLOBAL whose BINARY_SUBSCR may follow
    for ins in dis.get_instructions(code):
        name, argval = ins.opname, ins.argval
        pushed: Any = None
        if name == "LOAD_CONST":
            table[ins.offset] = ("const", argval)
        elif name in ("LOAD_FAST", "LOAD_FAST_CHECK"):
            table[ins.offset] = ("fast", (argval,))
            pushed = ("fast", argval)
        elif name == "LOAD_FAST_LOAD_FAST":
            table[ins.offset] = ("fast", argval)
        elif name == "LOAD_GLOBAL":
            table[ins.offset] = ("global", argval)
            pushed = table_global = ("global", argval)
        elif name == "LOAD_ATTR" and expr is not None:
            if not ins.arg & 1:  # (a method load's callable is immortal or made per call)
                table[ins.offset] = ("attr", (expr, argval))
                pushed = ("attr", expr, argval)
        elif name == "BINARY_SUBSCR" and table_global is not None:
            table[ins.offset] = ("table", table_global[1])
            table_global = None
        elif name in ("STORE_FAST", "POP_TOP", "RETURN_VALUE", "CALL", "STORE_ATTR"):
            table_global = None
        expr = pushed
    return table


def _value(frame: FrameType, expr: Any) -> Any:
    """The object an expression of ``_loads`` names, found without side effects."""
    kind = expr[0]
    if kind == "fast":
        return frame.f_locals.get(expr[1], MISSING)
    if kind == "global":
        value = frame.f_globals.get(expr[1], MISSING)
        return frame.f_builtins.get(expr[1], MISSING) if value is MISSING else value
    owner = _value(frame, expr[1])
    if owner is MISSING:
        return MISSING
    try:
        value = inspect.getattr_static(owner, expr[2])
    except AttributeError:
        return MISSING
    if type(value).__name__ == "member_descriptor":  # a slot: read it
        return getattr(owner, expr[2], MISSING)
    if callable(value) and not isinstance(value, type) or isinstance(value, (property, staticmethod, classmethod)):
        return MISSING
    return value


def _shared(value: Any, before: set[int], const: bool) -> bool:
    """A mortal object every thread touches: a constant of imported code, or made before
    the worker thread started (``before``: the ids of the objects then)."""
    if value is MISSING or sys.getrefcount(value) >= IMMORTAL:
        return False
    return const or id(value) in before


def count(app_name: str, n: int, per_read: int, shared: bool = False) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    preface, reads = client_reads(n + 200, per_read)
    loads: dict[Any, dict[int, tuple[str, Any]]] = {}
    before: set[int] = set()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event != "opcode":
            return tracer
        code = frame.f_code
        where = f"{Path(code.co_filename).name}:{code.co_qualname}"
        if not shared:
            counts[where] += 1
            return tracer
        table = loads.get(code)
        if table is None:
            table = loads[code] = _loads(code)
        load = table.get(frame.f_lasti)
        if load is None:
            return tracer
        kind, what = load
        line = f"{where}:{frame.f_lineno}"
        if kind == "const":
            if _shared(what, before, True):
                counts[f"{line} const {what!r:.40} ({type(what).__name__})"] += 1
        elif kind == "table":
            counts[f"{line} {what}[...] (a value of a module-level table)"] += 1
        elif kind == "fast":
            for name in what:
                value = frame.f_locals.get(name, MISSING)
                if _shared(value, before, False):
                    counts[f"{line} local {name} ({type(value).__name__})"] += 1
        else:
            value = _value(frame, (kind, *what) if kind == "attr" else (kind, what))
            if _shared(value, before, False):
                label = what if kind == "global" else what[1]
                counts[f"{line} {kind} {label} ({type(value).__name__})"] += 1
        return tracer

    def thread_main() -> None:
        serve(app_name, reads, preface, 200 // per_read, tracer)

    if shared:
        before.update(id(o) for o in gc.get_objects())
    worker = threading.Thread(target=thread_main)  # (not the main thread, as a worker)
    worker.start()
    worker.join()
    return counts


def parallel(app_name: str, n: int, per_read: int, threads: int) -> float:
    """CPU µs per request, mean over ``threads`` threads serving side by side."""
    preface, reads = client_reads(n + 200, per_read)
    barrier = threading.Barrier(threads)
    spent: list[float] = []

    def thread_main() -> None:
        barrier.wait()
        spent.append(serve(app_name, reads, preface, 200 // per_read))

    workers = [threading.Thread(target=thread_main) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(spent) / len(spent) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="hello", choices=sorted(inloop.APPS))
    parser.add_argument("-n", type=int, default=200, help="requests traced (timed: --parallel)")
    parser.add_argument("--streams", type=int, default=1, help="requests per read")
    parser.add_argument("--shared", action="store_true", help="count loads of objects all threads share")
    parser.add_argument("--parallel", help="thread counts to time side by side, e.g. 1,2")
    parser.add_argument("--reps", type=int, default=5, help="--parallel: runs per thread count")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.parallel:
        n = args.n if args.n != 200 else 10000
        for threads in [int(t) for t in args.parallel.split(",")]:
            figures = sorted(parallel(args.app, n, args.streams, threads) for _ in range(args.reps))
            shown = " ".join(f"{f:.1f}" for f in figures)
            print(f"{args.app}, {threads} thread(s), {args.streams} per read: CPU µs per request {shown} (best {figures[0]:.1f})")
        return
    counts = count(args.app, args.n, args.streams, args.shared)
    what = "loads of shared objects" if args.shared else "bytecodes"
    head = f"{args.app}: {sum(counts.values()) / args.n:.0f} {what} per HTTP/2 request ({args.streams} per read)"
    print("\n".join([head, *(f"{value / args.n:8.1f}  {name}" for name, value in counts.most_common(args.top))]))


if __name__ == "__main__":
    main()
