"""Count the Python bytecodes one request executes, by function or by source line.

On free-threaded 3.13 (no specializing interpreter) a bytecode costs about 140 machine
instructions on average, so this count is a quick, exact, noise-free guide to where the
request path spends its time; ``valgrind --tool=callgrind`` gives the instructions
themselves (see docs/free-threading.md). The request path is the one ``bench/inloop.py``
drives: the real HTTP/1.1 driver, ASGI adapter and stepper on a fake transport, in a
non-main thread.

    python bench/opcount.py                 # per function, hello app
    python bench/opcount.py --app stream --lines --top 60
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import inloop  # noqa: E402

from ftserver.config import Config  # noqa: E402
from ftserver.threads.host import WorkerHost, WorkerStats  # noqa: E402
from ftserver.threads.worker import new_driver  # noqa: E402


def count(app_name: str, n: int, by_line: bool) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            where = f"{Path(code.co_filename).name}:{code.co_qualname}"
            counts[f"{where}:{frame.f_lineno}" if by_line else where] += 1
        return tracer

    def thread_main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = inloop.APPS[app_name]
        interface = "rsgi" if hasattr(app, "__rsgi__") else "asgi"
        ctx = WorkerHost(loop, app, Config(app=app, lifespan="off", interface=interface), WorkerStats())
        protocol = new_driver(ctx)
        protocol.connection_made(inloop.FakeTransport())  # type: ignore[arg-type]

        def drive(left: int, done: asyncio.Future[None]) -> None:
            if left == 0:
                done.set_result(None)
                return
            protocol.data_received(inloop.REQUEST)
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

    thread = threading.Thread(target=thread_main)
    thread.start()
    thread.join()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", choices=sorted(inloop.APPS), default="hello")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--lines", action="store_true", help="count by source line, not by function")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    counts = count(args.app, args.n, args.lines)
    print(f"{args.app}: {sum(counts.values()) / args.n:.0f} bytecodes per request")
    for where, total in counts.most_common(args.top):
        print(f"{total / args.n:8.1f}  {where}")


if __name__ == "__main__":
    main()
