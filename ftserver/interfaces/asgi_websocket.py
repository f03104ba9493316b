"""ASGI ``websocket`` scope (ASGI HTTP & WebSocket spec 2.4), with the
``websocket.http.response`` extension (the application may deny the handshake with a
real HTTP response). The WebSocket itself is ``interfaces.websocket.WebSocketExchange``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftserver.interfaces.asgi import http_scope
from ftserver.interfaces.websocket import (
    CONNECTING,
    HTTP,
    OPEN,
    WebSocketExchange,
    websocket_scheme,
)
from ftserver.protocols.websocket import Closed

if TYPE_CHECKING:
    from ftserver.interfaces.stream import ConnectionInfo, HTTPStream
    from ftserver.interfaces.websocket import WebSocketSettings
    from ftserver.protocols.events import Request
    from ftserver.protocols.websocket import Offer

ASGI_WEBSOCKET_VERSION = {"version": "3.0", "spec_version": "2.4"}
_EXTENSIONS = {"websocket.http.response": {}}
_FORBIDDEN_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]


def websocket_scope(request: Request, info: ConnectionInfo, offer: Offer) -> dict[str, Any]:
    """The ASGI ``websocket`` connection scope: the ``http`` scope's fields (path, raw_path,
    query_string, root_path, headers, client, server, state) without ``method``, with the
    ``ws``/``wss`` scheme, the subprotocols offered and the extensions served."""
    scope = http_scope(request, info)
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"] = ASGI_WEBSOCKET_VERSION
    scope["scheme"] = websocket_scheme(info)
    scope["subprotocols"] = offer.subprotocols
    scope["extensions"] = {name: {} for name in _EXTENSIONS}
    return scope


class ASGIWebSocket(WebSocketExchange):
    """One ASGI ``websocket`` connection."""

    __slots__ = ("scope", "connect_sent")

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Offer, settings: WebSocketSettings) -> None:
        super().__init__(stream, request, info, offer, settings)
        self.scope = websocket_scope(request, info, offer)
        self.connect_sent = False

    async def receive(self) -> dict[str, Any]:
        if not self.connect_sent:
            self.connect_sent = True
            return {"type": "websocket.connect"}
        while self.phase == CONNECTING and not self.disconnected:
            await self._wait()  # (an app that reads before answering the handshake)
        if self.phase == HTTP:
            while not (self.complete or self.disconnected):
                await self._wait()
            return {"type": "websocket.disconnect", "code": 1000, "reason": ""}
        message = await self.receive_message()
        if type(message) is str:
            return {"type": "websocket.receive", "text": message}
        if type(message) is bytes:
            return {"type": "websocket.receive", "bytes": message}
        assert isinstance(message, Closed)
        return {"type": "websocket.disconnect", "code": message.code, "reason": message.reason}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            data = message.get("bytes")
            if (text is None) == (data is None):
                raise TypeError("ASGI: 'websocket.send' needs exactly one of 'bytes' and 'text'")
            if text is not None:
                if type(text) is not str:
                    raise TypeError(f"ASGI: 'text' must be str, got {type(text).__name__}")
                await self.send_message(text)
            else:
                if not isinstance(data, (bytes, bytearray, memoryview)):
                    raise TypeError(f"ASGI: 'bytes' must be bytes, got {type(data).__name__}")
                await self.send_message(bytes(data))
            return
        if kind == "websocket.accept":
            if self.phase != CONNECTING:
                raise RuntimeError("ASGI: 'websocket.accept' after the handshake was answered")
            headers = message.get("headers") or []
            self.accept(message.get("subprotocol"), [(bytes(name), bytes(value)) for name, value in headers])
            if self.started and self.stream.write_paused:
                await self.stream.drain()
            return
        if kind == "websocket.close":
            code = message.get("code") or 1000
            reason = message.get("reason") or ""
            if self.phase == CONNECTING:
                # ASGI: a close before accept denies the handshake with 403.
                self.deny(403, _FORBIDDEN_HEADERS)
                self.deny_body(b"Forbidden", False)
            elif self.phase == OPEN:
                self.close(code, reason)
            elif self.phase == HTTP:
                raise RuntimeError("ASGI: 'websocket.close' during a 'websocket.http.response'")
            return
        if kind == "websocket.http.response.start":
            if self.phase != CONNECTING:
                raise RuntimeError("ASGI: 'websocket.http.response.start' after the handshake was answered")
            status = message["status"]
            if type(status) is not int or not 200 <= status <= 999:
                raise TypeError(f"ASGI: 'status' must be an int in 200..999, got {status!r}")
            headers = message.get("headers", ())
            self.deny(status, headers if type(headers) is list else list(headers))
            return
        if kind == "websocket.http.response.body":
            body = message.get("body", b"")
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"ASGI: 'body' must be bytes, got {type(body).__name__}")
            self.deny_body(bytes(body), message.get("more_body", False))
            if self.stream.write_paused:
                await self.stream.drain()
            return
        raise RuntimeError(f"ASGI: unexpected message type {kind!r} for a 'websocket' scope")

