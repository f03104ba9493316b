"""Our HTTP/1.1 server-side connection: a fast, strict, sans-I/O parser and serializer.

``HTTP11Connection`` turns received bytes into stream events (``events.py``) and the
application's response into bytes. It never touches a socket; the driver in
``ftserver.threads.http11`` owns the I/O.

How it stays fast on free-threaded CPython, where every Python bytecode is costly:

- The common case is a whole request head arriving in one ``receive_data()``. Such a
  head is found with one ``bytes.find(b"\\r\\n\\r\\n")``; the request line is checked
  by one regex ``fullmatch``; the whole field section is validated *and* split into
  names and values by one regex ``split`` (see ``_FIELD_SPLIT_RE``), all at C speed,
  and names are lower-cased by ``map(bytes.lower, ...)``: no Python loop per field.
  Only when that fails does a slower line-by-line pass run, to name the broken rule.
- Free-threaded 3.13 does not specialize attribute and global lookups (each costs
  ~30 ns), so the hot paths work on locals and bound regex methods.
- The receive buffer is the received ``bytes`` object itself while it is being
  consumed (no copy; a body that fills a whole read becomes a ``Data`` event as is),
  and becomes a ``bytearray`` with a read offset only when a message spans reads.
- An incomplete head is scanned incrementally (only the new bytes), so a peer that
  sends one byte at a time costs linear, not quadratic, time, and limits are
  enforced before the terminating blank line arrives.
- Status lines are precomputed and a response head is one ``b"".join``.

Strictness (RFC 9112 / RFC 9110): lines end with CRLF only; no obs-fold; field names
are tokens; field values are VCHAR, obs-text, SP and HTAB; one Host; one
Content-Length; no Content-Length with Transfer-Encoding; only ``chunked``. We never
accept a request that h11 rejects (``tests/protocols/test_differential.py`` checks
this) with one deliberate exception: we ignore a few empty lines before a request line
(RFC 9112 §2.2), which h11 rejects. We also honour ``Connection: keep-alive`` from
HTTP/1.0 clients, which h11 never does.
"""

from __future__ import annotations

import re
import sys
from http import HTTPStatus
from typing import Final

from .errors import (
    BadRequest,
    BodyTooLarge,
    HeaderTooLarge,
    LocalProtocolError,
    ProtocolError,
    RequestLineTooLong,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)
from .events import (
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Request,
    _Sentinel,
)
from .limits import Limits

__all__ = [
    "HTTP11Connection",
    "HTTP_100_CONTINUE",
    "reason_phrase",
    "render_error_response",
    "status_line",
]

#: Written by the driver (not by ``send_response``) when a request expects it.
HTTP_100_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"

# --- Grammar (RFC 9110 §5.5, §5.6.2; RFC 9112 §3, §5, §7.1) ---------------------------

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
_TOKEN = rb"[" + _TCHAR + rb"]+"
# field-value characters: VCHAR, obs-text, SP, HTAB (the surrounding OWS included).
_FIELD_VALUE = rb"[\t\x20-\x7e\x80-\xff]*"

# request-line = method SP request-target SP HTTP-version. Only HTTP/1.0 and HTTP/1.1
# match; anything else goes to the diagnosis for 400 or 505.
_REQUEST_LINE_RE: Final = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])")
# One pass over a field section ("\r\n" field-line, repeated) both validates and splits
# it: ``split`` gives [gap, name, value, gap, name, value, ..., gap]. Each match is a
# whole valid field line minus any trailing OWS (the value stops at its last visible
# character), so the section is valid exactly when every gap is empty or, after a
# value with trailing OWS, only SP/HTAB. Values come out without leading or trailing OWS.
_FIELD_SPLIT_RE: Final = re.compile(
    rb"\r\n(" + _TOKEN + rb"):[ \t]*((?:" + _FIELD_VALUE + rb"[\x21-\x7e\x80-\xff])?)"
)
_match_request_line: Final = _REQUEST_LINE_RE.fullmatch
_split_fields: Final = _FIELD_SPLIT_RE.split
# The fast path (``receive_request``): one read holding exactly one whole HTTP/1.1 head
# with an origin-form target, checked in one pass. Each field line is CRLF, a token, a
# colon, then field-value characters (OWS included), so a match is a valid head.
_FAST_HEAD_RE: Final = re.compile(
    rb"(" + _TOKEN + rb") (/[\x21-\x7e]*) HTTP/1\.1((?:\r\n" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*)*)\r\n\r\n"
)
# Fields the fast path leaves to the full parser (body framing, expectations), searched
# for in the lower-cased field section.
_FAST_PATH_EXCLUDED_RE: Final = re.compile(rb"\r\n(?:content-length|transfer-encoding|expect):")
_match_fast_head: Final = _FAST_HEAD_RE.fullmatch
_search_excluded: Final = _FAST_PATH_EXCLUDED_RE.search
# In a valid field section a name is what follows a CRLF up to the colon, and the value
# the rest of the line without its outer OWS: two C-level scans give names (from the
# lower-cased section) and values, with no Python loop per field.
_field_names: Final = re.compile(rb"\r\n(" + _TOKEN + rb"):").findall
_field_values: Final = re.compile(
    rb"\r\n" + _TOKEN + rb":[ \t]*((?:" + _FIELD_VALUE + rb"[\x21-\x7e\x80-\xff])?)"
).findall
_OWS_RE: Final = re.compile(rb"[ \t]*")
_TOKEN_RE: Final = re.compile(_TOKEN)
_FIELD_VALUE_RE: Final = re.compile(_FIELD_VALUE)
_HTTP_VERSION_RE: Final = re.compile(rb"HTTP/[0-9]\.[0-9]")
# Response-side checks: what must never reach the wire (response splitting).
_UNSAFE_VALUE_RE: Final = re.compile(rb"[\r\n\x00]")
_match_token: Final = _TOKEN_RE.fullmatch
_search_unsafe: Final = _UNSAFE_VALUE_RE.search
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ), or none at all (RFC 9112 §4): the
# characters of a field value.
_match_reason_phrase: Final = _FIELD_VALUE_RE.fullmatch

