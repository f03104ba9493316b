"""What the HTTP/1 parsers and the response writer share: the field grammar, the
list-field and authority helpers, and the request event they produce (``H1Request``).
"""

from __future__ import annotations

import re
from typing import Final

from ..events import Request

__all__ = [
    "ABSOLUTE_FORM_RE",
    "CHUNK_LINE_RE",
    "FIELD_VALUE",
    "FIELD_VALUE_RE",
    "HOST_RE",
    "MAX_CHUNK_LINE",
    "TOKEN",
    "TOKEN_RE",
    "URI_HOST",
    "TINY_CHUNKS",
    "H1FastRequest",
    "H1Request",
    "comma_tokens",
    "set_host",
    "target_authority",
]

#: Why a chunked body past ``Limits.max_chunk_overhead`` is refused (both parsers).
TINY_CHUNKS: Final = "chunked body: more chunk framing than data (too many tiny chunks)"

# --- Grammar (RFC 9110 §5.5, §5.6.2) -------------------------------------------------

_TCHAR = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
#: token = 1*tchar (field names, methods, transfer codings).
TOKEN: Final = rb"[" + _TCHAR + rb"]+"
#: field-value characters: VCHAR, obs-text, SP, HTAB (the surrounding OWS included).
FIELD_VALUE: Final = rb"[\t\x20-\x7e\x80-\xff]*"
TOKEN_RE: Final = re.compile(TOKEN)
FIELD_VALUE_RE: Final = re.compile(FIELD_VALUE)

# absolute-form = scheme "://" authority path-abempty [ "?" query ] (RFC 9112 §3.2.2,
# RFC 3986 §3): the authority runs to the first "/", "?" or "#".
ABSOLUTE_FORM_RE: Final = re.compile(rb"[A-Za-z][A-Za-z0-9+\-.]*://([^/?#]*)")
_match_absolute_form: Final = ABSOLUTE_FORM_RE.match

# uri-host = IP-literal / IPv4address / reg-name (RFC 3986 §3.2.2); reg-name is
# unreserved, sub-delims and pct-encoded characters (IPv4address among them).
_REG_NAME_CHAR = rb"A-Za-z0-9\-._~!$&'()*+,;="
#: uri-host, as a regular expression source.
URI_HOST: Final = (
    rb"(?:\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[" + _REG_NAME_CHAR + rb":]+)\]"
    rb"|[" + _REG_NAME_CHAR + rb"]*(?:%[0-9A-Fa-f]{2}[" + _REG_NAME_CHAR + rb"]*)*)"
)
#: Host = uri-host [ ":" port ] (RFC 9110 §7.2): no userinfo, no spaces, no list.
HOST_RE: Final = re.compile(URI_HOST + rb"(?::[0-9]*)?")

# chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ), the value a
# token or a quoted-string, which holds no CR, LF or other controls (RFC 9112 §7.1.1,
# RFC 9110 §5.6.4): an unterminated quote is an error, not the start of a longer string.
_QUOTED_STRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_EXT = (
    rb"(?:[ \t]*;[ \t]*" + TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + TOKEN + rb"|" + _QUOTED_STRING + rb"))?)*"
)
#: chunk = chunk-size [ chunk-ext ] CRLF (the line without its CRLF); at most 16 digits.
CHUNK_LINE_RE: Final = re.compile(rb"([0-9A-Fa-f]{1,16})" + _CHUNK_EXT)
#: The longest chunk line accepted (without its CRLF): a 400 beyond.
MAX_CHUNK_LINE: Final = 4096


def comma_tokens(value: bytes) -> list[bytes]:
    """Elements of a comma-separated list field, lower-cased (RFC 9110 §5.6.1)."""
    return [element.strip(b" \t") for element in value.lower().split(b",")]


def target_authority(target: bytes) -> bytes | None:
    """The authority of an absolute-form ``target`` (None for any other form): it
    replaces the Host field (RFC 9112 §3.2.2)."""
    match = _match_absolute_form(target)
    return None if match is None else match.group(1)


def set_host(headers: list[tuple[bytes, bytes]], authority: bytes) -> None:
    """Make ``authority`` (an absolute-form target's) the Host field of ``headers``,
    replacing the one received or added at the end: RFC 9112 §3.2.2 says a server
    ignores the received Host then, and every interface reads the host from the fields
    (ASGI ``headers``, WSGI ``HTTP_HOST``, RSGI ``headers``)."""
    for index, (name, _) in enumerate(headers):
        if name == b"host":
            headers[index] = (name, authority)
            return
    headers.append((b"host", authority))


class H1Request(Request):
    """A ``Request`` read from HTTP/1.x, with the framing facts only HTTP/1 has.

    ``H1Request(method, target, authority, http_version, headers, keep_alive,
    expect_continue, content_length, chunked)``: positional, set here directly (no
    ``super().__init__`` call on the per-request path). ``stream_id`` is 0, ``scheme``
    None (the connection decides), ``has_body`` follows from the framing.
    """

    __slots__ = ("keep_alive", "expect_continue", "chunked")

    # Constant on HTTP/1.x: class attributes (they shadow the base's slots), not two
    # stores per request.
    stream_id = 0  # type: ignore[assignment]
    scheme = None  # type: ignore[assignment]

    def __init__(
        self,
        method: str,
        target: bytes,
        authority: bytes | None,
        http_version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
        expect_continue: bool,
        content_length: int | None,
        chunked: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.authority = authority
        self.http_version = http_version
        self.headers = headers
        self.content_length = content_length  # None when chunked or no body framing
        # (Not bool(content_length): a global lookup and a call, per request.)
        self.has_body = chunked or (content_length is not None and content_length > 0)
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.chunked = chunked
        self.client = None


class H1FastRequest(H1Request):
    """The ``H1Request`` of the parser's fast path (``HTTP11Connection.receive_request``):
    HTTP/1.1 without a body or an Expect field, so those facts are class attributes (read
    like the fields they shadow; never written) and only five fields are set per request."""

    __slots__ = ()

    http_version = "1.1"  # type: ignore[assignment]
    content_length = None  # type: ignore[assignment]
    has_body = False  # type: ignore[assignment]
    expect_continue = False  # type: ignore[assignment]
    chunked = False  # type: ignore[assignment]

    def __init__(  # (no super().__init__: see H1Request)
        self, method: str, target: bytes, authority: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool
    ) -> None:
        self.method = method
        self.target = target
        self.authority = authority
        self.headers = headers
        self.keep_alive = keep_alive
        self.client = None
