"""Time (or profile) ftserver's request path without sockets or a load generator.

Runs the real HTTP/1.1 driver (``ftserver.threads.http1.HTTP1Driver``) on an event loop
in a worker thread (as the server does: on 3.13t some costs only show off the main
thread), fed by a fake transport: each "request" is ``data_received(request bytes)``, the
app runs, the response is written to the fake transport. What is left out is the kernel
and asyncio's selector/transport layer, so the figure is the server's own Python cost.

    python bench/inloop.py                       # µs per request for each app
    python bench/inloop.py --app hello --profile # pyinstrument profile of one app
    python bench/inloop.py --http1 h11
    python bench/inloop.py --app hello --metrics # with --metrics on
    python bench/inloop.py --app starlette       # a real framework (bench/frameworks/)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ftserver.config import Config  # noqa: E402
from ftserver.metrics import DIR_ENV  # noqa: E402
from ftserver.threads.host import WorkerHost, WorkerStats  # noqa: E402
from ftserver.threads.worker import new_driver  # noqa: E402

REQUEST = b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"


async def hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def hello_receive(scope, receive, send):
    """hello that reads its (empty) request body first, as an app that reads every body does."""
    await receive()
    await hello(scope, receive, send)


async def stream(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for _ in range(8):
        await send({"type": "http.response.body", "body": b"x" * 128, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


class RSGIHello:
    @staticmethod
    async def __rsgi__(scope, protocol):
        protocol.response_str(200, [("content-type", "text/plain")], "Hello, world!")


#: name -> the app, or "module:attribute" of a framework app imported on first use (``app()``).
APPS: dict[str, Any] = {
    "hello": hello,
    "hello_receive": hello_receive,
    "stream": stream,
    "rsgi_hello": RSGIHello(),
    "starlette": "bench.frameworks.starlette_app:app",
    "fastapi": "bench.frameworks.fastapi_app:app",
}
#: The target each app is asked for when it is not ``/hello`` (the bench scenario's path).
PATHS = {"fastapi": b"/items/42"}


def app(name: str) -> Any:
    """The app called ``name`` (a framework's module is imported the first time)."""
    found = APPS[name]
    if isinstance(found, str):
        module, _, attribute = found.partition(":")
        APPS[name] = found = getattr(importlib.import_module(module), attribute)
    return found


def request(name: str) -> bytes:
    """The request bytes sent to app ``name``."""
    path = PATHS.get(name)
    return REQUEST if path is None else REQUEST.replace(b"/hello", path, 1)


class FakeTransport(asyncio.Transport):
    """Enough of asyncio.Transport for the driver; counts what is written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.writes = 0

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.writes += 1

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


def run(app_name: str, http1: str, n: int, profile: bool, parallel: int = 1, metrics: bool = False) -> tuple[float, float]:
    """µs per request (wall clock, and CPU time of the thread), the mean over ``parallel``
    threads each running its own loop (with 2 or more, a figure above the 1-thread one is
    contention between threads). The CPU figure does not count time the thread spent
    descheduled, so it moves less when other processes share the machine."""
    result: list[float] = []
    cpu: list[float] = []
    barrier = threading.Barrier(parallel)
    the_app = app(app_name)  # (imported by the main thread, as the server does)
    data = request(app_name)

    def thread_main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        interface = "rsgi" if hasattr(the_app, "__rsgi__") else "asgi"
        config = Config(app=the_app, http1=http1, lifespan="off", interface=interface, metrics=metrics)
        ctx = WorkerHost(loop, the_app, config, WorkerStats())
        protocol = new_driver(ctx)
        transport = FakeTransport()
        protocol.connection_made(transport)  # type: ignore[arg-type]

        def drive(count: int) -> asyncio.Future[None]:
            # From plain loop callbacks, as a transport calls data_received (not from
            # inside a task, which would make the stepper fall back to a Task per request).
            done = loop.create_future()

            def step(left: int) -> None:
                if left == 0:
                    done.set_result(None)
                    return
                protocol.data_received(data)
                loop.call_soon(step, left - 1)  # next iteration: coalesced writes flush first

            loop.call_soon(step, count)
            return done

        loop.run_until_complete(drive(2000))  # warm up
        barrier.wait()
        profiler = None
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0001)
            profiler.start()
        start = time.perf_counter()
        start_cpu = time.thread_time()
        loop.run_until_complete(drive(n))
        cpu.append((time.thread_time() - start_cpu) / n * 1e6)
        result.append((time.perf_counter() - start) / n * 1e6)
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False, show_all=False))
        ctx.stepper.close()
        ctx.stepper.cancel_all()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    threads = [threading.Thread(target=thread_main) for _ in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(result) / len(result), sum(cpu) / len(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", choices=sorted(APPS), action="append")
    parser.add_argument("--http1", choices=("fast", "h11"), default="fast")
    parser.add_argument("-n", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print a pyinstrument profile (install pyinstrument)")
    parser.add_argument("--parallel", type=int, default=1, help="threads running the same loop side by side")
    parser.add_argument("--metrics", action="store_true", help="with --metrics on")
    args = parser.parse_args()
    if args.metrics:
        os.environ[DIR_ENV] = tempfile.mkdtemp(prefix="inloop-metrics-")
    for name in args.app or sorted(APPS):
        runs = [
            run(name, args.http1, args.n, args.profile, args.parallel, args.metrics)
            for _ in range(1 if args.profile else args.repeat)
        ]
        times = [wall for wall, _ in runs]
        cpus = [cpu for _, cpu in runs]
        print(
            f"{name:8} http1={args.http1:4} threads={args.parallel}  {min(times):6.2f} µs/request, "
            f"{min(cpus):6.2f} µs CPU (best of {len(times)}: {', '.join(f'{t:.2f}' for t in times)})"
        )


if __name__ == "__main__":
    main()