# chunk = chunk-size [ chunk-ext ] CRLF; the extensions are ignored but must not hold
# CR, LF, NUL or other controls.
_CHUNK_LINE_RE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;" + _FIELD_VALUE + rb")?")
_MAX_CHUNK_SIZE_DIGITS: Final = 16
_MAX_CHUNK_LINE: Final = 4096

# authority-form = uri-host ":" port (CONNECT); absolute-form starts with scheme "://".
_AUTHORITY_FORM_RE: Final = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+):[0-9]+"
)
_ABSOLUTE_FORM_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*://")

_TCHAR_BYTES: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_MAX_EMPTY_LINES: Final = 8  # before a request line (RFC 9112 §2.2: ignore "at least one")
_MAX_CONTENT_LENGTH_DIGITS: Final = 18  # < 2**63, far above any body limit
_UNLIMITED: Final = sys.maxsize

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
    exc: ProtocolError, date: bytes | None, server_header: bytes | None
) -> bytes:
    """A complete ``text/plain`` response naming the broken rule, with ``connection: close``."""
    body = f"{exc}\n".encode("utf-8", "replace")
    parts = [
        status_line(exc.status_code),
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body),
        b"connection: close\r\n",
    ]
    if date is not None:
        parts += (b"date: ", date, b"\r\n")
    if server_header is not None:
        parts += (b"server: ", server_header, b"\r\n")
    parts += (b"\r\n", body)
    return b"".join(parts)


# --- States -----------------------------------------------------------------------

# Receiving side.
_IDLE = 0  # waiting for a request head
_BODY = 1  # Content-Length body; ``_remaining`` bytes left (0: EndOfMessage next)
_CHUNK_LINE = 2  # waiting for a chunk-size line
_CHUNK_DATA = 3  # inside chunk data; ``_remaining`` bytes left in this chunk
_CHUNK_END = 4  # waiting for the CRLF that ends chunk data
_TRAILERS = 5  # waiting for the trailer section after the last chunk
_DONE = 6  # request complete: PAUSED until start_next_cycle()
_CLOSED = 7  # ConnectionClosed returned
_ERROR = 8  # a ProtocolError was raised; raised again on every call

# Sending side.
_NO_REQUEST = 0  # nothing to respond to yet
_READY = 1  # a request head arrived; send_response() is allowed
_SENDING = 2  # head sent; send_data()/send_end() allowed
_SENT = 3  # response complete

# Response body framing.
_NO_BODY = 0  # HEAD request, 204, 304: nothing after the head
_LENGTH = 1  # Content-Length set by the application
_CHUNKED = 2  # Transfer-Encoding: chunked
_UNTIL_CLOSE = 3  # HTTP/1.0 client without Content-Length: close-delimited

_INCOMPLETE_HEAD = "incomplete request: connection closed before the request head was complete"
_INCOMPLETE_BODY = "incomplete request: connection closed before the request body was complete"


