"""An HTTP/2 request's field block as the neutral ``Request`` (RFC 9113 §8.2, §8.3).

A request that breaks these rules is *malformed* (RFC 9113 §8.1.1): a stream error, never
a connection error and never something an application sees. ``MalformedRequest`` says
which rule broke; the connection object resets the stream with ``PROTOCOL_ERROR``.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import ProtocolError
from ..events import Request
from ..http1.common import HOST_RE, TOKEN, TOKEN_RE

__all__ = ["ExtendedConnect", "MalformedRequest", "check_trailers", "request_from_fields", "upgraded_request"]

#: A field name: a token without upper-case letters (RFC 9113 §8.2.1).
_NAME_RE: Final = re.compile(TOKEN.replace(b"A-Z", b""))
#: A field value: no NUL, CR or LF, no leading or trailing SP/HTAB (RFC 9113 §8.2.1).
_VALUE_RE: Final = re.compile(rb"(?:[^\x00\r\n\t ](?:[^\x00\r\n]*[^\x00\r\n\t ])?)?")
_match_name: Final = _NAME_RE.fullmatch
_match_value: Final = _VALUE_RE.fullmatch
_match_host: Final = HOST_RE.fullmatch
_match_token: Final = TOKEN_RE.fullmatch
#: Connection-specific fields: never in HTTP/2 (RFC 9113 §8.2.2).
CONNECTION_FIELDS: Final = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
_PSEUDO: Final = frozenset((b":method", b":scheme", b":authority", b":path"))


class MalformedRequest(ProtocolError):
    """A request or its trailers break RFC 9113 §8: a stream error (``PROTOCOL_ERROR``)."""


class ExtendedConnect(Request):
    """An extended CONNECT (RFC 8441 §4): ``CONNECT`` with ``:protocol`` (``protocol``,
    e.g. ``websocket``), ``:scheme``, ``:path`` (the ``target``) and ``:authority``. Its
    stream stays open both ways: after a 2xx its DATA frames carry the protocol's bytes."""

    __slots__ = ("protocol",)

    protocol: str


def _check_field(name: bytes, value: bytes) -> None:
    if _match_name(name) is None:
        raise MalformedRequest(f"invalid field name {name[:64]!r} (RFC 9113 §8.2.1: lower-case tokens)")
    if _match_value(value) is None:
        raise MalformedRequest(f"invalid value of {name.decode('latin-1')!r} (RFC 9113 §8.2.1)")
    if name in CONNECTION_FIELDS:
        raise MalformedRequest(f"connection-specific field {name.decode()!r} (RFC 9113 §8.2.2)")
    if name == b"te" and value.lower() != b"trailers":
        raise MalformedRequest("te other than 'trailers' (RFC 9113 §8.2.2)")


