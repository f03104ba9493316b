"""The demo app: ``ftserve --threads 2 examples.hello:app`` (or ``make demo``)."""

import sys


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    gil = "on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "off"
    body = f"Hello from ftserver! (Python {sys.version.split()[0]}, GIL {gil}, path {scope['path']})\n".encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