class ResponseWriter:
    """The response half of an HTTP/1.1 server connection: heads, framed body, end.

    Shared by ``HTTP11Connection`` and the h11 adapter (``--http1 h11``, where h11 parses
    the requests): the request side sets ``_http11``, ``_is_head``, ``_keep_alive`` and
    ``_response_state = _READY`` for each request.
    """

    __slots__ = (
        "_http11",
        "_is_head",
        "_keep_alive",
        "_response_state",
        "_framing",
        "_to_send",
        "_server_header",
        "_tail_date",
        "_tail",
    )

    def __init__(self, server_header: bytes | None) -> None:
        if server_header is not None and not _FIELD_VALUE_RE.fullmatch(server_header):
            raise ValueError(f"server header {server_header!r} is not a valid field value")
        self._server_header = server_header
        # The date and server fields of the last head, joined (see _head).
        self._tail_date: bytes | None = None
        self._tail = _date_and_server(None, server_header)
        self._http11 = True
        self._is_head = False
        self._keep_alive = True
        self._response_state = _NO_REQUEST
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

        ``body_length``: the driver already holds the whole body (the app's first body
        message was also its last); without an application Content-Length or
        Transfer-Encoding it is declared as ``content-length`` instead of chunking.

        - ``reason``: the application's reason phrase (WSGI's status string), sent
          instead of the standard one; ``LocalProtocolError`` if it holds CR, LF or
          another control character (RFC 9112 §4). ``None``: the standard phrase.
        - Every field name must be a token and no value may hold CR, LF or NUL
          (response splitting): ``LocalProtocolError`` otherwise, nothing emitted.
        - ``date``/``server`` are added unless the application set them.
        - Framing: the application's Content-Length (enforced by ``send_data``); else
          ``transfer-encoding: chunked`` for HTTP/1.1 (not added twice if the
          application set it); else, for HTTP/1.0, close-delimited. HEAD, 204 and 304
          have no body: their headers are sent as given, nothing is added.
        - ``connection: close`` when the request asked for it, the application set it or
          the framing needs it (an application Connection field without ``close`` is
          kept: the two combine, and ``close`` wins, RFC 9112 §9.6);
          ``connection: keep-alive`` for a kept HTTP/1.0 client.
        """
        parts = self._head(status, headers, date, body_length, reason)
        self._response_state = _SENDING
        return b"".join(parts)

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
        """
        parts = self._head(status, headers, date, len(body), reason)
        framing = self._framing
        if framing == _LENGTH:
            size = len(body)
            to_send = self._to_send
            if size > to_send:
                self._response_state = _SENDING
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
        self._response_state = _SENT
        return b"".join(parts)

    @property
    def response_started(self) -> bool:
        """Whether a response head was accepted for the current request."""
        return self._response_state >= _SENDING

    def _head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        date: bytes | None,
        body_length: int | None,
        reason: bytes | None,
    ) -> list[bytes]:
        """The pieces of a response head (see ``send_response``); sets the framing."""
        if self._response_state != _READY:
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
        close_requested = has_connection = has_date = has_server = False
        for name, value in headers:
            if _match_token(name) is None or _search_unsafe(value) is not None:
                raise LocalProtocolError(_response_field_error(name, value))
            lowered = name.lower()
            if lowered in _MANAGED_RESPONSE_FIELDS:
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
                    close_requested = close_requested or b"close" in _comma_tokens(value)
                elif lowered == b"date":
                    has_date = True
                else:
                    has_server = True
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

        if not (has_date or has_server):
            # The usual case: date and server in one piece, remade when the date changes.
            if date is not self._tail_date:
                self._tail_date = date
                self._tail = _date_and_server(date, self._server_header)
            parts.append(self._tail)
        else:
            if date is not None and not has_date:
                parts += (b"date: ", date, b"\r\n")
            if self._server_header is not None and not has_server:
                parts += (b"server: ", self._server_header, b"\r\n")
        if not keep_alive:
            if not close_requested:
                parts.append(b"connection: close\r\n")
        elif not self._http11 and not has_connection:
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self._keep_alive = keep_alive
        self._framing = framing
        return parts

    def send_data(self, data: bytes) -> bytes:
        """``data`` framed for the wire; ``b""`` for bodiless responses and empty data.

        Raises ``LocalProtocolError`` past the declared Content-Length.
        """
        if self._response_state != _SENDING:
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
        if self._response_state != _SENDING:
            raise LocalProtocolError("send_end() outside of a response body")
        if self._framing == _CHUNKED:
            if trailers:
                parts = [b"0\r\n"]
                for name, value in trailers:
                    if _match_token(name) is None or _search_unsafe(value) is not None:
                        raise LocalProtocolError(_response_field_error(name, value))
                    parts += (name, b": ", value, b"\r\n")
                parts.append(b"\r\n")
                self._response_state = _SENT
                return b"".join(parts)
            self._response_state = _SENT
            return b"0\r\n\r\n"
        self._response_state = _SENT
        if self._framing == _LENGTH and self._to_send:
            self._keep_alive = False
        return b""

    def count_body(self, nbytes: int) -> int:
        """Account for body bytes the driver writes itself, unframed (``sendfile``).

        Returns how many of ``nbytes`` belong on the wire: 0 for a bodiless response
        (HEAD, 204, 304), at most what remains of the Content-Length. Raises
        ``LocalProtocolError`` for a chunked response, whose body must be framed.
        """
        if self._response_state != _SENDING:
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



