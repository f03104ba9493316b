"""Count the Python bytecodes one HTTP/2 request executes, by function (as ``opcount.py``
does for HTTP/1.1): the real ``HTTP2Driver``, ASGI adapter and stepper on a fake
transport, each request a HEADERS frame (END_STREAM) made beforehand by h2's client.

    python bench/h2opcount.py                # per function, hello app
    python bench/h2opcount.py --streams 10   # requests arriving 10 per read
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

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import inloop  # noqa: E402

from ftserver.config import Config  # noqa: E402
from ftserver.threads.host import WorkerHost, WorkerStats  # noqa: E402
from ftserver.threads.http2 import HTTP2Driver  # noqa: E402

FIELDS = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"127.0.0.1:8000"), (b":path", b"/"), (b"user-agent", b"h2load")]


def client_reads(requests: int, per_read: int) -> tuple[bytes, list[bytes]]:
    """The client's preface and SETTINGS, then its requests, ``per_read`` per read."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    preface = client.data_to_send()
    reads = []
    for _ in range(0, requests, per_read):
        for _ in range(per_read):
            client.send_headers(client.get_next_available_stream_id(), FIELDS, end_stream=True)
        reads.append(client.data_to_send())
    return preface, reads


def count(app_name: str, n: int, per_read: int) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    preface, reads = client_reads(n + 200, per_read)

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[f"{Path(code.co_filename).name}:{code.co_qualname}"] += 1
        return tracer

    def thread_main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = inloop.app(app_name)
        ctx = WorkerHost(loop, app, Config(app=app, lifespan="off", interface="asgi", h2_max_concurrent_streams=1000), WorkerStats())
        driver = HTTP2Driver(ctx)
        driver.connection_made(inloop.FakeTransport())
        driver.data_received(preface)

        def drive(batches: list[bytes], traced: bool, done: asyncio.Future[None]) -> None:
            # (from a loop callback, as the selector would: not inside a task)
            if not batches:
                done.set_result(None)
                return
            if traced:
                sys.settrace(tracer)
            driver.data_received(batches[0])
            if traced:
                sys.settrace(None)
            loop.call_soon(drive, batches[1:], traced, done)

        warm = 200 // per_read
        for batches, traced in ((reads[:warm], False), (reads[warm:], True)):
            done = loop.create_future()
            loop.call_soon(drive, batches, traced, done)
            loop.run_until_complete(done)
        ctx.stepper.close()
        ctx.stepper.cancel_all()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    worker = threading.Thread(target=thread_main)  # (not the main thread, as a worker)
    worker.start()
    worker.join()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app", default="hello", choices=sorted(inloop.APPS))
    parser.add_argument("-n", type=int, default=200, help="requests traced")
    parser.add_argument("--streams", type=int, default=1, help="requests per read")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    counts = count(args.app, args.n, args.streams)
    head = f"{args.app}: {sum(counts.values()) / args.n:.0f} bytecodes per HTTP/2 request ({args.streams} per read)"
    print("\n".join([head, *(f"{value / args.n:8.1f}  {name}" for name, value in counts.most_common(args.top))]))

if __name__ == "__main__":
    main()
