"""An app for the supervisor tests: says which process served, and misbehaves on request.

- ``/`` answers with the worker's pid;
- ``/leak?MiB`` keeps that many MiB alive in the worker (touched, so resident);
- ``/block?S`` blocks the worker's event loop for S seconds (``time.sleep``: a wedged app);
- ``/sleep?S`` waits S seconds without blocking the loop (an in-flight request);
- ``/exit`` ends the worker process at once (a crash);
- ``/imported`` answers with the pid of the process that imported this module (the
  supervisor's with ``--preload``).
"""

from __future__ import annotations

import asyncio
import os
import time

_leaked: list[bytes] = []
IMPORTED_BY = os.getpid()


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    arg = float(scope["query_string"] or b"0")
    if path == "/leak":
        _leaked.append(b"x" * int(arg * 2**20))  # written, so resident
    elif path == "/block":
        time.sleep(arg)
    elif path == "/sleep":
        await asyncio.sleep(arg)
    elif path == "/exit":
        os._exit(3)
    body = str(IMPORTED_BY if path == "/imported" else os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