class HTTP11Connection(ResponseWriter):
    """One HTTP/1.1 connection, server side: requests in, responses out.

    Receiving: ``receive_data()`` then ``next_event()`` until ``NEED_DATA`` or
    ``PAUSED``. Each request yields ``Request``, zero or more non-empty ``Data`` and
    ``EndOfMessage``; after it ``next_event()`` returns ``PAUSED`` (pipelined bytes stay
    buffered, unparsed) until ``start_next_cycle()``. EOF at a message boundary (only
    empty lines received, or nothing) yields ``ConnectionClosed``; EOF inside a head or
    a body raises ``BadRequest`` ("incomplete request"). A ``ProtocolError`` is raised
    again by every later call; answer it with ``error_response()`` and close.

    Sending: ``send_response()``, ``send_data()``\\*, ``send_end()``, each returning the
    bytes to write; then, if ``keep_alive``, ``start_next_cycle()``.
    """

    __slots__ = (
        "_buf",
        "_pos",
        "_eof",
        "_state",
        "_error",
        "_remaining",
        "_body_received",
        "_scanned",
        "_line_end",
        "_fields_seen",
        "_empty_lines",
        "_head_bytes",
        "_head_fields",
        "_head_limits",
        "_fast_max",
        "_max_request_line",
        "_max_header_bytes",
        "_max_headers",
        "_max_body_size",
    )

    def __init__(self, limits: Limits, server_header: bytes | None = None) -> None:
        super().__init__(server_header)
        # None means unlimited; a large int keeps the hot path free of None checks.
        self._max_request_line = _limit(limits.max_request_line)
        self._max_header_bytes = _limit(limits.max_header_bytes)
        self._max_headers = _limit(limits.max_headers)
        self._max_body_size = _limit(limits.max_body_size)
        self._head_limits = (self._max_request_line, self._max_header_bytes, self._max_headers)
        # A read no longer than this cannot break the line or section size limits.
        self._fast_max = min(self._max_request_line, self._max_header_bytes)
        # Unconsumed input is ``_buf[_pos:]``. ``_buf`` is bytes (a read adopted as is,
        # or a complete head that spanned reads) or, while a message spans reads, a
        # bytearray we append to.
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._eof = False
        self._state = _IDLE
        self._error: ProtocolError | None = None
        self._remaining = 0
        self._body_received = 0
        # Progress through an incomplete head/trailer section: bytes past ``_pos``
        # already looked at, the request line's length once known, field lines seen.
        self._scanned = 0
        self._line_end = -1
        self._fields_seen = 0
        self._empty_lines = 0
        # Header section size, counted again when trailers arrive.
        self._head_bytes = 0
        self._head_fields = 0

    # --- receiving ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` means the peer closed its sending side."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("receive_data() called with data after EOF")
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            # Everything was consumed: the new bytes become the buffer, uncopied.
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        elif type(buf) is bytearray:
            if pos:
                del buf[:pos]  # cheap in CPython: moves the start of the bytearray
                self._pos = 0
            buf += data
        else:
            pending = bytearray(buf)
            del pending[:pos]
            pending += data
            self._buf = pending
            self._pos = 0

    def receive_request(self, data: bytes) -> Request | None:
        """The fast path for the usual read: ``data`` is exactly one whole request head
        and the connection is waiting for a request with nothing buffered.

        Returns the ``Request`` — the whole request, since the fast path only takes
        requests without a body — and leaves the connection as ``receive_data(data)``
        then ``next_event()`` until ``PAUSED`` would: the response may be sent. Returns
        ``None``, consuming nothing, for anything else; the caller then goes the usual
        way (``receive_data``, ``next_event``), which accepts or rejects the bytes with
        every rule named. So this path only has to recognise, in a few C-level passes,
        heads the full parser would accept with the same result: HTTP/1.1, an
        origin-form target, exactly one Host, no Content-Length, Transfer-Encoding or
        Expect, within the limits (``tests/protocols/test_fast_path.py`` compares them).
        """
        if self._state != _IDLE or self._pos < len(self._buf) or len(data) > self._fast_max:
            return None
        match = _match_fast_head(data)
        if match is None:
            return None
        method, target, fields = match.groups()
        lowered = fields.lower()
        if (
            _search_excluded(lowered) is not None
            or lowered.count(b"\r\nhost:") != 1
            or method == b"CONNECT"
            or (len(fields) > self._max_headers * 4 and fields.count(b"\r\n") > self._max_headers)
        ):
            return None
        headers = list(zip(_field_names(lowered), _field_values(fields)))
        keep_alive = True
        if b"\r\nconnection:" in lowered:
            keep_alive = _request_keep_alive(
                b", ".join([value for name, value in headers if name == b"connection"]), True
            )
        self._state = _DONE
        self._http11 = True
        self._is_head = method == b"HEAD"
        self._keep_alive = keep_alive
        self._response_state = _READY
        return Request(method.decode("ascii"), target, "1.1", headers, keep_alive, False, None, False)

    def next_event(
        self,
    ) -> Request | Data | EndOfMessage | ConnectionClosed | _Sentinel:
        """The next event, ``NEED_DATA`` or ``PAUSED``; raises ``ProtocolError``."""
        try:
            state = self._state
            if state == _IDLE:
                return self._read_head()
            if state == _BODY:
                if self._remaining:
                    return self._read_data()
                self._state = _DONE
                return END_OF_MESSAGE
            if state == _DONE:
                return PAUSED
            if state == _CHUNK_DATA:
                return self._read_data()
            if state == _CHUNK_LINE:
                return self._read_chunk_line()
            if state == _CHUNK_END:
                return self._read_chunk_end()
            if state == _TRAILERS:
                return self._read_trailers()
            if state == _CLOSED:
                return CONNECTION_CLOSED
            assert self._error is not None
            raise self._error
        except ProtocolError as exc:
            self._state = _ERROR
            self._error = exc
            self._keep_alive = False
            raise

    def _read_head(self) -> Request | ConnectionClosed | _Sentinel:
        """A request head: request-line, field lines, empty line (RFC 9112 §2.1).

        Free-threaded 3.13 does not specialize attribute or global lookups, so this hot
        path keeps them few: locals, one tuple for the limits, bound regex methods.
        """
        buf = self._buf
        pos = self._pos
        if buf.startswith(b"\r\n", pos):
            pos = self._skip_empty_lines(buf, pos)
        scanned = self._scanned
        # Resume an earlier search 3 bytes back: CRLFCRLF may straddle two reads.
        end = buf.find(b"\r\n\r\n", pos + scanned - 3 if scanned > 3 else pos)
        if end < 0:
            return self._incomplete_head(buf, pos)
        if scanned:
            self._scanned = 0
            self._line_end = -1
            self._fields_seen = 0
        if type(buf) is not bytes:
            # The head spanned reads; one copy makes every piece cut from it bytes.
            buf = self._buf = bytes(buf)
        max_request_line, max_header_bytes, max_headers = self._head_limits
        line_end = buf.find(b"\r\n", pos)
        if line_end - pos > max_request_line:
            raise RequestLineTooLong(f"request line longer than {max_request_line} bytes")
        # The field section: every field line with its CRLF.
        section_bytes = end - line_end
        if section_bytes > max_header_bytes:
            raise HeaderTooLarge(f"header section larger than {max_header_bytes} bytes")
        request_line = _match_request_line(buf, pos, line_end)
        if request_line is None:
            raise _request_line_error(buf[pos:line_end])
        method, target, minor = request_line.groups()
        fields = buf[line_end:end]
        parts = _split_fields(fields)
        if any(parts[::3]):
            _check_field_gaps(parts, fields, "header section")
        names = parts[1::3]
        if len(names) > max_headers:
            raise HeaderTooLarge(f"more than {max_headers} header fields")
        headers = list(zip(map(bytes.lower, names), parts[2::3]))
        self._pos = end + 4

        by_name = dict(headers)
        if len(by_name) != len(headers):
            by_name = _combine_repeated_fields(headers)
        http11 = minor == b"1"
        if http11 and b"host" not in by_name:
            # RFC 9112 §3.2
            raise BadRequest("missing Host header field (required in HTTP/1.1)")
        if target[0] != 0x2F or method == b"CONNECT":  # not a plain "/..." origin-form
            _check_target_form(method, target)
        if b"content-length" in by_name or b"transfer-encoding" in by_name:
            content_length, chunked = self._request_framing(by_name, http11)
        else:
            content_length = None
            chunked = False
        connection = by_name.get(b"connection")
        keep_alive = http11 if connection is None else _request_keep_alive(connection, http11)
        expect = by_name.get(b"expect")
        # RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in HTTP/1.0.
        expect_continue = (
            expect is not None and http11 and b"100-continue" in _comma_tokens(expect)
        )

        if chunked:
            self._state = _CHUNK_LINE
            self._body_received = 0
            # Trailer fields count toward the same limits as the header section.
            self._head_bytes = section_bytes
            self._head_fields = len(names)
        else:
            self._state = _BODY
            self._remaining = content_length or 0
        self._http11 = http11
        self._is_head = method == b"HEAD"
        self._keep_alive = keep_alive
        self._response_state = _READY
        return Request(
            # Not a lookup table: on free-threaded 3.13, looking up a bytes key in a dict
            # owned by another thread (the importing one) costs ~25 µs. See docs/free-threading.md.
            method.decode("ascii"),
            target,
            "1.1" if http11 else "1.0",
            headers,
            keep_alive,
            expect_continue,
            content_length,
            chunked,
        )

    def _skip_empty_lines(self, buf: bytes | bytearray, pos: int) -> int:
        """RFC 9112 §2.2: ignore empty lines received before a request line, a few at most.

        (Some old clients send an extra CRLF after a POST body.)
        """
        while buf.startswith(b"\r\n", pos):
            self._empty_lines += 1
            if self._empty_lines > _MAX_EMPTY_LINES:
                raise BadRequest(
                    f"more than {_MAX_EMPTY_LINES} empty lines before the request line"
                )
            pos += 2
        self._pos = pos
        return pos

    def _incomplete_head(
        self, buf: bytes | bytearray, pos: int
    ) -> ConnectionClosed | _Sentinel:
        """Check a partial head as it grows, looking only at the new bytes, so that a
        broken or oversized head fails before its terminating empty line arrives:

        - a bare CR or LF -> 400 (else a client ending lines with LF would just hang);
        - request line longer than ``max_request_line`` -> 414, even before its CRLF;
        - more than ``max_headers`` field lines or a field section over
          ``max_header_bytes`` -> 431.
        """
        size = len(buf) - pos
        if self._eof:
            if size == 0:  # EOF at a message boundary
                self._state = _CLOSED
                return CONNECTION_CLOSED
            raise BadRequest(_INCOMPLETE_HEAD)
        if size == 0 or (size == 1 and buf[pos] == 0x0D):  # nothing, or half an empty line
            return NEED_DATA
        if buf[pos] not in _TCHAR_BYTES:
            # Fail fast on what cannot become a request line (e.g. a TLS handshake).
            raise BadRequest("request line does not start with a method token")
        scanned = self._scanned
        new_lines = _count_new_lines(buf, pos, scanned, "request head")
        line_end = self._line_end
        if line_end < 0:
            # No CRLF before this read, so the first new one ends the request line.
            line_end = buf.find(b"\r\n", pos + scanned - 1 if scanned else pos)
            if line_end < 0:
                if size > self._max_request_line + 1:  # + 1: a CR may await its LF
                    raise RequestLineTooLong(
                        f"request line longer than {self._max_request_line} bytes"
                    )
                self._scanned = size
                return NEED_DATA
            line_end -= pos
            if line_end > self._max_request_line:
                raise RequestLineTooLong(
                    f"request line longer than {self._max_request_line} bytes"
                )
            self._line_end = line_end
            new_lines -= 1
        self._fields_seen += new_lines
        if self._fields_seen > self._max_headers:
            raise HeaderTooLarge(f"more than {self._max_headers} header fields")
        # A section of at most max_header_bytes would end (CRLFCRLF) within this size.
        if size - line_end >= self._max_header_bytes + 4:
            raise HeaderTooLarge(f"header section larger than {self._max_header_bytes} bytes")
        self._scanned = size
        return NEED_DATA

    def _request_framing(
        self, by_name: dict[bytes, bytes], http11: bool
    ) -> tuple[int | None, bool]:
        """Body framing of a request: ``(content_length, chunked)`` (RFC 9112 §6).

        - Transfer-Encoding in an HTTP/1.0 request: faulty framing (§6.1) -> 400;
        - Content-Length and Transfer-Encoding both present -> 400 (§6.3);
        - chunked must be the final transfer coding -> 400 (§6.3), and it is the only
          one we implement -> 501 for anything else (§6.1);
        - Content-Length is 1*DIGIT (§6.2) -> 400 otherwise; over ``max_body_size`` -> 413.
        """
        transfer_encoding = by_name.get(b"transfer-encoding")
        content_length = by_name.get(b"content-length")
        if transfer_encoding is not None:
            if not http11:
                raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
            if content_length is not None:
                raise BadRequest("Content-Length and Transfer-Encoding both present")
            codings = [c.strip(b" \t") for c in transfer_encoding.lower().split(b",")]
            if codings[-1] != b"chunked":
                raise BadRequest("chunked is not the final transfer coding")
            if len(codings) > 1:
                raise UnsupportedTransferCoding(
                    "transfer coding not implemented: only a single chunked is supported"
                )
            return None, True
        assert content_length is not None
        if not content_length.isdigit():
            raise BadRequest("Content-Length is not 1*DIGIT")
        if len(content_length) > _MAX_CONTENT_LENGTH_DIGITS:
            raise BadRequest(f"Content-Length longer than {_MAX_CONTENT_LENGTH_DIGITS} digits")
        length = int(content_length)
        if length > self._max_body_size:
            raise BodyTooLarge(
                f"Content-Length {length} exceeds the limit of {self._max_body_size} bytes"
            )
        return length, False

    def _read_data(self) -> Data | _Sentinel:
        """Body bytes as they arrive (Content-Length body or chunk data), never empty."""
        buf = self._buf
        pos = self._pos
        available = len(buf) - pos
        if not available:
            if self._eof:
                raise BadRequest(_INCOMPLETE_BODY)
            return NEED_DATA
        remaining = self._remaining
        if available <= remaining:
            # Take all: the usual case, and uncopied when a read holds only body bytes.
            data = buf if pos == 0 and type(buf) is bytes else bytes(buf[pos:])
            taken = available
        else:
            taken = remaining
            data = bytes(buf[pos : pos + taken])
        self._pos = pos + taken
        self._remaining = remaining - taken
        if remaining == taken and self._state == _CHUNK_DATA:
            self._state = _CHUNK_END
        return Data(data)

    def _read_chunk_line(self) -> Data | EndOfMessage | _Sentinel:
        """``chunk-size [ chunk-ext ] CRLF`` (RFC 9112 §7.1).

        chunk-size is at most 16 hex digits; extensions are ignored but must be free of
        control characters; the line is at most 4 KiB. The running body size is checked
        against ``max_body_size`` (413) as soon as a chunk-size announces the excess.
        """
        buf = self._buf
        pos = self._pos
        line_end = buf.find(b"\r\n", pos, pos + _MAX_CHUNK_LINE + 2)
        if line_end < 0:
            if len(buf) - pos > _MAX_CHUNK_LINE + 1:  # + 1: a CR may await its LF
                raise BadRequest(f"chunk-size line longer than {_MAX_CHUNK_LINE} bytes")
            if self._eof:
                raise BadRequest(_INCOMPLETE_BODY)
            return NEED_DATA
        match = _CHUNK_LINE_RE.fullmatch(buf, pos, line_end)
        if match is None:
            raise _chunk_line_error(bytes(buf[pos:line_end]))
        size = int(match.group(1), 16)
        self._pos = line_end + 2
        if size == 0:  # last-chunk
            self._state = _TRAILERS
            return self._read_trailers()
        received = self._body_received + size
        if received > self._max_body_size:
            raise BodyTooLarge(f"request body exceeds the limit of {self._max_body_size} bytes")
        self._body_received = received
        self._remaining = size
        self._state = _CHUNK_DATA
        return self._read_data()

    def _read_chunk_end(self) -> Data | EndOfMessage | _Sentinel:
        """Chunk data is followed by exactly CRLF (RFC 9112 §7.1)."""
        buf = self._buf
        pos = self._pos
        if buf.startswith(b"\r\n", pos):
            self._pos = pos + 2
            self._state = _CHUNK_LINE
            return self._read_chunk_line()
        available = len(buf) - pos
        if available >= 2 or (available == 1 and buf[pos] != 0x0D):
            raise BadRequest("chunk data is not followed by CRLF")
        if self._eof:
            raise BadRequest(_INCOMPLETE_BODY)
        return NEED_DATA

    def _read_trailers(self) -> EndOfMessage | _Sentinel:
        """The trailer section after the last chunk, then CRLF (RFC 9112 §7.1.2).

        Trailer fields obey the field-line rules, count toward ``max_headers`` and
        ``max_header_bytes`` together with the head (431), and are dropped; a framing
        field (Content-Length, Transfer-Encoding) among them is a 400.
        """
        buf = self._buf
        pos = self._pos
        if buf.startswith(b"\r\n", pos):  # no trailer fields: the usual case
            self._pos = pos + 2
            self._state = _DONE
            return END_OF_MESSAGE
        fields_budget = self._max_headers - self._head_fields
        bytes_budget = self._max_header_bytes - self._head_bytes
        scanned = self._scanned
        end = buf.find(b"\r\n\r\n", pos + scanned - 3 if scanned > 3 else pos)
        if end < 0:
            if self._eof:
                raise BadRequest(_INCOMPLETE_BODY)
            size = len(buf) - pos
            self._fields_seen += _count_new_lines(buf, pos, scanned, "trailer section")
            if self._fields_seen > fields_budget:
                raise HeaderTooLarge(f"more than {self._max_headers} header and trailer fields")
            # A trailer section of at most bytes_budget would end within this size.
            if size >= bytes_budget + 2:
                raise HeaderTooLarge(
                    f"header and trailer sections larger than {self._max_header_bytes} bytes"
                )
            self._scanned = size
            return NEED_DATA
        fields = b"\r\n" + buf[pos:end]
        parts = _FIELD_SPLIT_RE.split(fields)
        if any(parts[::3]):
            _check_field_gaps(parts, fields, "trailer section")
        if len(parts) // 3 > fields_budget:
            raise HeaderTooLarge(f"more than {self._max_headers} header and trailer fields")
        if end + 2 - pos > bytes_budget:
            raise HeaderTooLarge(
                f"header and trailer sections larger than {self._max_header_bytes} bytes"
            )
        for name in parts[1::3]:
            if name.lower() in _FRAMING_FIELDS:
                # RFC 9110 §6.5.1: framing fields cannot be processed after the content.
                raise BadRequest(f"{name.decode('ascii')} in the trailer section")
        self._pos = end + 4
        self._scanned = 0
        self._fields_seen = 0
        self._state = _DONE
        return END_OF_MESSAGE

    def error_response(self, exc: ProtocolError, date: bytes | None) -> bytes:
        """A complete response for ``exc`` (raised by ``next_event``); the connection closes."""
        if self._response_state >= _SENDING:
            raise LocalProtocolError("error_response() after a response was started")
        self._keep_alive = False
        self._response_state = _SENT
        return render_error_response(exc, date, self._server_header)

    # --- connection -----------------------------------------------------------------

    @property
    def keep_alive(self) -> bool:
        """Whether the connection can carry another request after this response."""
        return self._keep_alive

    @property
    def trailing_data(self) -> bytes:
        """Bytes received and not consumed (e.g. pipelined requests)."""
        return bytes(self._buf[self._pos :])

    @property
    def trailing_size(self) -> int:
        """``len(trailing_data)`` without the copy."""
        return len(self._buf) - self._pos

    def next_cycle(self) -> int:
        """After a complete response: ``start_next_cycle()`` and return ``trailing_size``
        if the connection is kept alive, else -1 (the caller closes it)."""
        if not self._keep_alive:
            return -1
        self.start_next_cycle()
        return len(self._buf) - self._pos

    def start_next_cycle(self) -> None:
        """Get ready for the next request: legal once the request was read to its
        ``EndOfMessage``, the response was ended and ``keep_alive`` is still True."""
        if self._state != _DONE:
            raise LocalProtocolError("start_next_cycle() before the request was fully read")
        if self._response_state != _SENT:
            raise LocalProtocolError("start_next_cycle() before the response was complete")
        if not self._keep_alive:
            raise LocalProtocolError("start_next_cycle() on a connection that must close")
        self._state = _IDLE
        self._response_state = _NO_REQUEST
        self._empty_lines = 0


