"""``--header`` default response fields at the protocol level: validation, and how the
HTTP/1.1 writers (ours and h11's) and the HTTP/2 field block add them (bytes, no sockets)."""

from __future__ import annotations

import pytest

from ftserver.protocols.default_headers import DefaultHeaders, parse_header, response_defaults
from ftserver.protocols.errors import BadRequest
from ftserver.protocols.http1 import HTTP11Connection
from ftserver.protocols.http1.h11_adapter import H11Connection
from ftserver.protocols.http2.connection import HTTP2Connection
from ftserver.protocols.http2.settings import H2Settings
from ftserver.protocols.limits import Limits

DATE = b"Mon, 24 Nov 2026 18:44:00 GMT"
DEFAULTS = [("x-frame-options", "DENY"), ("strict-transport-security", "max-age=63072000; includeSubDomains")]


def test_parse_header_accepts_name_value_and_pairs():
    assert parse_header("X-Frame-Options: DENY") == ("x-frame-options", "DENY")
    assert parse_header("Link:</a>; rel=preload, </b>; rel=preload") == ("link", "</a>; rel=preload, </b>; rel=preload")
    assert parse_header(("Cache-Control", " no-store ")) == ("cache-control", "no-store")
    assert parse_header("x-empty:") == ("x-empty", "")
    assert parse_header("Server: edge/1") == ("server", "edge/1")


@pytest.mark.parametrize(
    "text, why",
    [
        ("no-colon", "is not NAME:VALUE"),
        ("bad name: x", "is not a header name"),
        (": x", "is not a header name"),
        ("x-a: one\r\nx-b: two", "control character"),
        ("x-a: nul\x00", "control character"),
        ("x-a: \u20ac", "not Latin-1"),
        ("Content-Length: 5", "set by the server"),
        ("transfer-encoding: chunked", "set by the server"),
        ("Connection: close", "set by the server"),
        ("date: yesterday", "set by the server"),
    ],
)
def test_parse_header_refuses(text, why):
    with pytest.raises(ValueError, match=why):
        parse_header(text)


def test_server_from_header_replaces_ftserver_even_without_server_header():
    assert response_defaults([], True) == (b"ftserver", None)
    assert response_defaults([], False) == (None, None)
    server, defaults = response_defaults([("server", "edge"), ("x-a", "1")], False)
    assert server == b"edge" and defaults is not None and defaults.fields == ((b"x-a", b"1"),)


def head_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(name.lower(), value) for name, _, value in (line.partition(b": ") for line in lines)]


@pytest.fixture(params=[HTTP11Connection, H11Connection], ids=["ours", "h11"])
def conn(request):
    conn = request.param(Limits(), b"ftserver", DefaultHeaders(DEFAULTS))
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    return conn


def test_http1_response_gets_the_defaults_once(conn):
    fields = head_fields(conn.send_complete(200, [(b"content-type", b"text/plain")], DATE, b"hi"))
    assert fields.count((b"x-frame-options", b"DENY")) == 1
    assert (b"strict-transport-security", b"max-age=63072000; includeSubDomains") in fields
    assert (b"server", b"ftserver") in fields and (b"date", DATE) in fields


def test_http1_app_field_of_a_default_name_wins(conn):
    head = conn.send_response(200, [(b"X-Frame-Options", b"SAMEORIGIN"), (b"content-length", b"0")], DATE)
    fields = head_fields(head)
    assert [value for name, value in fields if name == b"x-frame-options"] == [b"SAMEORIGIN"]
    assert (b"strict-transport-security", b"max-age=63072000; includeSubDomains") in fields
    assert (b"server", b"ftserver") in fields and (b"date", DATE) in fields


def test_http1_app_server_field_keeps_the_other_defaults(conn):
    fields = head_fields(conn.send_response(200, [(b"server", b"app"), (b"content-length", b"0")], DATE))
    assert [value for name, value in fields if name == b"server"] == [b"app"]
    assert (b"x-frame-options", b"DENY") in fields


def test_http1_error_answer_and_101_get_the_defaults(conn):
    fields = head_fields(conn.error_response(BadRequest("broken"), DATE))
    assert (b"x-frame-options", b"DENY") in fields and (b"connection", b"close") in fields
    fresh = HTTP11Connection(Limits(), None, DefaultHeaders(DEFAULTS))
    fresh.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    fresh.next_event()
    fields = head_fields(fresh.send_switching_protocols([(b"upgrade", b"websocket"), (b"x-frame-options", b"app")], DATE))
    assert [value for name, value in fields if name == b"x-frame-options"] == [b"app"]
    assert (b"strict-transport-security", b"max-age=63072000; includeSubDomains") in fields


def test_http1_without_defaults_is_unchanged():
    conn = HTTP11Connection(Limits(), b"ftserver")
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.next_event()
    head = conn.send_complete(200, [], DATE, b"")
    assert head == b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: " + DATE + b"\r\nserver: ftserver\r\n\r\n"


def test_http2_field_block_gets_the_defaults_unless_the_app_set_them():
    conn = HTTP2Connection(H2Settings(), b"ftserver", DefaultHeaders(DEFAULTS))
    fields = conn.response_fields(200, [(b"X-Frame-Options", b"SAMEORIGIN")], DATE, 2)
    assert [value for name, value in fields if name == b"x-frame-options"] == [b"SAMEORIGIN"]
    assert (b"strict-transport-security", b"max-age=63072000; includeSubDomains") in fields
    assert (b"server", b"ftserver") in fields
    trailers = conn.response_fields(200, [(b"x-checksum", b"1")], None, None, trailers=True)
    assert trailers[1:] == [(b"x-checksum", b"1")]  # no server, no defaults in a trailer block
