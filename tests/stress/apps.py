"""The apps the stress harness serves (``tests.stress.apps:app``), one ASGI app routed by path.

Every response carries ``x-path`` (the path the app saw) and ``x-host`` (the ``host`` header it
saw), so the corpus can tell a smuggled request's response and a rewritten authority apart.
"""

from __future__ import annotations

import asyncio
import itertools
import threading

BIG = b"x" * (1 << 20)  # /big: 1 MiB, one body message
SMALL = b"s" * 9000  # /small: 9 KB
_served = itertools.count(1)  # /count: requests counted by the app, from every worker thread
_served_lock = threading.Lock()


async def app(scope, receive, send):
    """/big, /small, /echo, /slowread (echo, reading slowly), /count; anything else: "ok"."""
    if scope["type"] != "http":
        while scope["type"] == "lifespan":
            message = (await receive())["type"]
            await send({"type": message + ".complete"})
            if message == "lifespan.shutdown":
                return
        return
    path = scope["path"]
    if path == "/echo":
        body = await read_body(receive)
    elif path == "/slowread":
        body = await read_body(receive, pause=0.05)  # a slow reader: 50 ms between two receive() calls
    elif path == "/count":
        body = await read_body(receive)
        with _served_lock:
            body = str(next(_served)).encode()
    else:
        body = await read_body(receive)
        body = BIG if path == "/big" else SMALL if path == "/small" else b"ok"
    if body is None:
        return  # the client went away
    host = next((value for name, value in scope["headers"] if name == b"host"), b"")
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(len(body)).encode()),
            (b"x-path", path.encode("utf-8", "replace")),
            (b"x-host", host),
        ],
    })
    await send({"type": "http.response.body", "body": body})


async def read_body(receive, pause: float = 0.0) -> bytes | None:
    """The whole request body, or None on ``http.disconnect``."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)
        if pause:
            await asyncio.sleep(pause)
