"""Stream-level events shared by every HTTP protocol (HTTP/1.1 now, HTTP/2 later).

A protocol object turns received bytes into these events; the interface adapters
(ASGI, WSGI, RSGI) only ever see these, so the request rules are written once.
"""

from __future__ import annotations

from typing import Final


class Request:
    """The head of one request, as every HTTP version gives it.

    ``Request(stream_id, method, target, authority, scheme, http_version, headers,
    content_length, has_body)``, positional. ``stream_id`` is 0 on HTTP/1.x; ``target``
    is the raw request-target (HTTP/2: ``:path``); ``authority`` is the Host field or the
    authority of an absolute-form target (HTTP/2: ``:authority``), None when absent;
    ``scheme`` is None on HTTP/1 (the connection decides); ``http_version`` is "1.0",
    "1.1" or "2". ``headers`` keeps the order received, names lower-cased, values without
    their outer whitespace. ``content_length`` is None when the body is not
    length-delimited. ``client`` is set only by ``--proxy-headers`` (the forwarded client).
    HTTP/1's own framing facts are on ``http1.H1Request``.
    """

    __slots__ = (
        "stream_id",
        "method",
        "target",
        "authority",
        "scheme",
        "http_version",
        "headers",
        "content_length",
        "has_body",
        "client",
    )

    def __init__(
        self,
        stream_id: int,
        method: str,
        target: bytes,
        authority: bytes | None,
        scheme: str | None,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        content_length: int | None,
        has_body: bool,
    ) -> None:
        self.stream_id = stream_id
        self.method = method
        self.target = target
        self.authority = authority
        self.scheme = scheme
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length
        self.has_body = has_body
        self.client: tuple[str, int] | None = None  # the client a trusted proxy named (--proxy-headers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.method} {self.target!r} HTTP/{self.http_version})"


class Data:
    """A piece of the request body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"Data({len(self.data)} bytes)"


class EndOfMessage:
    """The request body is complete (trailers, if any, were read and dropped)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EndOfMessage()"


class ConnectionClosed:
    """The peer closed its sending side at a message boundary."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ConnectionClosed()"


class Sentinel:
    """A named marker returned by ``next_event`` instead of an event."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: More bytes are needed before another event can be produced.
NEED_DATA: Final = Sentinel("NEED_DATA")
#: The current request is complete; the next one is not parsed until
#: ``start_next_cycle()`` is called after the response has been sent.
PAUSED: Final = Sentinel("PAUSED")

END_OF_MESSAGE: Final = EndOfMessage()
CONNECTION_CLOSED: Final = ConnectionClosed()

Event = Request | Data | EndOfMessage | ConnectionClosed
