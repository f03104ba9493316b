"""What the HTTP/1 parsers and the response writer share: the field grammar, the
list-field and authority helpers, and the request event they produce (``H1Request``).
"""

from __future__ import annotations

import re
from typing import Final

from ..events import Request

__all__ = [
    "ABSOLUTE_FORM_RE",
    "FIELD_VALUE",
    "FIELD_VALUE_RE",
    "TOKEN",
    "TOKEN_RE",
    "TINY_CHUNKS",
    "H1Request",
    "comma_tokens",
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


def comma_tokens(value: bytes) -> list[bytes]:
    """Elements of a comma-separated list field, lower-cased (RFC 9110 §5.6.1)."""
    return [element.strip(b" \t") for element in value.lower().split(b",")]


def target_authority(target: bytes, host: bytes | None) -> bytes | None:
    """The request's authority: that of an absolute-form ``target``, which wins over the
    Host field (RFC 9112 §3.2.2), else ``host`` (None when absent)."""
    match = _match_absolute_form(target)
    return host if match is None else match.group(1)


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
