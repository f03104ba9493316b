"""What scales on free-threaded CPython and what serializes: total calls/s of small loops.

    python bench/sharing.py [--threads 1,2,4] [--seconds 0.7] [--reps 3] [--only NAME,...]

Each row runs one loop body (``ITERATIONS`` iterations per call) in 1, 2, 4 ... threads at once
for ``--seconds`` and reports the calls per second of all threads together, the CPU time per
call (the process's user+system time over the calls) and the cores the threads kept busy: a
row whose threads kept fewer cores busy than there were threads lost CPUs to other processes,
and says little about contention. Where the threads share nothing,
calls/s grows with the threads (up to the free cores) and CPU per call stays flat; where they
touch one object that is not immortal, every thread writes that object's shared reference
count, the cache line bounces between cores and CPU per call grows with the threads.

The loop bodies live in this module and are run from an *imported* copy of it (the script
re-imports itself as ``sharing``), because that is how an application's code is loaded: on
3.13t the constants of code compiled by ``import`` or ``compile()`` -- ints outside
-5..256, floats, bytes, tuples -- are ordinary objects with a reference count, while the
code of the ``__main__`` script gets immortal constants. Strings, small ints, ``None``,
``True``/``False`` and (once a second thread has started) functions, classes and code
objects are immortal everywhere. See docs/free-threading.md ("What scales on 3.13t").
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

#: Iterations per call: long enough that the call itself is noise.
ITERATIONS = 200


class Point:
    """An ordinary instance: shared when created once at import."""

    __slots__ = ("x", "y")

    def __init__(self, x: int, y: int) -> None:
        self.x = x
        self.y = y


SHARED_POINT = Point(3, 4)
SHARED_TABLE = {"a": 1, "b": 2}
SHARED_LOCK = threading.Lock()
THREAD_LOCAL = threading.local()


# -- the loop bodies: each takes a per-thread ``state`` made by its setup in the thread -------


def small_ints(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc = (acc ^ i) & 255
    return acc


def wsgi_cpu_body(state: object) -> int:
    """The body of ``bench.apps:wsgi_cpu``: ``0xFFFFFFFF`` is a shared, mortal constant."""
    acc = 0
    for i in range(ITERATIONS):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return acc


def wsgi_cpu_own_mask(state: int) -> int:
    """The same arithmetic with the mask made by the calling thread (``state``)."""
    acc = 0
    mask = state
    for i in range(ITERATIONS):
        acc = (acc * 31 + i) & mask
    return acc


def wsgi_cpu_twin(state: object) -> int:
    """``bench.apps:wsgi_cpu_small``'s body: the same shape of work on small ints only."""
    acc = 0
    for i in range(ITERATIONS):
        acc = (acc * 31 + i) & 255
    return acc