def _date_and_server(date: bytes | None, server: bytes | None) -> bytes:
    """The ``date`` and ``server`` field lines a response head gets (either may be absent)."""
    tail = b"" if date is None else b"date: " + date + b"\r\n"
    return tail if server is None else tail + b"server: " + server + b"\r\n"


_FRAMING_FIELDS: Final = (b"content-length", b"transfer-encoding")

_MANAGED_RESPONSE_FIELDS: Final = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"date", b"server")
)


def _limit(value: int | None) -> int:
    """A ``Limits`` value as an int: None (unlimited) becomes sys.maxsize."""
    return _UNLIMITED if value is None else value


def _count_new_lines(buf: bytes | bytearray, pos: int, scanned: int, section: str) -> int:
    """CRLFs completed in a growing section since ``scanned`` bytes past ``pos`` were
    examined. Lines end with CRLF only (RFC 9112 §2.2): a bare CR or LF among the new
    bytes raises (a CR that is the last byte may still get its LF)."""
    first = pos + scanned - 1 if scanned else pos  # a CRLF may straddle two reads
    crlf = buf.count(b"\r\n", first)
    if buf.count(b"\n", pos + scanned) != crlf or buf.count(b"\r", first, len(buf) - 1) != crlf:
        raise BadRequest(f"bare CR or LF in the {section}: lines end with CRLF")
    return crlf


