"""The HTTP/1.1 connection interface of ``parser.HTTP11Connection``, with h11 parsing:
``--http1 h11``, and the oracle our parser is tested against; ``h11_guard`` checks the raw
bytes where h11 is lenient. Where it still differs from our parser, and why, is in
docs/architecture.md ("The h11 mode").
"""

from __future__ import annotations

import sys
from typing import Final

import h11

from ..errors import (
    BadRequest,
    BodyTooLarge,
    HeaderTooLarge,
    LocalProtocolError,
    ProtocolError,
    RequestLineTooLong,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)
from ..events import (
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Sentinel,
)
from ..default_headers import DefaultHeaders
from ..limits import Limits
from .common import TINY_CHUNKS, H1Request, comma_tokens, set_host, target_authority
from .h11_guard import H11Guard
from .rules import check_host, check_target_form
from .writer import AWAITING_REQUEST, RESPONSE_READY, RESPONSE_SENT, ResponseWriter

__all__ = ["H11Connection"]

_ERROR_CLASSES: Final[dict[int, type[ProtocolError]]] = {
    400: BadRequest,
    413: BodyTooLarge,
    414: RequestLineTooLong,
    431: HeaderTooLarge,
    501: UnsupportedTransferCoding,
    505: UnsupportedVersion,
}
# h11 states after which this connection cannot carry another request.
_CLOSING_STATES: Final = frozenset((h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL))


def _protocol_error(message: str, status: int) -> ProtocolError:
    """Our error class for h11's ``error_status_hint``."""
    # (Not _ERROR_CLASSES.get: see status_line in http1/writer.py.)
    error_class = _ERROR_CLASSES[status] if status in _ERROR_CLASSES else ProtocolError
    return error_class(message, status)


