"""Stream-level events shared by every HTTP protocol (HTTP/1.1 now, HTTP/2 later).

A protocol object turns received bytes into these events; the interface adapters
(ASGI, WSGI, RSGI) only ever see these, so the request rules are written once.
"""

from __future__ import annotations

from typing import Final


class Request:
    """The head of one request.

    ``headers`` keeps the order received, with names lower-cased and values as sent
    (leading/trailing whitespace removed). ``target`` is the raw request-target.
    """

    __slots__ = (
        "method",
        "target",
        "http_version",
        "headers",
        "keep_alive",
        "expect_continue",
        "content_length",
        "chunked",
        "has_body",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        expect_continue: bool,
        content_length: int | None,
        chunked: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version  # "1.0", "1.1" (or "2" for HTTP/2 streams)
        self.headers = headers
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length  # None when chunked or no body framing
        self.chunked = chunked
        self.has_body = chunked or bool(content_length)

    def __repr__(self) -> str:
        return f"Request({self.method} {self.target!r} HTTP/{self.http_version})"


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


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: More bytes are needed before another event can be produced.
NEED_DATA: Final = _Sentinel("NEED_DATA")
#: The current request is complete; the next one is not parsed until
#: ``start_next_cycle()`` is called after the response has been sent.
PAUSED: Final = _Sentinel("PAUSED")

END_OF_MESSAGE: Final = EndOfMessage()
CONNECTION_CLOSED: Final = ConnectionClosed()

Event = Request | Data | EndOfMessage | ConnectionClosed
