"""The response half of an HTTP/1.1 server connection: status lines, heads, body framing.

``ResponseWriter`` is the base of both request parsers (``parser.HTTP11Connection`` and
``h11_adapter.H11Connection``): it writes responses and keeps what decides the end of a
cycle (``keep_alive``, ``next_cycle``, ``error_response``), written once for both.
Status lines are precomputed and a response head is one ``b"".join``.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any, Final

from ..default_headers import DefaultHeaders
from ..errors import LocalProtocolError, ProtocolError
from .common import FIELD_VALUE_RE, TOKEN, TOKEN_RE, comma_tokens

__all__ = [
    "AWAITING_REQUEST",
    "HTTP_100_CONTINUE",
    "RESPONSE_READY",
    "RESPONSE_SENDING",
    "RESPONSE_SENT",
    "ResponseWriter",
    "reason_phrase",
    "render_error_response",
    "status_line",
]

#: Written by the driver (not by ``send_response``) when a request expects it.
HTTP_100_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

# Response states (``ResponseWriter._response_state``). The request side sets
# RESPONSE_READY when a request head arrives and AWAITING_REQUEST in start_next_cycle().
AWAITING_REQUEST: Final = 0  # nothing to respond to yet
RESPONSE_READY: Final = 1  # a request head arrived; send_response() is allowed
RESPONSE_SENDING: Final = 2  # head sent; send_data()/send_end() allowed
RESPONSE_SENT: Final = 3  # response complete

# Response body framing.
_NO_BODY = 0  # HEAD request, 204, 304: nothing after the head
_LENGTH = 1  # Content-Length set by the application
_CHUNKED = 2  # Transfer-Encoding: chunked
_UNTIL_CLOSE = 3  # HTTP/1.0 client without Content-Length: close-delimited

# What must never reach the wire (response splitting).
_UNSAFE_VALUE_RE: Final = re.compile(rb"[\r\n\x00]")
_match_token: Final = TOKEN_RE.fullmatch
_search_unsafe: Final = _UNSAFE_VALUE_RE.search
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), or none at all (RFC 9112 §4): the
# characters of a field value.
_match_reason_phrase: Final = FIELD_VALUE_RE.fullmatch

# The application's fields rendered as ``name: value\r\n`` lines, checked at once (see
# ResponseWriter.send_complete): a token name that is none of the fields the writer manages,
# a value without CR, LF, NUL or ": " (so the first ": " of a line is the separator, and
# the line is the field, whatever the name held), at most one ``content-length`` of digits
# (captured). Anything else declines to the field-by-field path, which has the errors.
_PLAIN_LINE = (
    rb"(?:(?!(?i:content-length|transfer-encoding|connection|date|server):)"
    + TOKEN
    + rb": (?:[^\r\n\x00:]++|:(?! ))*+\r\n)*+"
)
#: Responses without a body whatever the request (RFC 9110 §6.4.1).
_BODILESS_STATUS: Final = frozenset((204, 304))
_match_plain_lines: Final = re.compile(
    _PLAIN_LINE + rb"(?:(?i:content-length): ([0-9]++)\r\n" + _PLAIN_LINE + rb")?+"
).fullmatch


def reason_phrase(status: int) -> bytes:
    """The reason-phrase for ``status``, never empty: some clients treat an empty one
    as a failure."""
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b"Unknown"


_STATUS_LINES: Final = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, reason_phrase(code)) for code in range(100, 1000)
}


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <code> <reason>\\r\\n`` with a non-empty reason phrase."""
    # Not _STATUS_LINES.get(status): on free-threaded 3.13, dict.get on a dict made by
    # another thread that is still alive (this one: the main thread, at import), with a
    # key that is not the very object stored (an int above 256), spins through 40
    # sched_yield() calls per call (~11 µs), and worker threads doing it at once hand
    # the dict's lock back and forth for milliseconds. Subscription takes the lock
    # without that. (docs/free-threading.md, "Objects owned by another thread".)
    if status in _STATUS_LINES:
        return _STATUS_LINES[status]
    raise LocalProtocolError(f"status code {status!r} is not three digits")


