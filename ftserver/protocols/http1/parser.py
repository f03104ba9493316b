"""Our HTTP/1.1 request parser, ``HTTP11Connection``: fast, strict and sans-I/O (bytes in,
``H1Request``/``Data``/... events out; its base ``writer.ResponseWriter`` writes responses).
How it stays fast and what it rejects: docs/architecture.md ("Parsing HTTP/1.1").
"""

from __future__ import annotations

import re
import sys
from typing import Final

from ..errors import (
    BadRequest,
    BodyTooLarge,
    HeaderTooLarge,
    LocalProtocolError,
    ProtocolError,
    RequestLineTooLong,
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
from .common import (
    CHUNK_LINE_RE, FIELD_VALUE, HOST_RE, MAX_CHUNK_LINE, TINY_CHUNKS, TOKEN, H1FastRequest, H1Request, comma_tokens, set_host,
    target_authority,
)  # fmt: skip
from .rules import (
    check_field_gaps,
    check_host,
    check_target_form,
    chunk_line_error,
    combine_repeated_fields,
    count_new_lines,
    request_framing,
    request_keep_alive,
    request_line_error,
)
from .fast_head import ParsedHead, parse_whole_head
from .writer import AWAITING_REQUEST, RESPONSE_READY, RESPONSE_SENT, ResponseWriter

__all__ = ["HTTP11Connection"]

# request-line = method SP request-target SP HTTP-version. Only HTTP/1.0 and HTTP/1.1
# match; anything else goes to the diagnosis for 400 or 505.
_REQUEST_LINE_RE: Final = re.compile(rb"(" + TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.([01])")
# One pass over a field section ("\r\n" field-line, repeated) both validates and splits
# it: ``split`` gives [gap, name, value, gap, name, value, ..., gap]. Each match is a
# whole valid field line minus any trailing OWS (the value stops at its last visible
# character), so the section is valid exactly when every gap is empty or, after a
# value with trailing OWS, only SP/HTAB. Values come out without leading or trailing OWS.
_FIELD_SPLIT_RE: Final = re.compile(
    rb"\r\n(" + TOKEN + rb"):[ \t]*((?:" + FIELD_VALUE + rb"[\x21-\x7e\x80-\xff])?)"
)
_match_request_line: Final = _REQUEST_LINE_RE.fullmatch
_split_fields: Final = _FIELD_SPLIT_RE.split
_match_host: Final = HOST_RE.fullmatch

# chunk = chunk-size [ chunk-ext ] CRLF; the extensions are ignored but must follow
# their grammar (common.CHUNK_LINE_RE).
_match_chunk_line: Final = CHUNK_LINE_RE.fullmatch

_TCHAR_BYTES: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_MAX_EMPTY_LINES: Final = 8  # before a request line (RFC 9112 §2.2: ignore "at least one")
_UNLIMITED: Final = sys.maxsize


# --- States -----------------------------------------------------------------------

# Receiving side.
_IDLE = 0  # waiting for a request head (receive_request relies on it being 0)
_BODY = 1  # Content-Length body; ``_remaining`` bytes left (0: EndOfMessage next)
_CHUNK_LINE = 2  # waiting for a chunk-size line
_CHUNK_DATA = 3  # inside chunk data; ``_remaining`` bytes left in this chunk
_CHUNK_END = 4  # waiting for the CRLF that ends chunk data
_TRAILERS = 5  # waiting for the trailer section after the last chunk
_DONE = 6  # request complete: PAUSED until start_next_cycle()
_CLOSED = 7  # ConnectionClosed returned
_ERROR = 8  # a ProtocolError was raised; raised again on every call

_INCOMPLETE_HEAD = "incomplete request: connection closed before the request head was complete"
_INCOMPLETE_BODY = "incomplete request: connection closed before the request body was complete"


class HTTP11Connection(ResponseWriter):
    """One HTTP/1.1 connection, server side: requests in, responses out.

    Receiving: ``receive_data()`` then ``next_event()`` until ``NEED_DATA`` or
    ``PAUSED``. Each request yields ``H1Request``, zero or more non-empty ``Data`` and
    ``EndOfMessage``; after it ``next_event()`` returns ``PAUSED`` (pipelined bytes stay
    buffered, unparsed) until ``start_next_cycle()``. EOF at a message boundary (only
    empty lines received, or nothing) yields ``ConnectionClosed``; EOF inside a head or
    a body raises ``BadRequest`` ("incomplete request"). A ``ProtocolError`` is raised
    again by every later call; answer it with ``error_response()`` and close.

    Sending: ``send_response()``, ``send_data()``\\*, ``send_end()``, each returning the
    bytes to write; then, if ``keep_alive``, ``start_next_cycle()``.
    """

    __slots__ = (
        "_buf", "_pos", "_eof", "_state", "_error", "_remaining", "_body_received",
        # the progress through an incomplete head or trailer section, and its size
        "_scanned", "_line_end", "_fields_seen", "_empty_lines", "_head_bytes", "_head_fields",
        "_chunk_overhead",
        # the limits, as ints
        "_head_limits", "_fast_max", "_max_request_line", "_max_header_bytes", "_max_headers",
        "_max_body_size", "_max_chunk_overhead", "upgrade",
        # the head receive_request parsed last, and what it gave
        "_last_head", "_last_request",
    )  # fmt: skip

    def __init__(self, limits: Limits, server_header: bytes | None = None, defaults: DefaultHeaders | None = None) -> None:
        super().__init__(server_header, defaults)
        # None means unlimited; a large int keeps the hot path free of None checks.
        self._max_request_line = _limit(limits.max_request_line)
        self._max_header_bytes = _limit(limits.max_header_bytes)
        self._max_headers = _limit(limits.max_headers)
        self._max_body_size = _limit(limits.max_body_size)
        self._max_chunk_overhead = _limit(limits.max_chunk_overhead)
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
        self._chunk_overhead = 0  # framing bytes of the chunked body so far
        # Progress through an incomplete head/trailer section: bytes past ``_pos``
        # already looked at, the request line's length once known, field lines seen.
        self._scanned = 0
        self._line_end = -1
        self._fields_seen = 0
        self._empty_lines = 0
        # Header section size, counted again when trailers arrive.
        self._head_bytes = 0
        self._head_fields = 0
        self.upgrade: bytes | None = None  # Upgrade of the last head the full parser read
        self._last_head: bytes | None = None
        self._last_request: ParsedHead = ("", b"", b"", (), False)  # (never taken: _last_head is None)

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

    def receive_request(self, data: bytes) -> H1Request | None:
        """The fast path for the usual read: ``data`` is exactly one whole request head
        and the connection is waiting for a request with nothing buffered.

        Returns the ``H1Request`` — the whole request: the fast path only takes requests
        without a body — and leaves the connection as ``receive_data(data)`` then
        ``next_event()`` until ``PAUSED`` would. Returns ``None``, consuming nothing, for
        anything else; the caller then goes the usual way, where every rule is named. So
        this path only has to recognise, in a few C-level passes, heads the full parser
        would accept with the same result: HTTP/1.1, an origin-form target, one Host, no
        Content-Length, Transfer-Encoding or Expect, within the limits
        (``tests/protocols/test_fast_path.py`` compares them).
        """
        if self._state or self._pos < len(self._buf):  # (_IDLE is 0)
            return None
        if data == self._last_head:
            # The very head of the last request this path took (a client repeating its
            # request): the same request, not parsed again.
            parsed = self._last_request
        else:
            parsed = parse_whole_head(data, self._fast_max, self._max_headers)
            if parsed is None:
                return None
            if type(data) is bytes:  # (not a buffer that may change)
                self._last_head = data
                self._last_request = parsed
        method, target, host, fields, keep_alive = parsed
        self._state = 6  # _DONE (literals here and in next_cycle: a constant, not a global load)
        self._http11 = True
        self._is_head = method == "HEAD"
        self._keep_alive = keep_alive
        self._response_state = 1  # RESPONSE_READY
        # (A list of its own: the app may change it.)
        return H1FastRequest(method, target, host, list(fields), keep_alive)

    def next_event(self) -> H1Request | Data | EndOfMessage | ConnectionClosed | Sentinel:
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

    def _read_head(self) -> H1Request | ConnectionClosed | Sentinel:
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
            raise request_line_error(buf[pos:line_end])
        method, target, minor = request_line.groups()
        fields = buf[line_end:end]
        parts = _split_fields(fields)
        if any(parts[::3]):
            check_field_gaps(parts, fields, "header section")
        names = parts[1::3]
        if len(names) > max_headers:
            raise HeaderTooLarge(f"more than {max_headers} header fields")
        headers = list(zip(map(bytes.lower, names), parts[2::3]))
        self._pos = end + 4

        by_name = dict(headers)
        if len(by_name) != len(headers):
            by_name = combine_repeated_fields(headers)
        http11 = minor == b"1"
        if http11 and b"host" not in by_name:
            # RFC 9112 §3.2
            raise BadRequest("missing Host header field (required in HTTP/1.1)")
        authority = by_name.get(b"host")
        if authority is not None and _match_host(authority) is None:
            check_host(authority)
        if target[0] != 0x2F or method == b"CONNECT":  # not a plain "/..." origin-form
            check_target_form(method, target)
            absolute = target_authority(target)
            if absolute is not None:
                authority = absolute
                set_host(headers, absolute)
        if b"content-length" in by_name or b"transfer-encoding" in by_name:
            content_length, chunked = request_framing(by_name, http11, self._max_body_size)
        else:
            content_length = None
            chunked = False
        connection = by_name.get(b"connection")
        keep_alive = http11 if connection is None else request_keep_alive(connection, http11)
        expect = by_name.get(b"expect")
        self.upgrade = by_name.get(b"upgrade")
        # RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in HTTP/1.0.
        expect_continue = expect is not None and http11 and b"100-continue" in comma_tokens(expect)

        if chunked:
            self._state = _CHUNK_LINE
            self._body_received = 0
            self._chunk_overhead = 0
            # Trailer fields count toward the same limits as the header section.
            self._head_bytes = section_bytes
            self._head_fields = len(names)
        else:
            self._state = _BODY
            self._remaining = content_length or 0
        self._http11 = http11
        self._is_head = method == b"HEAD"
        self._keep_alive = keep_alive
        self._response_state = RESPONSE_READY
        return H1Request(
            # Not a lookup table: on free-threaded 3.13, looking up a bytes key in a dict
            # owned by another thread (the importing one) costs ~25 µs. See docs/free-threading.md.
            method.decode("ascii"),
            target,
            authority,
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

    def _incomplete_head(self, buf: bytes | bytearray, pos: int) -> ConnectionClosed | Sentinel:
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
        new_lines = count_new_lines(buf, pos, scanned, "request head")
        line_end = self._line_end
        if line_end < 0:
            # No CRLF before this read, so the first new one ends the request line.
            line_end = buf.find(b"\r\n", pos + scanned - 1 if scanned else pos)
            if line_end < 0:
                if size > self._max_request_line + 1:  # + 1: a CR may await its LF
                    raise RequestLineTooLong(f"request line longer than {self._max_request_line} bytes")
                self._scanned = size
                return NEED_DATA
            line_end -= pos
            if line_end > self._max_request_line:
                raise RequestLineTooLong(f"request line longer than {self._max_request_line} bytes")
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

    def _read_data(self) -> Data | Sentinel:
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

    def _read_chunk_line(self) -> Data | EndOfMessage | Sentinel:
        """``chunk-size [ chunk-ext ] CRLF`` (RFC 9112 §7.1).

        chunk-size is at most 16 hex digits; extensions are ignored but must follow
        their grammar (a quoted-string ends on its line); the line is at most 4 KiB. The running body size is checked
        against ``max_body_size`` (413) as soon as a chunk-size announces the excess, and
        the framing against the data (``max_chunk_overhead``, 400).
        """
        buf = self._buf
        pos = self._pos
        line_end = buf.find(b"\r\n", pos, pos + MAX_CHUNK_LINE + 2)
        if line_end < 0:
            if len(buf) - pos > MAX_CHUNK_LINE + 1:  # + 1: a CR may await its LF
                raise BadRequest(f"chunk-size line longer than {MAX_CHUNK_LINE} bytes")
            if self._eof:
                raise BadRequest(_INCOMPLETE_BODY)
            return NEED_DATA
        match = _match_chunk_line(buf, pos, line_end)
        if match is None:
            raise chunk_line_error(bytes(buf[pos:line_end]))
        size = int(match.group(1), 16)
        self._pos = line_end + 2
        if size == 0:  # last-chunk
            self._state = _TRAILERS
            return self._read_trailers()
        received = self._body_received + size
        if received > self._max_body_size:
            raise BodyTooLarge(f"request body exceeds the limit of {self._max_body_size} bytes")
        # This line, its CRLF and the CRLF after the chunk's data.
        overhead = self._chunk_overhead + line_end + 4 - pos
        if overhead > self._max_chunk_overhead and overhead > received:
            raise BadRequest(TINY_CHUNKS)
        self._chunk_overhead = overhead
        self._body_received = received
        self._remaining = size
        self._state = _CHUNK_DATA
        return self._read_data()

    def _read_chunk_end(self) -> Data | EndOfMessage | Sentinel:
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

    def _read_trailers(self) -> EndOfMessage | Sentinel:
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
            self._fields_seen += count_new_lines(buf, pos, scanned, "trailer section")
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
            check_field_gaps(parts, fields, "trailer section")
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

    # --- connection -----------------------------------------------------------------

    @property
    def body_progress(self) -> int:
        """Grows with every body byte received: two equal readings mean a stalled body."""
        return self._body_received - self._remaining

    @property
    def trailing_data(self) -> bytes:
        """Bytes received and not consumed (e.g. pipelined requests)."""
        return bytes(self._buf[self._pos :])

    @property
    def trailing_size(self) -> int:
        """``len(trailing_data)`` without the copy."""
        return len(self._buf) - self._pos

    def next_cycle(self) -> int:
        """``ResponseWriter.next_cycle`` with ``start_next_cycle`` inline (one call per
        request fewer): -1 if the connection must close, else ``trailing_size``."""
        if not self._keep_alive:
            return -1
        if self._state != 6 or self._response_state != 3:  # _DONE, RESPONSE_SENT
            return self.start_next_cycle()  # (raises, naming what is missing)
        self._state = 0  # _IDLE
        self._response_state = 0  # AWAITING_REQUEST
        self._empty_lines = 0
        return len(self._buf) - self._pos

    def start_next_cycle(self) -> int:
        """Get ready for the next request and return ``trailing_size``: legal once the
        request was read to its ``EndOfMessage``, the response was ended and
        ``keep_alive`` is still True."""
        if self._state != _DONE:
            raise LocalProtocolError("start_next_cycle() before the request was fully read")
        if self._response_state != RESPONSE_SENT:
            raise LocalProtocolError("start_next_cycle() before the response was complete")
        if not self._keep_alive:
            raise LocalProtocolError("start_next_cycle() on a connection that must close")
        self._state = _IDLE
        self._response_state = AWAITING_REQUEST
        self._empty_lines = 0
        return len(self._buf) - self._pos


_FRAMING_FIELDS: Final = (b"content-length", b"transfer-encoding")


def _limit(value: int | None) -> int:
    """A ``Limits`` value as an int: None (unlimited) becomes sys.maxsize."""
    return _UNLIMITED if value is None else value
