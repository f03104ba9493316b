"""WebSocket test applications (ASGI) and a raw-socket WebSocket client for what the
``websockets`` library will not send (malformed handshakes, half frames, no pongs)."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from typing import Any

from tests.conftest import RawClient


class Recorder:
    """What the app saw, for the test to read (the app runs in the server's thread)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.scopes: list[dict[str, Any]] = []
        self.sent = 0  # messages whose send() returned (backpressure test)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()


def make_app(rec: Recorder) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"plain http"})
            return
        if scope["type"] != "websocket":
            return
        rec.scopes.append(scope)
        path = scope["path"]
        message = await receive()
        rec.events.append(message)
        if path == "/deny":
            await send({"type": "websocket.close"})
            return
        if path == "/deny-response":
            await send({"type": "websocket.http.response.start", "status": 401, "headers": [(b"content-type", b"text/plain"), (b"x-why", b"token")]})
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"entry"})
            return
        if path == "/crash-before":
            raise RuntimeError("boom before accept")
        if path == "/return-before":
            return
        if path == "/late":  # accepts after a while (a graceful stop may have begun)
            await asyncio.sleep(1.0)
        subprotocol = "chat" if "chat" in scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-extra", b"yes")]})
        if path == "/crash-after":
            raise RuntimeError("boom after accept")
        if path == "/close":
            await send({"type": "websocket.close", "code": 4000, "reason": "custom reason"})
            rec.events.append(await receive())
            return
        if path == "/flood":
            chunk = b"x" * 65536
            try:
                for _ in range(1600):  # 100 MiB
                    await send({"type": "websocket.send", "bytes": chunk})
                    rec.sent += 1
            except OSError as exc:
                rec.events.append({"type": "send failed", "exc": repr(exc)})
            return
        if path == "/hold":  # accepts and waits for the end, answering nothing
            rec.events.append(await receive())
            return
        while True:  # echo
            message = await receive()
            if message["type"] == "websocket.disconnect":
                rec.events.append(message)
                return
            if message.get("text") is not None:
                if message["text"] == "close-me":
                    await send({"type": "websocket.close", "code": 1000})
                    continue
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})

    return app


# -- a raw client ---------------------------------------------------------------------


def handshake_request(path: str = "/", key: bytes | None = None, extra: bytes = b"", version: bytes = b"13") -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16))
    return (
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n"
    )


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawWebSocket(RawClient):
    """A blocking socket that did (or tries) the handshake itself."""

    def __init__(self, port: int, request: bytes, timeout: float = 10.0) -> None:
        super().__init__(port, timeout)
        self.sock.sendall(request)
        lines = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}

    def body(self) -> bytes:
        return self._read_exact(int(self.headers.get("content-length", "0")))

    def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = self._read_exact(2)
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read_exact(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read_exact(8))
        return b0 & 0x0F, self._read_exact(n)

