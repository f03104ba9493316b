"""The applications the benchmark serves, one per scenario (see ``scenarios.py``).

Each app does the least work its scenario needs, so that the server's own cost dominates.
The ASGI apps answer lifespan events, so every server can run them with lifespan on.
Servers import these as ``bench.apps:<name>`` with the repository root on ``sys.path``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO = b"Hello, world!"
BODY_10K = b"x" * 10 * 1024
STREAM_CHUNK = b"y" * 1024
STREAM_CHUNKS = 8

_TEXT_PLAIN = (b"content-type", b"text/plain")
_OCTET_STREAM = (b"content-type", b"application/octet-stream")
_JSON = (b"content-type", b"application/json")


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown; the apps hold no resources."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, body: bytes, content_type: tuple[bytes, bytes]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [content_type, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """200 text/plain ``Hello, world!``: the per-request floor of a server."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _respond(send, HELLO, _TEXT_PLAIN)


async def json_hello(scope: Scope, receive: Receive, send: Send) -> None:
    """A small JSON document, serialized on every request (as TechEmpower's JSON test does)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _respond(send, json.dumps({"message": "Hello, world!"}).encode(), _JSON)


async def bytes_10k(scope: Scope, receive: Receive, send: Send) -> None:
    """A 10 KiB body in one message: measures the server's write path."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await _respond(send, BODY_10K, _OCTET_STREAM)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Read the whole request body and send it back: measures the read path (64 KiB POSTs)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect: nobody to answer
            return
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    await _respond(send, b"".join(chunks), _OCTET_STREAM)


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """No Content-Length and several ``more_body`` messages: chunked transfer on HTTP/1.1."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": [_OCTET_STREAM]})
    for _ in range(STREAM_CHUNKS):
        await send({"type": "http.response.body", "body": STREAM_CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """WebSocket: accept, then send every message back as it came (text or bytes) until the
    client leaves. A plain HTTP request gets ``hello``'s answer (the start-up probe)."""
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] == "http":
        return await _respond(send, HELLO, _TEXT_PLAIN)
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":  # websocket.disconnect
            return
        if message.get("bytes") is not None:
            await send({"type": "websocket.send", "bytes": message["bytes"]})
        else:
            await send({"type": "websocket.send", "text": message["text"]})


class _RSGIHello:
    """The RSGI twin of ``hello``: one ``response_bytes`` call. ``__rsgi__`` is a static
    method, so every worker thread calls the same function rather than a method of one
    shared instance."""

    @staticmethod
    async def __rsgi__(scope: Any, protocol: Any) -> None:
        protocol.response_bytes(200, [("content-type", "text/plain")], HELLO)


rsgi_hello = _RSGIHello()


def wsgi_hello(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI twin of ``hello``."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO)))])
    return [HELLO]


#: Iterations of ``wsgi_cpu``'s loop: about 1 ms of CPU on 3.13t on the 2-vCPU benchmark box.
CPU_ITERATIONS = 6000
CPU_BODY_BYTES = 16


def wsgi_cpu(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """About 1 ms of pure-Python work per request: handlers only overlap if the server runs
    Python code in parallel (free-threaded threads, or processes).

    On 3.13t this loop does not scale with threads: ``0xFFFFFFFF`` is a constant of imported
    code, so an ordinary (mortal) int, and every iteration's load of it writes its shared
    reference count from every thread at once (docs/free-threading.md, "What scales on
    3.13t"; ``python bench/sharing.py``). ``wsgi_cpu_small`` is the same loop without it."""
    acc = 0
    for i in range(CPU_ITERATIONS):
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return _cpu_response(acc, start_response)


def wsgi_cpu_small(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """``wsgi_cpu``'s twin: the same loop and bytecodes with a small-int mask (``255``, immortal),
    so the threads share nothing and it scales; each iteration costs about 0.6× as much."""
    acc = 0
    for i in range(CPU_ITERATIONS):
        acc = (acc * 31 + i) & 255
    return _cpu_response(acc, start_response)


def _cpu_response(acc: int, start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = b"%016x" % acc
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
