"""``H11Guard``: the rules our parser enforces on the raw bytes of a request and h11 does not
(it normalizes them away before its events show them), checked in ``--http1 h11`` mode
before h11 parses those bytes, so that the strict mode is never the laxer one. Why each
is a rule: docs/architecture.md ("The h11 mode").
"""

from __future__ import annotations

import re
import sys
from typing import Final

from ..errors import BadRequest, BodyTooLarge, HeaderTooLarge, ProtocolError
from ..limits import Limits
from .common import CHUNK_LINE_RE, MAX_CHUNK_LINE
from .rules import chunk_line_error

__all__ = ["H11Guard"]

# h11 ends a head, or a trailer section, at the first LF CR? LF: the guard cuts the same.
_SECTION_END_RE: Final = re.compile(rb"\n\r?\n")
# Controls other than HTAB, CR and LF (those two only as CRLF, checked apart).
_CONTROL_RE: Final = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTENT_LENGTH_RE: Final = re.compile(rb"\r\ncontent-length:[ \t]*([^\r]*?)[ \t]*(?=\r\n)")

# Where the guard is in the current request.
_HEAD = 0
_BODY = 1  # ``_remaining`` bytes of Content-Length body (or chunk data + CRLF) to skip
_CHUNK_LINE = 2
_TRAILERS = 3
_DONE = 4  # the request ended: later bytes belong to the next cycle


class H11Guard:
    """Scans the bytes of one request as they arrive, ahead of h11, and keeps the first
    rule they break in ``error`` (``H11Connection`` raises it on its next event):

    - lines end with CRLF only, in the head and the trailer section (RFC 9112 §2.2);
    - no obs-fold (RFC 9112 §5.2): h11 unfolds it, so ``X: y`` followed by
      `` Transfer-Encoding: chunked`` would reach us as one field that a proxy framed;
    - no control characters but HTAB in the head or trailers (RFC 9110 §5.5);
    - one Content-Length, 1*DIGIT (RFC 9112 §6.3): h11 merges ``1, 1`` and repeats;
    - chunk lines of at most 16 hex digits and a chunk-ext that follows its grammar
      (RFC 9112 §7.1.1), the running body size within ``max_body_size`` as soon as a
      chunk-size announces it (413): h11 waits for a ``ffffffffffffffff`` chunk's data;
    - no Content-Length or Transfer-Encoding in trailers (RFC 9110 §6.5.1).

    The guard stops at the request's end; ``restart`` begins the next one with the
    bytes received beyond it.
    """

    __slots__ = (
        "error", "_buf", "_searched", "_state", "_remaining", "_body_received", "_max_body_size", "_max_buffer",
    )  # fmt: skip

    def __init__(self, limits: Limits) -> None:
        self.error: ProtocolError | None = None
        self._max_body_size = sys.maxsize if limits.max_body_size is None else limits.max_body_size
        # Beyond this h11 answers 431 itself (its max_incomplete_event_size).
        if limits.max_request_line is None or limits.max_header_bytes is None:
            self._max_buffer = sys.maxsize
        else:
            self._max_buffer = limits.max_request_line + limits.max_header_bytes + 4
        self.restart(b"")

    def restart(self, data: bytes) -> None:
        """A new request begins with ``data`` (pipelined bytes already received)."""
        self._buf = bytearray()
        self._searched = 0  # bytes of an incomplete section already searched for its end
        self._state = _HEAD
        self._remaining = 0
        self._body_received = 0
        if data:
            self.feed(data)

    def feed(self, data: bytes) -> None:
        """Bytes from the peer, in order."""
        if self._state == _DONE or self.error is not None:
            return
        try:
            self._scan(data)
        except ProtocolError as exc:
            self.error = exc

    def _scan(self, data: bytes) -> None:
        buf = self._buf
        if self._state == _BODY and not buf and len(data) < self._remaining:
            self._remaining -= len(data)  # inside a body: nothing to keep
            return
        buf += data
        while buf and self._state != _DONE:
            state = self._state
            if state == _BODY:
                taken = min(self._remaining, len(buf))
                del buf[:taken]
                self._remaining -= taken
                if not self._remaining:
                    # (Only chunks count toward _body_received: a Content-Length body ends here.)
                    self._state = _CHUNK_LINE if self._body_received else _DONE
                continue
            if state == _CHUNK_LINE:
                end = buf.find(b"\r\n", 0, MAX_CHUNK_LINE + 2)
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE + 1:
                        raise BadRequest(f"chunk-size line longer than {MAX_CHUNK_LINE} bytes")
                    return
                self._chunk_line(bytes(buf[:end]))
                del buf[: end + 2]
                continue
            if state == _TRAILERS and buf.startswith(b"\r\n"):
                self._state = _DONE
                return
            # Resume 2 bytes back: the end (LF CR LF) may straddle two reads.
            match = _SECTION_END_RE.search(buf, max(0, self._searched - 2))
            if match is None:
                if len(buf) > self._max_buffer:
                    raise HeaderTooLarge("request head or trailer section too large")
                self._searched = len(buf)
                return
            self._searched = 0
            section = bytes(buf[: match.end()])
            del buf[: match.end()]
            if state == _HEAD:
                self._head(section)
            else:
                self._trailers(section)

    def _head(self, head: bytes) -> None:
        """Check a head and find how its body is framed (h11 rejects other framings)."""
        lowered = _check_section(head, "request head")
        lengths = _CONTENT_LENGTH_RE.findall(lowered)
        if len(lengths) > 1:
            raise BadRequest("more than one Content-Length header field")
        if b"\r\ntransfer-encoding:" in lowered:
            self._state = _CHUNK_LINE
        elif lengths:
            if not lengths[0].isdigit():
                raise BadRequest("Content-Length is not 1*DIGIT")
            self._remaining = int(lengths[0])
            self._state = _BODY if self._remaining else _DONE
        else:
            self._state = _DONE

    def _chunk_line(self, line: bytes) -> None:
        match = CHUNK_LINE_RE.fullmatch(line)
        if match is None:
            raise chunk_line_error(line)
        size = int(match.group(1), 16)
        if not size:
            self._state = _TRAILERS
            return
        self._body_received += size
        if self._body_received > self._max_body_size:
            raise BodyTooLarge(f"request body exceeds the limit of {self._max_body_size} bytes")
        self._remaining = size + 2  # the chunk data and its CRLF (h11 checks that CRLF)
        self._state = _BODY

    def _trailers(self, section: bytes) -> None:
        lowered = _check_section(b"\r\n" + section, "trailer section")
        for name in (b"\r\ncontent-length:", b"\r\ntransfer-encoding:"):
            if name in lowered:
                raise BadRequest(f"{name[2:-1].decode('ascii')} in the trailer section")
        self._state = _DONE


def _check_section(section: bytes, what: str) -> bytes:
    """The CRLF, obs-fold and control-character rules on a head or trailer section
    (ending with its empty line); returns it lower-cased."""
    lines = section.count(b"\r\n")
    if section.count(b"\n") != lines or section.count(b"\r") != lines:
        raise BadRequest(f"bare CR or LF in the {what}: lines end with CRLF")
    if b"\r\n " in section or b"\r\n\t" in section:
        raise BadRequest(f"obs-fold (a line starting with whitespace) in the {what}")
    if _CONTROL_RE.search(section) is not None:
        raise BadRequest(f"control character in the {what}")
    return section.lower()