def _status_line_with_reason(status: int, reason: bytes) -> bytes:
    """``HTTP/1.1 <code> <reason>\\r\\n`` with the application's own reason phrase."""
    if _match_reason_phrase(reason) is None:
        raise LocalProtocolError(
            f"reason phrase {reason!r} holds a control character (CR, LF, ...): only HTAB, SP,"
            " VCHAR and obs-text (RFC 9112 §4)"
        )
    return b"HTTP/1.1 %d %b\r\n" % (status, reason)


def render_error_response(
    exc: ProtocolError, date: bytes | None, server_header: bytes | None, extra: bytes = b""
) -> bytes:
    """A complete ``text/plain`` response naming the broken rule, with ``connection: close``
    (``extra``: the ``--header`` field lines)."""
    body = f"{exc}\n".encode("utf-8", "replace")
    parts = [
        status_line(exc.status_code),
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    for name, value in exc.headers:
        parts += (name, b": ", value, b"\r\n")
    if date is not None:
        parts += (b"date: ", date, b"\r\n")
    if server_header is not None:
        parts += (b"server: ", server_header, b"\r\n")
    parts += (extra, b"\r\n", body)
    return b"".join(parts)


class ResponseWriter:
    """The response half of an HTTP/1.1 server connection: heads, framed body, end;
    and the end of each request-response cycle.

    The base of ``HTTP11Connection`` and of the h11 adapter (``--http1 h11``). The
    subclass (the request side) sets ``_http11``, ``_is_head``, ``_keep_alive`` and
    ``_response_state = RESPONSE_READY`` for each request, keeps ``_keep_alive`` False
    once the connection cannot carry another one, and defines ``start_next_cycle``.
    """

    __slots__ = (
        "_http11",
        "_is_head",
        "_keep_alive",
        "_response_state",
        "_framing",
        "_to_send",
        "_server_header",
        "_defaults",
        "_managed",
        "_tail_date",
        "_tail",
        "_tail_end",
        "_plain_status",
        "_plain_fields",
        "_plain_head",
        "_streamed_status",
        "_streamed_fields",
        "_streamed_head",
    )

    def __init__(self, server_header: bytes | None, defaults: DefaultHeaders | None = None) -> None:
        if server_header is not None and not FIELD_VALUE_RE.fullmatch(server_header):
            raise ValueError(f"server header {server_header!r} is not a valid field value")
        self._server_header = server_header
        # --header fields: their names join the fields _head looks out for.
        self._defaults = defaults
        self._managed = _MANAGED_RESPONSE_FIELDS | defaults.names if defaults else _MANAGED_RESPONSE_FIELDS
        # The date, server and --header fields of the last head, joined (see _head).
        self._tail_date: bytes | None = None
        self._tail = _date_and_server(None, server_header, defaults)
        self._tail_end = self._tail + b"\r\n"  # the tail and the head's end, kept alive
        # The status and fields of the last one-piece response (a list of their own), and
        # their head (status line and field lines), the Content-Length they declare and
        # whether the status has no body (see send_complete).
        self._plain_status = 0
        self._plain_fields: list[tuple[bytes, bytes]] | None = None
        self._plain_head: tuple[bytes, bytes | None, bool] = (b"", None, False)
        # The same for the last head sent before its body (send_response, _remember_streamed).
        self._streamed_status = 0
        self._streamed_fields: list[tuple[bytes, bytes]] | None = None
        self._streamed_head: tuple[Any, ...] = ((), b"", b"", _NO_BODY, 0)
        self._http11 = True
        self._is_head = False
        self._keep_alive = True
        self._response_state = AWAITING_REQUEST
        self._framing = _NO_BODY
        self._to_send = 0

    def send_response(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body_length: int | None = None,
        reason: bytes | None = None,
    ) -> bytes:
        """The response head for ``status`` (200-999) and the application's ``headers``.

        ``body_length``: the driver holds the whole body; without the app's Content-Length
        or Transfer-Encoding it becomes ``content-length`` instead of chunking.

        - ``reason``: the application's reason phrase (WSGI's), instead of the standard
          one; ``LocalProtocolError`` if it holds a control character (RFC 9112 §4).
        - Names must be tokens, values free of CR, LF, NUL: else ``LocalProtocolError``.
        - ``date``/``server`` and ``--header`` fields are added unless the app set them.
        - Framing: the app's Content-Length (``send_data`` enforces it); else chunked on
          HTTP/1.1 (not added twice), close-delimited on HTTP/1.0. HEAD, 204 and 304: no
          body, their headers as given.
        - ``connection: close`` when the request, the app (its other Connection tokens
          kept, RFC 9112 §9.6) or the framing needs it; ``keep-alive`` for HTTP/1.0.
        """
        state = (self._keep_alive, self._http11, self._is_head)
        if status == self._streamed_status and headers == self._streamed_fields and body_length is None:
            made_for, before, after, framing, to_send = self._streamed_head  # (a head again)
            if made_for == state and reason is None and self._response_state == RESPONSE_READY:
                if date is not self._tail_date:
                    self._new_tail(date)
                self._framing = framing  # (keep-alive stays: a head that ends it is never made again)
                self._to_send = to_send
                self._response_state = RESPONSE_SENDING
                return before + self._tail + after
        parts = self._head(status, headers, date, body_length, reason)
        self._response_state = RESPONSE_SENDING
        if body_length is None and reason is None:
            self._remember_streamed(status, headers, parts, state)
        return b"".join(parts)

    def _new_tail(self, date: bytes | None) -> None:
        """The date, server and ``--header`` field lines for ``date``, in one piece."""
        self._tail_date = date
        self._tail = _date_and_server(date, self._server_header, self._defaults)
        self._tail_end = self._tail + b"\r\n"

    def _remember_streamed(
        self, status: int, headers: list[tuple[bytes, bytes]], parts: list[bytes], state: tuple[bool, bool, bool]
    ) -> None:
        """Keep the head ``parts`` for the next of the same status and fields, if it holds the
        tail (remade for another date) and its fields are hashable (kept as a copy)."""
        tail = self._tail
        for at, part in enumerate(parts):
            if part is tail:
                break
        else:
            return
        try:
            fields = tuple(headers)
            hash(fields)
        except TypeError:
            return
        self._streamed_status = status
        self._streamed_fields = list(fields)
        before, after = b"".join(parts[:at]), b"".join(parts[at + 1 :])
        self._streamed_head = (state, before, after, self._framing, self._to_send)

    def send_complete(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body: bytes,
        reason: bytes | None = None,
    ) -> bytes:
        """A whole response at once: what ``send_response(status, headers, date,
        len(body), reason)``, ``send_data(body)`` and ``send_end()`` return, in one piece.

        The rules are theirs. If the head is valid but ``body`` is longer than the
        application's Content-Length, the head counts as sent (``response_started``)
        and ``LocalProtocolError`` is raised, as ``send_data`` would.

        The usual response is made here in one piece, byte for byte what the field-by-field
        path (``complete_by_fields``) makes: the standard reason phrase, fields that are
        2-tuples of bytes, none managed by the writer but a Content-Length equal to the
        body's length (checked at once by ``_match_plain_lines``). Anything else goes
        field by field, where the errors are.
        """
        # (RESPONSE_READY and RESPONSE_SENT as literals: a constant, not a global load)
        if reason is not None or self._response_state != 1:
            return self.complete_by_fields(status, headers, date, body, reason)
        if status == self._plain_status and headers == self._plain_fields:
            # The status and fields of an earlier one-piece response again (most apps send
            # the same ones every time): its head, rendered and checked then.
            head, declared, bodiless = self._plain_head
        else:
            if not 200 <= status <= 999:
                return self.complete_by_fields(status, headers, date, body, reason)
            try:
                lines = b"".join([b"%b: %b\r\n" % field for field in headers])
            except TypeError:  # not a 2-tuple of bytes-like objects
                return self.complete_by_fields(status, headers, date, body, reason)
            match = _match_plain_lines(lines)
            if match is None or lines.count(b"\r\n") != len(headers):
                # (A CR LF inside a name or value makes more lines than fields.)
                return self.complete_by_fields(status, headers, date, body, reason)
            declared = match[1]
            defaults = self._defaults
            if defaults is not None:
                names = defaults.names
                for field in headers:
                    if field[0].lower() in names:  # the application's field replaces a --header default
                        return self.complete_by_fields(status, headers, date, body, reason)
            head = _STATUS_LINES[status] + lines
            bodiless = status in _BODILESS_STATUS
            try:
                # Kept for the next response only if no part can change meanwhile
                # (hashable: no bytearray), as a copy (the app may reuse its list).
                fields = tuple(headers)
                hash(fields)
            except TypeError:
                pass
            else:
                self._plain_status = status
                self._plain_fields = list(fields)
                self._plain_head = (head, declared, bodiless)
        if self._is_head or bodiless:
            length = b""  # no body and nothing added (an application Content-Length as given)
            body = b""
        elif declared is None:
            length = b"content-length: %d\r\n" % len(body)
        elif int(declared) == len(body):
            length = b""
        else:  # the field-by-field path keeps the connection from reuse, or raises
            return self.complete_by_fields(status, headers, date, body, reason)
        if date is not self._tail_date:
            self._new_tail(date)
        self._response_state = 3
        if self._keep_alive and self._http11:
            return b"".join((head, length, self._tail_end, body))
        end = b"connection: keep-alive\r\n\r\n" if self._keep_alive else b"connection: close\r\n\r\n"
        return b"".join((head, length, self._tail, end, body))

    def complete_by_fields(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body: bytes,
        reason: bytes | None = None,
    ) -> bytes:
        """``send_complete`` field by field, for any response (the path its one piece
        must match)."""
        parts = self._head(status, headers, date, len(body), reason)
        framing = self._framing
        if framing == _LENGTH:
            size = len(body)
            to_send = self._to_send
            if size > to_send:
                self._response_state = RESPONSE_SENDING
                raise LocalProtocolError("more body than the declared Content-Length")
            if size < to_send:  # the response cannot be completed (as in send_end)
                self._keep_alive = False
            self._to_send = to_send - size
            parts.append(body)
        elif framing == _CHUNKED:  # the application set Transfer-Encoding: chunked
            if body:
                parts.append(b"%x\r\n%b\r\n" % (len(body), body))
            parts.append(b"0\r\n\r\n")
        elif framing == _UNTIL_CLOSE:
            parts.append(body)
        self._response_state = RESPONSE_SENT
        return b"".join(parts)

    @property
    def response_started(self) -> bool:
        """Whether a response head was accepted for the current request."""
        return self._response_state >= RESPONSE_SENDING

    def _head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body_length: int | None,
        reason: bytes | None,
    ) -> list[bytes]:
        """The pieces of a response head (see ``send_response``); sets the framing."""
        if self._response_state != RESPONSE_READY:
            raise LocalProtocolError(
                "send_response() needs a received request and no response started"
            )
        if not 200 <= status <= 999:
            # 1xx (100 Continue) are written by the driver, not through this call.
            raise LocalProtocolError(f"status code {status!r} is not in 200-999")
        # (The usual response has the standard phrase: one lookup, nothing built.)
        parts = [_STATUS_LINES[status] if reason is None else _status_line_with_reason(status, reason)]
        content_length: bytes | None = None
        transfer_encoding_at = -1
        close_requested = has_connection = has_date = has_server = has_default = False
        managed = self._managed
        for name, value in headers:
            if _match_token(name) is None or _search_unsafe(value) is not None:
                raise LocalProtocolError(_response_field_error(name, value))
            lowered = name.lower()
            if lowered in managed:
                if lowered == b"content-length":
                    if content_length is not None:
                        raise LocalProtocolError("more than one Content-Length")
                    content_length = value.strip(b" \t")
                    if not content_length.isdigit():
                        raise LocalProtocolError("Content-Length is not 1*DIGIT")
                elif lowered == b"transfer-encoding":
                    if value.strip(b" \t").lower() != b"chunked" or transfer_encoding_at >= 0:
                        raise LocalProtocolError("only Transfer-Encoding: chunked is supported")
                    transfer_encoding_at = len(parts)
                elif lowered == b"connection":
                    has_connection = True
                    close_requested = close_requested or b"close" in comma_tokens(value)
                elif lowered == b"date":
                    has_date = True
                elif lowered == b"server":
                    has_server = True
                else:  # a --header default the application set itself
                    has_default = True
            parts += (name, b": ", value, b"\r\n")

        keep_alive = self._keep_alive and not close_requested
        if self._is_head or status == 204 or status == 304:
            framing = _NO_BODY
        elif transfer_encoding_at >= 0:
            if content_length is not None:
                raise LocalProtocolError("Content-Length and Transfer-Encoding both set")
            if self._http11:
                framing = _CHUNKED
            else:
                # An HTTP/1.0 client cannot decode chunked: delimit by closing instead.
                del parts[transfer_encoding_at : transfer_encoding_at + 4]
                framing = _UNTIL_CLOSE
        elif content_length is not None:
            framing = _LENGTH
            self._to_send = int(content_length)
        elif body_length is not None:
            framing = _LENGTH
            self._to_send = body_length
            parts.append(b"content-length: %d\r\n" % body_length)
        elif self._http11:
            framing = _CHUNKED
            parts.append(b"transfer-encoding: chunked\r\n")
        else:
            framing = _UNTIL_CLOSE
        if framing == _UNTIL_CLOSE:
            keep_alive = False

        if not (has_date or has_server or has_default):
            # The usual case: date, server and --header fields in one piece, remade when
            # the date changes.
            if date is not self._tail_date:
                self._new_tail(date)
            parts.append(self._tail)
        else:
            if date is not None and not has_date:
                parts += (b"date: ", date, b"\r\n")
            if self._server_header is not None and not has_server:
                parts += (b"server: ", self._server_header, b"\r\n")
            if self._defaults is not None:
                parts.append(self._defaults.lines_without(headers) if has_default else self._defaults.lines)
        if not keep_alive:
            if not close_requested:
                parts.append(b"connection: close\r\n")
        elif not self._http11 and not has_connection:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self._keep_alive = keep_alive
        self._framing = framing
        return parts

    def send_switching_protocols(self, headers: list[tuple[bytes, bytes]], date: bytes | None) -> bytes:
        """The ``101 (Switching Protocols)`` head (RFC 9110 §15.2.2) with ``headers``: the
        connection carries the other protocol from the next byte on, never HTTP again.
        Field names must be tokens and values free of CR, LF and NUL (``LocalProtocolError``)."""
        if self._response_state != RESPONSE_READY:
            raise LocalProtocolError("send_switching_protocols() needs a received request and no response started")
        parts = [b"HTTP/1.1 101 Switching Protocols\r\n"]
        for name, value in headers:
            if _match_token(name) is None or _search_unsafe(value) is not None:
                raise LocalProtocolError(_response_field_error(name, value))
            parts += (name, b": ", value, b"\r\n")
        parts.append(_date_and_server(date, self._server_header))
        if self._defaults is not None:
            parts.append(self._defaults.lines_without(headers))
        parts.append(b"\r\n")
        self._response_state = RESPONSE_SENT
        self._keep_alive = False
        return b"".join(parts)

    def send_data(self, data: bytes) -> bytes:
        """``data`` framed for the wire; ``b""`` for bodiless responses and empty data.

        Raises ``LocalProtocolError`` past the declared Content-Length.
        """
        if self._response_state != RESPONSE_SENDING:
            raise LocalProtocolError("send_data() outside of a response body")
        framing = self._framing
        if framing == _LENGTH:
            size = len(data)
            if size > self._to_send:
                raise LocalProtocolError("more body than the declared Content-Length")
            self._to_send -= size
            return data
        if framing == _CHUNKED:
            if not data:
                return b""  # an empty chunk would be the last-chunk
            return b"%x\r\n%b\r\n" % (len(data), data)
        if framing == _UNTIL_CLOSE:
            return data
        return b""

    def send_end(self, trailers: list[tuple[bytes, bytes]] | None = None) -> bytes:
        """The last bytes of the response (the last-chunk when chunked).

        ``trailers`` go into the trailer section of a chunked response (RFC 9112 §7.1.2),
        validated like header fields; other framings have nowhere to carry them, so they
        are dropped. A body shorter than its Content-Length cannot be completed:
        ``keep_alive`` becomes False so the driver closes the connection.
        """
        if self._response_state != RESPONSE_SENDING:
            raise LocalProtocolError("send_end() outside of a response body")
        if self._framing == _CHUNKED:
            if trailers:
                parts = [b"0\r\n"]
                for name, value in trailers:
                    if _match_token(name) is None or _search_unsafe(value) is not None:
                        raise LocalProtocolError(_response_field_error(name, value))
                    parts += (name, b": ", value, b"\r\n")
                parts.append(b"\r\n")
                self._response_state = RESPONSE_SENT
                return b"".join(parts)
            self._response_state = RESPONSE_SENT
            return b"0\r\n\r\n"
        self._response_state = RESPONSE_SENT
        if self._framing == _LENGTH and self._to_send:
            self._keep_alive = False
        return b""

    def count_body(self, nbytes: int) -> int:
        """Account for body bytes the driver writes itself, unframed (``sendfile``).

        Returns how many of ``nbytes`` belong on the wire: 0 for a bodiless response
        (HEAD, 204, 304), at most what remains of the Content-Length. Raises
        ``LocalProtocolError`` for a chunked response, whose body must be framed.
        """
        if self._response_state != RESPONSE_SENDING:
            raise LocalProtocolError("count_body() outside of a response body")
        framing = self._framing
        if framing == _LENGTH:
            nbytes = min(nbytes, self._to_send)
            self._to_send -= nbytes
            return nbytes
        if framing == _UNTIL_CLOSE:
            return nbytes
        if framing == _CHUNKED:
            raise LocalProtocolError("a chunked response body cannot be sent unframed")
        return 0

    def error_response(self, exc: ProtocolError, date: bytes | None) -> bytes:
        """A complete response for ``exc`` (raised by ``next_event``); the connection closes."""
        if self._response_state >= RESPONSE_SENDING:
            raise LocalProtocolError("error_response() after a response was started")
        self._keep_alive = False
        self._response_state = RESPONSE_SENT
        defaults = self._defaults
        return render_error_response(exc, date, self._server_header, defaults.lines if defaults else b"")

    # --- the end of a cycle ---------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry another request after this response."""
        return self._keep_alive

    def next_cycle(self) -> int:
        """After a complete response: ``start_next_cycle()`` and return ``trailing_size``
        if the connection is kept alive, else -1 (the caller closes it)."""
        if not self._keep_alive:
            return -1
        return self.start_next_cycle()

    def start_next_cycle(self) -> int:
        """Get ready for the next request and return ``trailing_size`` (the request
        side's: it knows what was read)."""
        raise NotImplementedError


def _date_and_server(date: bytes | None, server: bytes | None, defaults: DefaultHeaders | None = None) -> bytes:
    """The ``date``, ``server`` and ``--header`` field lines a response head gets (each may be absent)."""
    tail = b"" if date is None else b"date: " + date + b"\r\n"
    if server is not None:
        tail += b"server: " + server + b"\r\n"
    return tail if defaults is None else tail + defaults.lines


_MANAGED_RESPONSE_FIELDS: Final = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"date", b"server")
)


def _response_field_error(name: bytes, value: bytes) -> str:
    """Name the application's invalid response field (the value is not echoed)."""
    if TOKEN_RE.fullmatch(name) is None:
        return f"response field name {name!r} is not a token"
    return f"response field {name!r} has a value with CR, LF or NUL"