def big_int_constant(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc = (acc + 1000) & 255
    return acc


def big_int_results(state: int) -> int:
    """Large ints made (and freed) by the calling thread: allocation alone scales."""
    acc = 0
    big = state
    for i in range(ITERATIONS):
        acc = (acc + big) & 255
    return acc


def bytes_constant(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc += len(b"Hello, world!")
    return acc


def str_constant(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc += len("Hello, world!")
    return acc


def tuple_constant(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc += i in (1, 2)
    return acc


def shared_instance(state: object) -> int:
    acc = 0
    point = SHARED_POINT
    for i in range(ITERATIONS):
        acc += point.x
    return acc


def own_instance(state: Point) -> int:
    """The same reads on a ``Point`` the calling thread made (``state``)."""
    acc = 0
    point = state
    for i in range(ITERATIONS):
        acc += point.x
    return acc


def shared_dict(state: object) -> int:
    acc = 0
    table = SHARED_TABLE
    for i in range(ITERATIONS):
        acc += table["a"]
    return acc


def own_dict(state: dict[str, int]) -> int:
    acc = 0
    table = state
    for i in range(ITERATIONS):
        acc += table["a"]
    return acc


def module_function(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc += _one()
    return acc


def _one() -> int:
    return 1


def thread_local(state: object) -> int:
    acc = 0
    local = THREAD_LOCAL
    for i in range(ITERATIONS):
        acc += local.x
    return acc


def _set_thread_local() -> None:
    THREAD_LOCAL.x = 1


@functools.lru_cache(maxsize=64)
def _cached(key: str) -> int:
    return len(key)


def lru_cached_call(state: object) -> int:
    acc = 0
    for i in range(ITERATIONS):
        acc += _cached("key")
    return acc


def shared_lock(state: object) -> int:
    acc = 0
    lock = SHARED_LOCK
    for i in range(ITERATIONS):
        with lock:
            acc += 1
    return acc


def own_lock(state: threading.Lock) -> int:
    acc = 0
    lock = state
    for i in range(ITERATIONS):
        with lock:
            acc += 1
    return acc


def _nothing() -> None:
    return None


#: (name, what the body does, body, the per-thread state its thread makes first)
ROWS: tuple[tuple[str, str, Callable[..., int], Callable[[], object]], ...] = (
    ("small_ints", "`acc = (acc ^ i) & 255`: small ints only", small_ints, _nothing),
    ("wsgi_cpu", "`acc = (acc * 31 + i) & 0xFFFFFFFF` (bench.apps:wsgi_cpu)", wsgi_cpu_body, _nothing),
    ("wsgi_cpu_own_mask", "the same, the mask made by the thread: `int('ffffffff', 16)`",
     wsgi_cpu_own_mask, lambda: int("ffffffff", 16)),
    ("wsgi_cpu_small", "`acc = (acc * 31 + i) & 255` (bench.apps:wsgi_cpu_small)", wsgi_cpu_twin, _nothing),
    ("big_int_constant", "`acc = (acc + 1000) & 255`: a large-int constant", big_int_constant, _nothing),
    ("big_int_own", "the same, 1000 made by the thread (`int('1000')`)", big_int_results, lambda: int("1000")),
    ("bytes_constant", '`len(b"Hello, world!")`: a bytes constant', bytes_constant, _nothing),
    ("str_constant", '`len("Hello, world!")`: a str constant (immortal)', str_constant, _nothing),
    ("tuple_constant", "`i in (1, 2)`: a tuple constant", tuple_constant, _nothing),
    ("shared_instance", "`point.x`, one module-level instance", shared_instance, _nothing),
    ("own_instance", "`point.x`, each thread its own instance", own_instance, lambda: Point(3, 4)),
    ("shared_dict", '`table["a"]`, one module-level dict', shared_dict, _nothing),
    ("own_dict", '`table["a"]`, each thread its own `dict(TABLE)`', own_dict, lambda: dict(SHARED_TABLE)),
    ("module_function", "`_one()`, a module-level function called", module_function, _nothing),
    ("thread_local", "`local.x`, a module-level `threading.local()`", thread_local, _set_thread_local),
    ("lru_cache", '`cached("key")`, a `functools.lru_cache` function', lru_cached_call, _nothing),
    ("shared_lock", "`with lock:`, one module-level `threading.Lock`", shared_lock, _nothing),
    ("own_lock", "`with lock:`, each thread its own lock", own_lock, threading.Lock),
)  # fmt: skip


def measure(body: Callable[..., int], setup: Callable[[], object], threads: int, seconds: float) -> tuple[float, float]:
    """Calls per second (all threads together) and CPU µs per call."""
    calls = [0] * threads
    go = threading.Barrier(threads + 1)
    stop = threading.Event()

    def worker(k: int) -> None:
        state = setup()
        body(state)  # warm up
        go.wait()
        n = 0
        while not stop.is_set():
            body(state)
            body(state)
            n += 2
        calls[k] = n

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    go.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    total = sum(calls)
    return total / wall, cpu / total * 1e6


def best(body: Callable[..., int], setup: Callable[[], object], threads: int, seconds: float, reps: int) -> tuple[float, float, float]:
    """The best of ``reps`` runs (the most calls/s): its calls/s, CPU µs per call and the cores
    its threads kept busy. Another process on the machine only ever takes CPUs away, so the best
    run is the one where the threads overlapped most, which is what this measures."""
    rate, cpu = max(measure(body, setup, threads, seconds) for _ in range(reps))
    return rate, cpu, rate * cpu / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cores = os.cpu_count() or 1
    default = ",".join(str(n) for n in (1, 2, 4) if n == 1 or n <= cores)
    parser.add_argument("--threads", default=default, help=f"thread counts (default {default}: up to the CPUs)")
    parser.add_argument("--seconds", type=float, default=0.7, help="per run (default 0.7)")
    parser.add_argument("--reps", type=int, default=3, help="runs per row and thread count; the best counts (default 3)")
    parser.add_argument("--only", help="comma-separated row names: " + ", ".join(r[0] for r in ROWS))
    args = parser.parse_args()
    counts = [int(n) for n in args.threads.split(",")]
    rows = [r for r in ROWS if not args.only or r[0] in args.only.split(",")]
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    build = "GIL on" if gil else "free-threaded, GIL off"
    print(f"Python {sys.version.split()[0]} ({build}), {cores} CPUs; {ITERATIONS} iterations per call; best of {args.reps}")
    first, last = counts[0], counts[-1]
    head = " | ".join(f"calls/s, {n} thr" for n in counts) + " | " + " | ".join(f"CPU µs/call, {n} thr" for n in counts)
    print(f"\n| loop body | {head} | CPU/call {last} ÷ {first} | cores busy at {last} |")
    print("|---|" + "--:|" * (2 * len(counts) + 2))
    for _, what, body, setup in rows:
        results = [best(body, setup, n, args.seconds, args.reps) for n in counts]
        rates = " | ".join(f"{rate / 1000:.0f}k" for rate, _, _ in results)
        cpus = " | ".join(f"{cpu:.1f}" for _, cpu, _ in results)
        growth = results[-1][1] / results[0][1]
        print(f"| {what} | {rates} | {cpus} | {growth:.2f} | {results[-1][2]:.1f} |", flush=True)


if __name__ == "__main__":
    # Run the imported module's code, not this script's: see the module docstring.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sharing

    sharing.main()