def request_from_fields(stream_id: int, fields: list[tuple[bytes, bytes]], end_stream: bool, extended_connect: bool = False) -> Request:
    """The ``Request`` of a received field block (``fields`` as HPACK decoded them).

    Pseudo-header fields (RFC 9113 §8.3.1) come first, once each, and only the four a
    request has; ``:method``, ``:scheme`` and a non-empty ``:path`` are required except for
    CONNECT (``:authority`` only). The authority (``:authority``, else ``host``) becomes
    the ``host`` field every interface reads (ASGI asks for it first); a ``host`` that
    names another authority is malformed. ``cookie`` crumbs are joined with ``"; "``
    (RFC 9113 §8.2.3). ``content-length`` must be one number (and 0 without a body).

    With ``extended_connect`` (we sent SETTINGS_ENABLE_CONNECT_PROTOCOL=1) a CONNECT may
    carry ``:protocol`` and then needs ``:scheme``, ``:path`` and ``:authority``: it is an
    ``ExtendedConnect``. ``:protocol`` otherwise, or on another method, is malformed
    (RFC 8441 §4, §5).
    """
    pseudo: dict[bytes, bytes] = {}
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] | None = None
    host: bytes | None = None
    content_length: bytes | None = None
    for name, value in fields:
        if name[:1] == b":":
            if headers or cookies is not None or host is not None:
                raise MalformedRequest("pseudo-header field after a regular field (RFC 9113 §8.3)")
            if name not in _PSEUDO and (name != b":protocol" or not extended_connect):
                raise MalformedRequest(f"unknown or response pseudo-header field {name[:64]!r} (RFC 9113 §8.3)")
            if name in pseudo:
                raise MalformedRequest(f"repeated pseudo-header field {name.decode()} (RFC 9113 §8.3)")
            pseudo[name] = value
            continue
        _check_field(name, value)
        if name == b"cookie":
            if cookies is None:
                cookies = []
            cookies.append(value)
            continue
        if name == b"host":
            if host is not None:
                raise MalformedRequest("more than one host field")
            host = value
        elif name == b"content-length":
            if content_length is not None and value != content_length:
                raise MalformedRequest("conflicting content-length fields")
            content_length = value
            continue
        headers.append((name, value))
    method_bytes = pseudo.get(b":method")
    if not method_bytes or _match_token(method_bytes) is None:
        raise MalformedRequest("missing or invalid :method (RFC 9113 §8.3.1)")
    method = method_bytes.decode("ascii")
    authority = pseudo.get(b":authority")
    scheme_bytes = pseudo.get(b":scheme")
    path = pseudo.get(b":path")
    protocol = pseudo.get(b":protocol")
    if protocol is not None:
        if method != "CONNECT" or not scheme_bytes or not path or not authority or not protocol:
            raise MalformedRequest(":protocol needs CONNECT with :scheme, :path and :authority (RFC 8441 §4)")
        if end_stream:
            raise MalformedRequest("an extended CONNECT ends its stream at once (RFC 8441 §4)")
    if method == "CONNECT" and protocol is None:
        if scheme_bytes is not None or path is not None or not authority:
            raise MalformedRequest("CONNECT needs :authority and no :scheme or :path (RFC 9113 §8.5)")
        target = authority
        scheme = None
    else:
        if not scheme_bytes or not path:
            raise MalformedRequest("missing :scheme or :path, or an empty :path (RFC 9113 §8.3.1)")
        scheme = scheme_bytes.decode("ascii", "replace")
        if path[:1] != b"/" and not (path == b"*" and method == "OPTIONS"):
            raise MalformedRequest("':path' must be origin-form, or '*' for OPTIONS (RFC 9113 §8.3.1)")
        if b" " in path or b"\x7f" in path or min(path) < 0x21:
            raise MalformedRequest("invalid characters in :path")
        target = path
    if authority is not None:
        if _match_host(authority) is None:
            raise MalformedRequest("invalid :authority (RFC 9113 §8.3.1: uri-host [':' port], no userinfo)")
        if host is not None and host.lower() != authority.lower():
            raise MalformedRequest("host differs from :authority (RFC 9113 §8.3.1)")
    elif host is not None:
        if _match_host(host) is None:
            raise MalformedRequest("invalid host field")
        authority = host
    elif scheme in ("http", "https"):
        raise MalformedRequest("neither :authority nor host (RFC 9113 §8.3.1)")
    if host is None and authority is not None:
        headers.insert(0, (b"host", authority))
    if cookies is not None:
        headers.append((b"cookie", b"; ".join(cookies)))
    length: int | None = None
    if content_length is not None:
        if not content_length.isdigit() or len(content_length) > 18:
            raise MalformedRequest("invalid content-length")
        length = int(content_length)
        if end_stream and length:
            raise MalformedRequest("content-length without a body (RFC 9113 §8.1.1)")
        headers.append((b"content-length", content_length))
    if protocol is not None:
        request = ExtendedConnect(stream_id, method, target, authority, scheme, "2", headers, None, True)
        request.protocol = protocol.decode("latin-1")
        return request
    return Request(stream_id, method, target, authority, scheme, "2", headers, length, not end_stream)


def check_trailers(fields: list[tuple[bytes, bytes]]) -> None:
    """Trailers carry no pseudo-header fields (RFC 9113 §8.1) and follow the field rules."""
    for name, value in fields:
        if name[:1] == b":":
            raise MalformedRequest("pseudo-header field in trailers (RFC 9113 §8.1)")
        _check_field(name, value)


#: HTTP/1.1 fields an ``Upgrade: h2c`` request carries that mean nothing on HTTP/2.
_UPGRADE_FIELDS: Final = CONNECTION_FIELDS | {b"http2-settings", b"te"}


def upgraded_request(request: Request) -> Request:
    """The HTTP/1.1 request of an ``Upgrade: h2c`` as HTTP/2's stream 1 (RFC 7540 §3.2):
    its connection-specific fields dropped (``te`` too, unless ``trailers``)."""
    headers = [
        (name, value)
        for name, value in request.headers
        if name not in _UPGRADE_FIELDS or (name == b"te" and value.lower() == b"trailers")
    ]
    return Request(1, request.method, request.target, request.authority, "http", "2", headers, request.content_length, request.has_body)
