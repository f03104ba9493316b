"""An ASGI app whose ``/slow`` requests wait for the test: each one creates a file in the
directory named by ``FTSERVE_TEST_GATE`` when it starts, and answers once a file named
``open`` is there (polled; bounded to 30 s). Any other path answers at once."""

from __future__ import annotations

import asyncio
import os
import uuid


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    gate = os.environ["FTSERVE_TEST_GATE"]
    if scope["path"] == "/slow":
        open(os.path.join(gate, f"started-{uuid.uuid4().hex}"), "w").close()
        for _ in range(600):
            if os.path.exists(os.path.join(gate, "open")):
                break
            await asyncio.sleep(0.05)
    if scope["path"] == "/crash":
        raise RuntimeError("boom (expected by the test)")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"done"})
