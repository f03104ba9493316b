"""Small ASGI apps used across the integration tests."""

from __future__ import annotations

import asyncio
import json


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, world!"})


async def echo(scope, receive, send):
    """Echo the request body; headers report what the scope said."""
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message["body"]
        if not message.get("more_body"):
            break
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": bytes(body)})


async def scope_json(scope, receive, send):
    """Answer with the JSON-able parts of the scope."""
    while (await receive()).get("more_body"):
        pass
    data = {
        key: (value.decode("latin-1") if isinstance(value, bytes) else value)
        for key, value in scope.items()
        if key not in ("headers", "state", "asgi")
    }
    data["headers"] = [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]]
    data["asgi"] = scope["asgi"]
    data["has_state"] = "state" in scope
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def stream(scope, receive, send):
    """Chunked streaming response with awaits between the chunks."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    for i in range(5):
        await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": f"chunk {i}\n".encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def crash(scope, receive, send):
    raise RuntimeError("boom (expected by the test)")


async def crash_after_start(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom after start (expected by the test)")


async def no_response(scope, receive, send):
    return None


async def sleepy(scope, receive, send):
    """Takes a while: for graceful shutdown tests."""
    await asyncio.sleep(float(scope["query_string"] or b"1"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
    await send({"type": "http.response.body", "body": b"done"})


async def environment(scope, receive, send):
    """Answer with the environment variables named in ``?names=A,B`` (JSON)."""
    if scope["type"] != "http":
        return
    import os
    from urllib.parse import parse_qs

    names = parse_qs(scope["query_string"].decode()).get("names", [""])[0].split(",")
    body = json.dumps({name: os.environ.get(name) for name in names}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