class H11Connection(ResponseWriter):
    """``HTTP11Connection``'s interface: requests parsed by ``h11.Connection(h11.SERVER)``
    after an ``H11Guard`` has checked their raw bytes, responses written by
    ``ResponseWriter``."""

    __slots__ = (
        "_conn", "_guard", "_limits", "_error", "_paused", "_body_received", "_chunk_overhead", "_h11_response", "_h11_end",
        "upgrade",
    )  # fmt: skip

    def __init__(self, limits: Limits, server_header: bytes | None = None, defaults: DefaultHeaders | None = None) -> None:
        # h11 bounds what it buffers while a head is incomplete: the largest head we allow.
        if limits.max_request_line is None or limits.max_header_bytes is None:
            head_limit = sys.maxsize
        else:
            head_limit = limits.max_request_line + limits.max_header_bytes + 4
        super().__init__(server_header, defaults)
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=head_limit)
        self._guard = H11Guard(limits)
        self._limits = limits
        self._error: ProtocolError | None = None
        self._paused = False
        self._body_received = 0
        self._chunk_overhead = 0
        self.upgrade: bytes | None = None  # the last request's Upgrade field (as HTTP11Connection)
        # What h11's state machine is told of each response (its bytes are not used);
        # built per connection so that threads never share these objects.
        self._h11_response = h11.Response(status_code=200, headers=[], reason=b"")
        self._h11_end = h11.EndOfMessage()

    # --- receiving ----------------------------------------------------------------

    def receive_request(self, data: bytes) -> None:
        """No fast path: every byte goes through h11 (see ``HTTP11Connection.receive_request``)."""
        return None

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed its sending side."""
        self._guard.feed(data)
        self._conn.receive_data(data)

    def next_event(
        self,
    ) -> H1Request | Data | EndOfMessage | ConnectionClosed | Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``; raises ``ProtocolError``."""
        if self._paused:
            # After EndOfMessage, pipelined bytes wait for start_next_cycle().
            return PAUSED
        if self._error is not None:
            raise self._error
        try:
            if self._guard.error is not None:
                raise self._guard.error
            event = self._conn.next_event()
            kind = type(event)
            if kind is h11.Data:
                return self._body_data(event)
            if kind is h11.Request:
                return self._request(event)
            if kind is h11.EndOfMessage:
                self._paused = True
                return END_OF_MESSAGE
            if kind is h11.ConnectionClosed:
                self._keep_alive = False  # h11 is CLOSED: no request can follow
                return CONNECTION_CLOSED
            assert event is h11.NEED_DATA  # h11 pauses only after EndOfMessage
            return NEED_DATA
        except h11.RemoteProtocolError as exc:
            error = _protocol_error(str(exc), exc.error_status_hint)
            self._fail(error)
            raise error from exc
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def _fail(self, exc: ProtocolError) -> None:
        """Remember ``exc``: it is raised again by every later ``next_event()``."""
        self._error = exc
        self._keep_alive = False

    def _request(self, event: h11.Request) -> H1Request:
        """Translate h11's request and enforce the limits h11 does not know about."""
        limits = self._limits
        headers = [(bytes(name), bytes(value)) for name, value in event.headers]
        version = event.http_version
        if version not in (b"1.0", b"1.1"):
            raise UnsupportedVersion("HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")
        line_length = len(event.method) + len(event.target) + 10  # 2 SP + "HTTP/1.x"
        if limits.max_request_line is not None and line_length > limits.max_request_line:
            raise RequestLineTooLong(f"request line longer than {limits.max_request_line} bytes")
        if limits.max_headers is not None and len(headers) > limits.max_headers:
            raise HeaderTooLarge(f"more than {limits.max_headers} header fields")
        # h11 only limits an incomplete head; measure a complete one (": " and CRLF
        # per field, whitespace around values not counted).
        section_bytes = sum(len(name) + len(value) + 4 for name, value in headers)
        if limits.max_header_bytes is not None and section_bytes > limits.max_header_bytes:
            raise HeaderTooLarge(f"header section larger than {limits.max_header_bytes} bytes")
        content_length = None
        host: bytes | None = None
        chunked = False
        upgrade = None
        for name, value in headers:
            if name == b"upgrade":
                upgrade = value
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                content_length = int(value)
            elif name == b"host":  # h11 rejects a repeated Host
                check_host(value)
                host = value
        if chunked:
            # h11 lets Transfer-Encoding override Content-Length and accepts it from
            # HTTP/1.0 clients: both let a request be framed differently by a proxy in
            # front of us (request smuggling), so RFC 9112 §6.1 and §6.3 say reject.
            if content_length is not None:
                raise BadRequest("Content-Length and Transfer-Encoding both present")
            if version == b"1.0":
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        elif (
            content_length is not None
            and limits.max_body_size is not None
            and content_length > limits.max_body_size
        ):
            raise BodyTooLarge(
                f"Content-Length {content_length} exceeds the limit of {limits.max_body_size} bytes"
            )
        http11 = version == b"1.1"
        keep_alive = http11 and not any(
            b"close" in comma_tokens(value) for name, value in headers if name == b"connection"
        )
        self._http11 = http11
        self._keep_alive = keep_alive
        self.upgrade = upgrade
        self._is_head = event.method == b"HEAD"
        self._response_state = RESPONSE_READY
        self._body_received = 0
        self._chunk_overhead = 0
        target = bytes(event.target)
        if target[0] != 0x2F or event.method == b"CONNECT":  # h11 takes any target form
            check_target_form(event.method, target)
            absolute = target_authority(target)
            if absolute is not None:
                host = absolute
                set_host(headers, absolute)
        return H1Request(
            event.method.decode("ascii"),
            target,
            host,
            version.decode("ascii"),
            headers,
            keep_alive,
            self._conn.they_are_waiting_for_100_continue,
            content_length,
            chunked,
        )

    def _body_data(self, event: h11.Data) -> Data:
        """A piece of body, counted against ``max_body_size`` (413 when crossed) and, for
        a chunk's last piece, its framing against ``max_chunk_overhead`` (400)."""
        self._body_received += len(event.data)
        limits = self._limits
        limit = limits.max_body_size
        if limit is not None and self._body_received > limit:
            raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
        if event.chunk_end:
            # h11 hides the chunk-size line: count the least framing a chunk has, "1" CRLF
            # before its data and CRLF after.
            self._chunk_overhead = overhead = self._chunk_overhead + 5
            limit = limits.max_chunk_overhead
            if limit is not None and overhead > limit and overhead > self._body_received:
                raise BadRequest(TINY_CHUNKS)
        return Data(bytes(event.data))

    # --- sending ------------------------------------------------------------------

    def send_response(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body_length: int | None = None,
        reason: bytes | None = None,
    ) -> bytes:
        """The response head, written by ``ResponseWriter`` (as in fast mode), with the
        application's ``reason`` phrase if it has one.

        h11's state machine is told a response started, so that it checks the request
        side of the cycle (``start_next_cycle``) as before; the bytes it would write are
        not used. Letting h11 also serialize the response cost about a third of the
        request path and adds no strictness: our writer rejects the same bad fields.
        """
        head = ResponseWriter.send_response(self, status, headers, date, body_length, reason)
        self._tell_h11(self._h11_response)
        return head

    def send_complete(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body: bytes,
        reason: bytes | None = None,
    ) -> bytes:
        """A whole response (see ``ResponseWriter.send_complete``); h11 is told of its
        start and end as with ``send_response`` and ``send_end``."""
        try:
            data = ResponseWriter.send_complete(self, status, headers, date, body, reason)
        except LocalProtocolError:
            if self.response_started:  # the head was accepted, the body was not
                self._tell_h11(self._h11_response)
            raise
        self._tell_h11(self._h11_response)
        self._tell_h11(self._h11_end)
        return data

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """The end of the response (see ``ResponseWriter.send_end``)."""
        tail = ResponseWriter.send_end(self, trailers)
        self._tell_h11(self._h11_end)
        return tail

    def _tell_h11(self, event: h11.Response | h11.EndOfMessage) -> None:
        """Move h11's state machine as our writer moved; ``keep_alive`` becomes False
        when h11 says the connection cannot carry another request (e.g. it switched
        protocols after a CONNECT, or it saw the request side fail)."""
        conn = self._conn
        try:
            conn.send(event)
        except h11.LocalProtocolError:  # h11 saw the request side fail
            pass
        if conn.our_state in _CLOSING_STATES or conn.their_state in _CLOSING_STATES:
            self._keep_alive = False

    # --- connection -----------------------------------------------------------------

    @property
    def body_progress(self) -> int:
        """Request body bytes received (see ``HTTP11Connection.body_progress``)."""
        return self._body_received

    @property
    def trailing_data(self) -> bytes:
        """Bytes received and not consumed (e.g. pipelined requests)."""
        return self._conn.trailing_data[0]

    @property
    def trailing_size(self) -> int:
        """``len(trailing_data)``."""
        return len(self._conn.trailing_data[0])

    def start_next_cycle(self) -> int:
        """Get ready for the next request (h11 checks both sides are done); return
        ``trailing_size``."""
        if self._response_state != RESPONSE_SENT:
            raise LocalProtocolError("start_next_cycle() before the response was complete")
        if not self._keep_alive:
            raise LocalProtocolError("start_next_cycle() on a connection that must close")
        try:
            self._conn.start_next_cycle()
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(str(exc)) from exc
        self._paused = False
        self._response_state = AWAITING_REQUEST
        rest = self._conn.trailing_data[0]
        self._guard.restart(rest)
        return len(rest)