def _comma_tokens(value: bytes) -> list[bytes]:
    """Elements of a comma-separated list field, lower-cased (RFC 9110 §5.6.1)."""
    return [element.strip(b" \t") for element in value.lower().split(b",")]


def _request_keep_alive(connection: bytes, http11: bool) -> bool:
    """RFC 9112 §9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only with ``keep-alive``.

    ``connection`` is the (combined) field value, its outer OWS already removed.
    """
    option = connection.lower()
    if b"," not in option:  # one option, as browsers send: no list to split
        return option != b"close" and (http11 or option == b"keep-alive")
    options = _comma_tokens(connection)
    if b"close" in options:
        return False
    return http11 or b"keep-alive" in options


def _combine_repeated_fields(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Field values by name, repeated fields combined with ", " (RFC 9110 §5.3).

    Host (RFC 9112 §3.2) and Content-Length (RFC 9112 §6.3) must not repeat: 400.
    """
    combined: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in combined:
            if name == b"host":
                raise BadRequest("more than one Host header field")
            if name == b"content-length":
                raise BadRequest("more than one Content-Length header field")
            combined[name] += b", " + value
        else:
            combined[name] = value
    return combined


def _check_target_form(method: bytes, target: bytes) -> None:
    """RFC 9112 §3.2: origin-form ("/..."), absolute-form ("scheme://..."),
    authority-form ("host:port", CONNECT only, and CONNECT requires it), or
    asterisk-form ("*", OPTIONS only)."""
    if method == b"CONNECT":
        if _AUTHORITY_FORM_RE.fullmatch(target) is None:
            raise BadRequest("CONNECT request-target must be in authority-form (host:port)")
    elif target == b"*":
        if method != b"OPTIONS":
            raise BadRequest("asterisk-form request-target is only allowed with OPTIONS")
    elif target[0] != 0x2F and _ABSOLUTE_FORM_RE.match(target) is None:
        raise BadRequest("request-target is not in origin-form or absolute-form")


def _request_line_error(request_line: bytes) -> ProtocolError:
    """Name the rule a request line broke (RFC 9112 §3), once _REQUEST_LINE_RE failed."""
    if b"\r" in request_line or b"\n" in request_line:
        return BadRequest("bare CR or LF in the request line: lines end with CRLF")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        return BadRequest("request line is not method SP request-target SP HTTP-version")
    method, target, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        return BadRequest("method is not a token")
    if re.fullmatch(rb"[\x21-\x7e]+", target) is None:
        return BadRequest("request-target is empty or not all visible ASCII")
    if _HTTP_VERSION_RE.fullmatch(version) is None:
        return BadRequest("HTTP-version is not HTTP/DIGIT.DIGIT")
    return UnsupportedVersion("HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")


def _check_field_gaps(parts: list[bytes], fields: bytes, section: str) -> None:
    """Accept what _FIELD_SPLIT_RE left between the field lines of ``fields`` (CRLF
    field-line, repeated) only if it is trailing OWS; else raise the error naming the
    rule the section broke."""
    if all(_OWS_RE.fullmatch(gap) for gap in parts[::3]):
        return
    raise _fields_error(fields.split(b"\r\n")[1:], section)


def _fields_error(lines: list[bytes], section: str) -> ProtocolError:
    """Name the rule a field line broke (RFC 9112 §5, RFC 9110 §5.5)."""
    for line in lines:
        if b"\r" in line or b"\n" in line:
            return BadRequest(f"bare CR or LF in the {section}: lines end with CRLF")
        if line[:1] in (b" ", b"\t"):
            return BadRequest(f"obs-fold (a line starting with whitespace) in the {section}")
        name, colon, value = line.partition(b":")
        if not colon:
            return BadRequest(f"field line without a colon in the {section}")
        if not name:
            return BadRequest(f"empty field name in the {section}")
        if name[-1:] in (b" ", b"\t"):
            return BadRequest(f"whitespace between field name and colon in the {section}")
        if _TOKEN_RE.fullmatch(name) is None:
            return BadRequest(f"field name is not a token in the {section}")
        if b"\x00" in value:
            return BadRequest(f"NUL in a field value in the {section}")
        if _FIELD_VALUE_RE.fullmatch(value) is None:
            return BadRequest(f"control character in a field value in the {section}")
    # Unreachable while the per-line rules above mirror _FIELD_SPLIT_RE; kept so that a
    # divergence between the two still rejects instead of accepting.
    return BadRequest(f"malformed {section}")


def _chunk_line_error(line: bytes) -> ProtocolError:
    """Name what is wrong with a chunk-size line that _CHUNK_LINE_RE rejected."""
    size = re.match(rb"[0-9A-Fa-f]*", line)
    assert size is not None
    if size.end() > _MAX_CHUNK_SIZE_DIGITS:
        return BadRequest(f"chunk-size longer than {_MAX_CHUNK_SIZE_DIGITS} hex digits")
    return BadRequest("invalid chunk-size line: expected chunk-size [ ;chunk-ext ] CRLF")


def _response_field_error(name: bytes, value: bytes) -> str:
    """Name the application's invalid response field (the value is not echoed)."""
    if _TOKEN_RE.fullmatch(name) is None:
        return f"response field name {name!r} is not a token"
    return f"response field {name!r} has a value with CR, LF or NUL"
