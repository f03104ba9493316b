"""WebSocket (RFC 6455), sans-I/O, on wsproto's frame layer: the opening handshake's rules
(``check_handshake``, ``accept_fields``) and a session (``WebSocketSession``: bytes in →
messages out, messages in → bytes out, pings and the close handshake).

Version-neutral: over HTTP/1.1 the handshake is an ``Upgrade`` (answered 101), over HTTP/2
an extended CONNECT (RFC 8441, answered 200); either way the bytes after it are the same
frames, given to the same session.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import zlib
from typing import Any, Final

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason
from wsproto.handshake import server_extensions_handshake

from .errors import ProtocolError
from .http1.common import comma_tokens

#: The only version of the protocol (RFC 6455 §4.1).
VERSION: Final = b"13"
_ACCEPT_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

NORMAL_CLOSURE: Final = 1000
GOING_AWAY: Final = 1001
NO_STATUS: Final = 1005
ABNORMAL_CLOSURE: Final = 1006
MESSAGE_TOO_BIG: Final = 1009
INTERNAL_ERROR: Final = 1011


class HandshakeRefused(ProtocolError):
    """An invalid opening handshake: never reaches the application. A wrong version is a
    426 that names the version we speak (RFC 6455 §4.2.2); anything else a 400."""

    headers: tuple[tuple[bytes, bytes], ...] = ((b"sec-websocket-version", VERSION),)


class Offer:
    """What a valid opening handshake asks for: its key (HTTP/1.1 only), the subprotocols
    offered (in the client's order) and the extensions offered (raw offers)."""

    __slots__ = ("key", "subprotocols", "extensions")

    def __init__(self, key: bytes | None, subprotocols: list[str], extensions: list[str]) -> None:
        self.key = key
        self.subprotocols = subprotocols
        self.extensions = extensions


def is_websocket_handshake(upgrade: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request with this ``Upgrade`` field is a WebSocket opening handshake, to be
    checked by ``check_handshake``: it asks for ``websocket`` (RFC 9110 §7.8: a list,
    case-insensitive) and carries a ``Sec-WebSocket-Key`` or ``Sec-WebSocket-Version``.
    Without either it is an HTTP request with an Upgrade the server may ignore (§7.8)."""
    if b"websocket" not in comma_tokens(upgrade):
        return False
    return any(name == b"sec-websocket-key" or name == b"sec-websocket-version" for name, _ in headers)


def check_handshake(method: str, http_version: str, headers: list[tuple[bytes, bytes]], has_body: bool) -> Offer:
    """Check a client's opening handshake; ``HandshakeRefused`` names the broken rule.

    HTTP/1.1 (RFC 6455 §4.2.1): ``GET``, HTTP/1.1 or later, ``Upgrade: websocket``,
    ``Connection: upgrade``, a ``Sec-WebSocket-Key`` that is 16 bytes in base64 and
    ``Sec-WebSocket-Version: 13``. HTTP/2 (RFC 8441 §4): ``CONNECT`` with ``:protocol
    websocket`` (the driver checked it) and the version; no key, no Upgrade. Neither
    carries a body.
    """
    fields: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        fields.setdefault(name, []).append(value)
    if http_version == "2":
        if method != "CONNECT":
            raise HandshakeRefused("WebSocket over HTTP/2 needs an extended CONNECT (RFC 8441 §4)")
        key = None
    else:
        if method != "GET":
            raise HandshakeRefused("WebSocket opening handshake must be a GET request (RFC 6455 §4.2.1)")
        if http_version == "1.0":
            raise HandshakeRefused("WebSocket opening handshake needs HTTP/1.1 (RFC 6455 §4.2.1)")
        if not any(b"upgrade" in comma_tokens(value) for value in fields.get(b"connection", ())):
            raise HandshakeRefused("WebSocket opening handshake without 'Connection: Upgrade' (RFC 6455 §4.2.1)")
        keys = fields.get(b"sec-websocket-key", [])
        if len(keys) != 1:
            raise HandshakeRefused("WebSocket opening handshake needs exactly one Sec-WebSocket-Key (RFC 6455 §4.2.1)")
        key = keys[0].strip()
        try:
            decoded = base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) != 16:
            raise HandshakeRefused("Sec-WebSocket-Key is not 16 bytes in base64 (RFC 6455 §4.2.1)")
    versions = fields.get(b"sec-websocket-version", [])
    if [value.strip() for value in versions] != [VERSION]:
        raise HandshakeRefused("Sec-WebSocket-Version must be 13 (RFC 6455 §4.2.2)", 426)
    if has_body:
        raise HandshakeRefused("WebSocket opening handshake with a request body")
    subprotocols = [
        token.strip().decode("latin-1")
        for value in fields.get(b"sec-websocket-protocol", ())
        for token in value.split(b",")
        if token.strip()
    ]
    extensions = [
        offer.strip().decode("latin-1")
        for value in fields.get(b"sec-websocket-extensions", ())
        for offer in value.split(b",")
        if offer.strip()
    ]
    return Offer(key, subprotocols, extensions)


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a client's key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate (RFC 7692) whose inflated messages never exceed ``max_size``: a
    small compressed frame cannot make the server allocate more (a deflate bomb inflates
    about 1000 to 1). Past it the message fails with 1009, as an uncompressed one does."""

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self.inflated = 0  # bytes of the current message inflated so far

    def frame_inbound_payload_data(self, proto: Any, data: bytes) -> bytes | CloseReason:
        # wsproto's own method inflates without a bound; its state is read as it does.
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        assert self._decompressor is not None
        try:
            out = self._decompressor.decompress(bytes(data), self.max_size - self.inflated + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self.inflated += len(out)
        if self.inflated > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(self, proto: Any, fin: bool) -> bytes | CloseReason | None:
        result = super().frame_inbound_complete(proto, fin)
        if isinstance(result, bytes):
            self.inflated += len(result)
            if self.inflated > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
        if fin:
            self.inflated = 0
        return result


def negotiate_extensions(offer: Offer, per_message_deflate: bool, max_size: int) -> tuple[list[Any], bytes | None]:
    """The extensions to run for ``offer`` and the ``Sec-WebSocket-Extensions`` value
    that says so (None: none agreed). Only permessage-deflate, when enabled."""
    if not per_message_deflate or not offer.extensions:
        return [], None
    deflate = BoundedDeflate(max_size)
    value = server_extensions_handshake(offer.extensions, [deflate])
    return ([deflate], value) if value is not None else ([], None)


def accept_fields(
    offer: Offer, subprotocol: str | None, extensions: bytes | None, extra: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The header fields that accept ``offer`` (101 on HTTP/1.1, 200 on HTTP/2), then the
    application's ``extra`` ones. ``ValueError`` for a subprotocol the client did not offer
    (RFC 6455 §4.2.2) or extra fields that would replace the handshake's own."""
    fields: list[tuple[bytes, bytes]] = []
    if offer.key is not None:
        fields += [(b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-accept", accept_key(offer.key))]
    if subprotocol is not None:
        if subprotocol not in offer.subprotocols:
            raise ValueError(f"subprotocol {subprotocol!r} was not offered by the client ({offer.subprotocols})")
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    if extensions is not None:
        fields.append((b"sec-websocket-extensions", extensions))
    for name, value in extra:
        lowered = name.lower()
        if lowered in _HANDSHAKE_FIELDS:
            raise ValueError(f"the handshake sets {name.decode('latin-1')!r} itself (use 'subprotocol' for the protocol)")
        fields.append((lowered, value))
    return fields


_HANDSHAKE_FIELDS: Final = frozenset(
    (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol", b"sec-websocket-extensions", b"content-length", b"transfer-encoding")
)


class Closed:
    """The WebSocket ended on the peer's side, or failed: ``code`` and ``reason`` as the
    application hears them (1005 for a Close without a code, 1006 for a connection lost
    without one). ``failed``: we failed the connection (a protocol error, a message too
    big): our Close went out and the transport should close now."""

    __slots__ = ("code", "reason", "failed")

    def __init__(self, code: int, reason: str, failed: bool = False) -> None:
        self.code = code
        self.reason = reason
        self.failed = failed

    def __repr__(self) -> str:
        return f"Closed({self.code}, {self.reason!r}{', failed' if self.failed else ''})"


class WebSocketSession:
    """The frames of one WebSocket after its handshake (RFC 6455 §5-7), sans-I/O.

    ``receive_data(data)`` returns the events the bytes completed: whole messages (``str``
    for text, ``bytes`` for binary; fragments are reassembled up to ``max_size``, past
    which the connection fails with 1009) and at most one ``Closed``. Pings are answered
    and Closes echoed here: their bytes wait in ``data_to_send()``. ``send_message``,
    ``close`` and ``ping`` return the bytes to write.
    """

    __slots__ = ("_conn", "max_size", "_parts", "_size", "closed", "close_sent", "ping_sent_at", "last_ping_at", "_out", "_failure")

    def __init__(self, max_size: int, extensions: list[Any], now: float = 0.0) -> None:
        self._conn = Connection(ConnectionType.SERVER, extensions)
        self.max_size = max_size
        self._parts: list[Any] = []
        self._size = 0
        self.closed: Closed | None = None  # set once the peer's side ended
        self.close_sent = False
        self.ping_sent_at = 0.0  # a keep-alive ping waits for its pong since then (0: none)
        self.last_ping_at = now
        self._out = bytearray()
        self._failure: CloseConnection | None = None  # our Close for a failure, until fail_now()

    def data_to_send(self) -> bytes:
        """Bytes the session produced while receiving (pongs, the Close echo)."""
        out = self._out
        if not out:
            return b""
        data = bytes(out)
        out.clear()
        return data

    def receive_data(self, data: bytes | None) -> list[Any]:
        """Feed received bytes (``None``: the connection was lost) and return the events."""
        conn = self._conn
        if self.closed is not None:
            return []
        if conn.state is ConnectionState.CLOSED:
            return []
        conn.receive_data(data)
        events: list[Any] = []
        for event in conn.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                self._size += len(event.data)
                if self._size > self.max_size:
                    events.append(self._fail(MESSAGE_TOO_BIG, f"message larger than {self.max_size} bytes"))
                    break
                if event.message_finished:
                    parts = self._parts
                    if parts:
                        parts.append(event.data)
                        message: Any = "".join(parts) if kind is TextMessage else b"".join(parts)
                        parts.clear()
                    else:
                        message = event.data if kind is TextMessage else bytes(event.data)
                    self._size = 0
                    events.append(message)
                else:
                    self._parts.append(event.data if kind is TextMessage else bytes(event.data))
            elif kind is Ping:
                if conn.state is ConnectionState.OPEN:
                    self._out += conn.send(event.response())
            elif kind is Pong:
                self.ping_sent_at = 0.0
            elif kind is CloseConnection:
                events.append(self._on_close(event))
                break
        if self.closed is not None:
            self.release()
        return events

    def release(self) -> None:
        """Nothing more is received: wsproto's frame parser (a generator that refers to
        its own parser object) is closed, so the session is freed without the cyclic GC."""
        parser = getattr(getattr(self._conn, "_proto", None), "_parse_more", None)
        if parser is not None:
            parser.close()

    def _on_close(self, event: CloseConnection) -> Closed:
        conn = self._conn
        state = conn.state
        if state is ConnectionState.REMOTE_CLOSING:  # the peer's Close: echo its code
            code = event.code if event.code != NO_STATUS else None
            self._out += conn.send(CloseConnection(code=code) if code is not None else CloseConnection(code=NORMAL_CLOSURE))
            self.close_sent = True
        elif state is ConnectionState.OPEN:
            # wsproto reports a frame it could not parse as a Close of its own (1002,
            # 1007, 1009 from BoundedDeflate): fail the connection with that code.
            return self._fail(int(event.code), event.reason or "")
        self.closed = closed = Closed(int(event.code), event.reason or "")
        return closed

    def _fail(self, code: int, reason: str) -> Closed:
        """Fail the WebSocket connection (RFC 6455 §7.1.7): nothing after the bad frame is
        read; our Close goes with ``fail_now()``, then the transport closes without waiting
        for the peer's."""
        self._failure = CloseConnection(code=code, reason=reason[:120])
        self.closed = closed = Closed(code, reason, failed=True)
        return closed

    def fail_now(self) -> bytes:
        """The Close that fails the connection after a ``Closed(failed=True)``: the caller
        sends it once the messages received before the bad frame were handled (their
        answers go first, as the peer expects)."""
        failure = self._failure
        if failure is None or self.close_sent or self._conn.state is not ConnectionState.OPEN:
            return b""
        self.close_sent = True
        return self._conn.send(failure)

    def send_message(self, data: str | bytes) -> bytes:
        """One whole message (text for ``str``); ``b""`` once the session is closing."""
        conn = self._conn
        if conn.state is not ConnectionState.OPEN:
            return b""
        return conn.send(TextMessage(data=data) if type(data) is str else BytesMessage(data=data))

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "") -> bytes:
        """Our Close (the close handshake starts, or completes after the peer's); after a
        failure, the failure's Close."""
        if self._failure is not None:
            return self.fail_now()
        conn = self._conn
        if self.close_sent or conn.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        self.close_sent = True
        return conn.send(CloseConnection(code=code, reason=reason or None))

    @property
    def finished(self) -> bool:
        """Both Closes went (or the connection failed or was lost): the transport can close."""
        closed = self.closed
        return closed is not None and (self.close_sent or closed.code == ABNORMAL_CLOSURE)

    def keepalive(self, now: float, interval: float | None, timeout: float | None) -> bytes | None:
        """The keep-alive check (the worker's tick): a ping's bytes when one is due,
        ``None`` when the last ping has waited longer than ``timeout`` for its pong (the
        peer is gone), else ``b""``."""
        if self.closed is not None:
            return b""
        if self.ping_sent_at:
            if timeout is not None and now - self.ping_sent_at > timeout:
                return None
            return b""
        if interval is None or now - self.last_ping_at < interval or self._conn.state is not ConnectionState.OPEN:
            return b""
        self.ping_sent_at = self.last_ping_at = now
        return self._conn.send(Ping(payload=os.urandom(4)))
