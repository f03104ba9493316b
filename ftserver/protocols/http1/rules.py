"""The HTTP/1.1 request rules (RFC 9112, RFC 9110) that the parser applies off its hot
path, and the functions that name the rule a rejected request broke once the parser's
one-pass regular expressions have failed.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import (
    BadRequest,
    BodyTooLarge,
    ProtocolError,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)
from .common import ABSOLUTE_FORM_RE, FIELD_VALUE_RE, HOST_RE, TOKEN_RE, URI_HOST, comma_tokens

__all__ = [
    "check_field_gaps",
    "check_host",
    "check_target_form",
    "chunk_line_error",
    "combine_repeated_fields",
    "count_new_lines",
    "request_framing",
    "request_keep_alive",
    "request_line_error",
]

_OWS_RE: Final = re.compile(rb"[ \t]*")
_HTTP_VERSION_RE: Final = re.compile(rb"HTTP/[0-9]\.[0-9]")
# authority-form = uri-host ":" port (CONNECT).
_AUTHORITY_FORM_RE: Final = re.compile(URI_HOST + rb":[0-9]+")
_MAX_CONTENT_LENGTH_DIGITS: Final = 18  # < 2**63, far above any body limit
_MAX_CHUNK_SIZE_DIGITS: Final = 16  # the parser's chunk-line regex allows as many


def count_new_lines(buf: bytes | bytearray, pos: int, scanned: int, section: str) -> int:
    """CRLFs completed in a growing section since ``scanned`` bytes past ``pos`` were
    examined. Lines end with CRLF only (RFC 9112 §2.2): a bare CR or LF among the new
    bytes raises (a CR that is the last byte may still get its LF)."""
    first = pos + scanned - 1 if scanned else pos  # a CRLF may straddle two reads
    crlf = buf.count(b"\r\n", first)
    if buf.count(b"\n", pos + scanned) != crlf or buf.count(b"\r", first, len(buf) - 1) != crlf:
        raise BadRequest(f"bare CR or LF in the {section}: lines end with CRLF")
    return crlf


def request_keep_alive(connection: bytes, http11: bool) -> bool:
    """RFC 9112 §9.3: HTTP/1.1 persists unless ``close``; HTTP/1.0 only with ``keep-alive``.

    ``connection`` is the (combined) field value, its outer OWS already removed.
    """
    option = connection.lower()
    if b"," not in option:  # one option, as browsers send: no list to split
        return option != b"close" and (http11 or option == b"keep-alive")
    options = comma_tokens(connection)
    if b"close" in options:
        return False
    return http11 or b"keep-alive" in options


def request_framing(by_name: dict[bytes, bytes], http11: bool, max_body_size: int) -> tuple[int | None, bool]:
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
        codings = comma_tokens(transfer_encoding)
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
    if length > max_body_size:
        raise BodyTooLarge(f"Content-Length {length} exceeds the limit of {max_body_size} bytes")
    return length, False


def combine_repeated_fields(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
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


def check_target_form(method: bytes, target: bytes) -> None:
    """RFC 9112 §3.2: origin-form ("/..."), absolute-form ("scheme://..."),
    authority-form ("host:port", CONNECT only, and CONNECT requires it), or
    asterisk-form ("*", OPTIONS only).

    The authority of an absolute-form target replaces Host (§3.2.2), so it obeys Host's
    grammar, not empty: a userinfo ("user@") is an error (RFC 9110 §4.2.4).
    """
    if method == b"CONNECT":
        if _AUTHORITY_FORM_RE.fullmatch(target) is None:
            raise BadRequest("CONNECT request-target must be in authority-form (host:port)")
    elif target == b"*":
        if method != b"OPTIONS":
            raise BadRequest("asterisk-form request-target is only allowed with OPTIONS")
    elif target[0] != 0x2F:
        absolute = ABSOLUTE_FORM_RE.match(target)
        if absolute is None:
            raise BadRequest("request-target is not in origin-form or absolute-form")
        authority = absolute.group(1)
        if not authority or HOST_RE.fullmatch(authority) is None:
            raise BadRequest(
                "the authority of an absolute-form request-target is not host [ \":\" port ]"
                " (no userinfo; RFC 9112 §3.2.2, RFC 9110 §4.2.4)"
            )


def check_host(host: bytes) -> None:
    """RFC 9112 §3.2: a Host field value that is not ``uri-host [ ":" port ]`` (RFC 9110
    §7.2, RFC 3986 §3.2.2: no spaces, "/", userinfo or list) is a 400."""
    if HOST_RE.fullmatch(host) is None:
        raise BadRequest("invalid Host header field: not uri-host [ \":\" port ] (RFC 9112 §3.2)")


def request_line_error(request_line: bytes) -> ProtocolError:
    """Name the rule a request line broke (RFC 9112 §3), once the parser's regex failed."""
    if b"\r" in request_line or b"\n" in request_line:
        return BadRequest("bare CR or LF in the request line: lines end with CRLF")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        return BadRequest("request line is not method SP request-target SP HTTP-version")
    method, target, version = parts
    if TOKEN_RE.fullmatch(method) is None:
        return BadRequest("method is not a token")
    if re.fullmatch(rb"[\x21-\x7e]+", target) is None:
        return BadRequest("request-target is empty or not all visible ASCII")
    if _HTTP_VERSION_RE.fullmatch(version) is None:
        return BadRequest("HTTP-version is not HTTP/DIGIT.DIGIT")
    return UnsupportedVersion("HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")


def check_field_gaps(parts: list[bytes], fields: bytes, section: str) -> None:
    """Accept what the parser's field-splitting regex left between the field lines of
    ``fields`` (CRLF field-line, repeated) only if it is trailing OWS; else raise the
    error naming the rule the section broke."""
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
        if TOKEN_RE.fullmatch(name) is None:
            return BadRequest(f"field name is not a token in the {section}")
        if b"\x00" in value:
            return BadRequest(f"NUL in a field value in the {section}")
        if FIELD_VALUE_RE.fullmatch(value) is None:
            return BadRequest(f"control character in a field value in the {section}")
    # Unreachable while the per-line rules above mirror the parser's field-splitting
    # regex; kept so that a divergence between the two still rejects instead of accepting.
    return BadRequest(f"malformed {section}")


def chunk_line_error(line: bytes) -> ProtocolError:
    """Name what is wrong with a chunk-size line that the parser's regex rejected."""
    size = re.match(rb"[0-9A-Fa-f]*", line)
    assert size is not None
    if size.end() > _MAX_CHUNK_SIZE_DIGITS:
        return BadRequest(f"chunk-size longer than {_MAX_CHUNK_SIZE_DIGITS} hex digits")
    return BadRequest(
        "invalid chunk-size line: expected chunk-size [ ;chunk-ext ] CRLF, each chunk-ext"
        " a token [ = token or complete quoted-string ] (RFC 9112 §7.1.1)"
    )
