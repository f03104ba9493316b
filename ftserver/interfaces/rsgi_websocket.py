"""RSGI's WebSocket protocol (spec, "Websocket protocol"), as Granian 2.7.9 serves it: a
``proto="ws"`` scope, a protocol object with ``accept()`` and ``close(status)``, and the
transport ``accept`` returns (``receive``, ``send_bytes``, ``send_str``). The WebSocket
itself is ``interfaces.websocket.WebSocketExchange``.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

from ftserver.interfaces.rsgi import RSGIProtocolClosed, RSGIProtocolError
from ftserver.interfaces.rsgi_scope import Scope
from ftserver.interfaces.stream import ClientDisconnected
from ftserver.interfaces.websocket import CONNECTING, OPEN, WebSocketExchange
from ftserver.protocols.websocket import ABNORMAL_CLOSURE, NORMAL_CLOSURE, Closed

if TYPE_CHECKING:
    from ftserver.interfaces.stream import ConnectionInfo, HTTPStream
    from ftserver.interfaces.websocket import WebSocketSettings
    from ftserver.protocols.events import Request
    from ftserver.protocols.websocket import Offer


class WebsocketMessageType(int, Enum):
    """``WebsocketMessage.kind`` (spec: 0 closed by the client, 1 bytes, 2 string)."""

    close = 0
    bytes = 1
    string = 2


class WebsocketMessage:
    """One received message: ``kind`` and ``data`` (``None`` for ``close``)."""

    __slots__ = ("kind", "data")

    def __init__(self, kind: WebsocketMessageType, data: bytes | str | None) -> None:
        self.kind = kind
        self.data = data

    def __repr__(self) -> str:
        return f"WebsocketMessage({self.kind.name}, {self.data!r})"


class WebSocketScope(Scope):
    """The scope of a WebSocket (spec, "Websocket connection scope"): the HTTP scope's
    fields with ``proto="ws"``; ``scheme`` stays ``http``/``https``, as in Granian."""

    __slots__ = ()

    proto = "ws"


class RSGIWebsocketTransport:
    """What ``accept()`` returns: the messages of the accepted WebSocket."""

    __slots__ = ("_exchange", "_closed_seen")

    def __init__(self, exchange: RSGIWebSocket) -> None:
        self._exchange = exchange
        self._closed_seen = False

    async def receive(self) -> WebsocketMessage:
        """The next message. The client's Close is a ``close`` message (once); a connection
        lost without one, or a receive after the close, raises ``RSGIProtocolClosed``
        (as in Granian)."""
        if self._closed_seen:
            raise RSGIProtocolClosed("RSGI transport is closed")
        message = await self._exchange.receive_message()
        if type(message) is str:
            return WebsocketMessage(WebsocketMessageType.string, message)
        if type(message) is bytes:
            return WebsocketMessage(WebsocketMessageType.bytes, message)
        assert isinstance(message, Closed)
        self._closed_seen = True
        if message.code == ABNORMAL_CLOSURE:
            raise RSGIProtocolClosed("RSGI transport is closed")
        return WebsocketMessage(WebsocketMessageType.close, None)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(bytes(data))

    async def send_str(self, data: str) -> None:
        if type(data) is not str:
            raise TypeError(f"send_str() takes str, got {type(data).__name__}")
        await self._send(data)

    async def _send(self, data: bytes | str) -> None:
        try:
            await self._exchange.send_message(data)
        except ClientDisconnected:
            raise RSGIProtocolClosed("RSGI transport is closed") from None


class RSGIWebsocketProtocol:
    """The protocol object of a WebSocket scope: ``await accept()`` or ``close(status)``."""

    __slots__ = ("_exchange", "_transport")

    def __init__(self, exchange: RSGIWebSocket) -> None:
        self._exchange = exchange
        self._transport: RSGIWebsocketTransport | None = None

    async def accept(self) -> RSGIWebsocketTransport:
        exchange = self._exchange
        if exchange.phase != CONNECTING:
            raise RSGIProtocolError("the WebSocket was already accepted or closed")
        try:
            exchange.accept(None, [])
        except ClientDisconnected:
            raise RSGIProtocolClosed("RSGI transport is closed") from None
        self._transport = transport = RSGIWebsocketTransport(exchange)
        return transport

    def close(self, status: int | None = None) -> None:
        """Before ``accept``: deny the handshake with HTTP ``status`` (403 when absent or not
        a status code, as Granian); after it: close the WebSocket (``status`` is its close
        code when it is one an application may send, else 1000)."""
        exchange = self._exchange
        if exchange.phase == CONNECTING:
            code = status if status is not None and 200 <= status <= 599 else 403
            exchange.deny(code, [(b"content-length", b"0")])
            exchange.deny_body(b"", False)
        elif exchange.phase == OPEN:
            valid = status is not None and (status == 1000 or 3000 <= status <= 4999)
            exchange.close(status if valid else NORMAL_CLOSURE)  # type: ignore[arg-type]


class RSGIWebSocket(WebSocketExchange):
    """One RSGI WebSocket (``proto="ws"``)."""

    __slots__ = ("scope",)

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Offer, settings: WebSocketSettings) -> None:
        super().__init__(stream, request, info, offer, settings)
        self.scope = WebSocketScope(request, info)

    protocol_class = RSGIWebsocketProtocol
