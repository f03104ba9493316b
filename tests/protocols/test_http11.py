"""HTTP/1.1 protocol objects, fed bytes directly (no sockets).

Tests taking the ``impl`` fixture run against both ``HTTP11Connection`` (ours) and
``H11Connection`` (h11): that behaviour must match. The others pin down ours alone,
where it is stricter than h11 or where h11 behaves differently (documented in
``h11_adapter.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from ftserver.protocols.errors import (
    BadRequest,
    BodyTooLarge,
    HeaderTooLarge,
    LocalProtocolError,
    ProtocolError,
    RequestLineTooLong,
    UnsupportedTransferCoding,
    UnsupportedVersion,
)
from ftserver.protocols.events import (
    CONNECTION_CLOSED,
    END_OF_MESSAGE,
    NEED_DATA,
    PAUSED,
    Data,
    EndOfMessage,
)
from ftserver.protocols.http1 import HTTP_100_CONTINUE, H1Request, HTTP11Connection
from ftserver.protocols.http1.h11_adapter import H11Connection
from ftserver.protocols.limits import Limits

Connection = HTTP11Connection | H11Connection
DATE = b"Mon, 24 Nov 2026 18:44:00 GMT"


@pytest.fixture(params=[HTTP11Connection, H11Connection], ids=["ours", "h11"])
def impl(request: pytest.FixtureRequest) -> type[Connection]:
    return request.param


def drain(conn: Connection) -> list[Any]:
    """Events until NEED_DATA, PAUSED or ConnectionClosed (included)."""
    events: list[Any] = []
    while True:
        event = conn.next_event()
        events.append(event)
        if event is NEED_DATA or event is PAUSED or event is CONNECTION_CLOSED:
            return events


def feed(conn: Connection, *pieces: bytes) -> list[Any]:
    """Feed each piece, draining events after each one; NEED_DATA markers dropped."""
    events: list[Any] = []
    for piece in pieces:
        conn.receive_data(piece)
        events += [e for e in drain(conn) if e is not NEED_DATA]
    return events


def body_of(events: list[Any]) -> bytes:
    assert all(e.data for e in events if isinstance(e, Data)), "empty Data event"
    return b"".join(e.data for e in events if isinstance(e, Data))


def parse(impl: type[Connection], raw: bytes, limits: Limits | None = None) -> list[Any]:
    return feed(impl(limits or Limits()), raw)


def reject(impl: type[Connection], raw: bytes, *, eof: bool = False, limits: Limits | None = None) -> ProtocolError:
    conn = impl(limits or Limits())
    with pytest.raises(ProtocolError) as info:
        feed(conn, raw, *([b""] if eof else []))
    # The error sticks: the connection cannot be used any more.
    with pytest.raises(ProtocolError):
        conn.next_event()
    assert not conn.keep_alive
    return info.value


def reject_keep(conn: Connection, raw: bytes) -> ProtocolError:
    """The error ``raw`` raises on ``conn``, which is kept for error_response()."""
    with pytest.raises(ProtocolError) as info:
        feed(conn, raw)
    return info.value


def respond(conn: Connection, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None,
            body: bytes = b"", date: bytes | None = None) -> bytes:
    if headers is None:
        headers = [(b"content-length", b"%d" % len(body))]
    return conn.send_response(status, headers, date) + conn.send_data(body) + conn.send_end()


def head_fields(response: bytes) -> list[tuple[bytes, bytes]]:
    """(lower-cased name, value) of a serialized response head."""
    head = response.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")[1:]
    return [(n.lower(), v.strip()) for n, _, v in (line.partition(b":") for line in lines)]


def request_for(conn: Connection, raw: bytes) -> H1Request:
    events = feed(conn, raw)
    assert isinstance(events[0], H1Request)
    return events[0]


# --- requests: shared behaviour --------------------------------------------------------


def test_simple_get(impl: type[Connection]) -> None:
    events = parse(impl, b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n")
    request, end, paused = events
    assert request.method == "GET"
    assert request.target == b"/path?q=1"
    assert request.http_version == "1.1"
    assert request.headers == [(b"host", b"example.com"), (b"accept", b"*/*")]
    assert request.keep_alive and not request.expect_continue
    assert request.content_length is None and not request.chunked and not request.has_body
    assert end is END_OF_MESSAGE
    assert paused is PAUSED


def test_header_names_lowercased_values_stripped_order_kept(impl: type[Connection]) -> None:
    raw = (b"GET / HTTP/1.1\r\nHost: a\r\nX-Multi: one\r\nx-EMPTY:\r\nX-OWS: \t v a l \t\r\n"
           b"X-Multi: two\r\nX-Obs: caf\xe9\r\n\r\n")
    request = parse(impl, raw)[0]
    assert request.headers == [
        (b"host", b"a"), (b"x-multi", b"one"), (b"x-empty", b""), (b"x-ows", b"v a l"),
        (b"x-multi", b"two"), (b"x-obs", b"caf\xe9"),
    ]


def test_methods_and_target_forms(impl: type[Connection]) -> None:
    for raw, method, target in [
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", b"*"),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", "CONNECT", b"example.com:443"),
        (b"GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n", "GET", b"http://example.com/x?y"),
        (b"PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n", "PURGE", b"/cache"),
    ]:
        request = parse(impl, raw)[0]
        assert (request.method, request.target) == (method, target)


@pytest.mark.parametrize(
    "raw, authority",
    [
        (b"GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n", b"Example.COM:8080"),  # as sent
        (b"GET / HTTP/1.1\r\nX: y\r\nHost: \t a \t\r\n\r\n", b"a"),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b""),
        (b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", b"a"),
        (b"GET / HTTP/1.0\r\n\r\n", None),  # HTTP/1.0 needs no Host
        (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", b"a"),
        (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", b"example.com:443"),
        # RFC 9112 §3.2.2: the authority of an absolute-form target wins over Host.
        (b"GET http://a.example:81/x?y HTTP/1.1\r\nHost: b.example\r\n\r\n", b"a.example:81"),
        (b"GET HTTPS://a.example?y HTTP/1.1\r\nHost: b.example\r\n\r\n", b"a.example"),
        (b"GET http://a.example#f HTTP/1.1\r\nHost: b.example\r\n\r\n", b"a.example"),
        (b"GET http://a.example/ HTTP/1.0\r\n\r\n", b"a.example"),
        (b"GET /http://a.example/ HTTP/1.1\r\nHost: b\r\n\r\n", b"b"),  # origin-form
    ],
)
def test_authority(impl: type[Connection], raw: bytes, authority: bytes | None) -> None:
    request = parse(impl, raw)[0]
    assert request.authority == authority
    # The Host field the application reads is that authority (RFC 9112 §3.2.2).
    assert [value for name, value in request.headers if name == b"host"] == ([] if authority is None else [authority])
    assert request.stream_id == 0 and request.scheme is None  # HTTP/1: the connection decides


def test_content_length_body_in_pieces(impl: type[Connection]) -> None:
    raw = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
    for cut in range(1, len(raw)):
        conn = impl(Limits())
        events = feed(conn, raw[:cut], raw[cut:])
        request = events[0]
        assert request.content_length == 11 and request.has_body
        assert body_of(events) == b"hello world"
        assert events[-2:] == [END_OF_MESSAGE, PAUSED]


def test_zero_content_length(impl: type[Connection]) -> None:
    events = parse(impl, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert events[0].content_length == 0 and not events[0].has_body
    assert events[1:] == [END_OF_MESSAGE, PAUSED]


CHUNKED = (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n1;name=value;flag\r\n \r\nA\r\n0123456789\r\n"
           b"0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n")


def test_chunked_body_split_anywhere(impl: type[Connection]) -> None:
    for cut in range(1, len(CHUNKED)):
        conn = impl(Limits())
        events = feed(conn, CHUNKED[:cut], CHUNKED[cut:])
        assert events[0].chunked and events[0].content_length is None
        assert body_of(events) == b"hello 0123456789"
        assert events[-2:] == [END_OF_MESSAGE, PAUSED]


def test_chunked_byte_by_byte(impl: type[Connection]) -> None:
    conn = impl(Limits())
    events = feed(conn, *(CHUNKED[i : i + 1] for i in range(len(CHUNKED))))
    assert body_of(events) == b"hello 0123456789"
    assert events[-2:] == [END_OF_MESSAGE, PAUSED]


def test_chunk_data_is_delivered_before_the_chunk_completes(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n")
    assert feed(conn, b"10\r\nabc")[0].data == b"abc"


def test_pipelined_requests_wait_for_start_next_cycle(impl: type[Connection]) -> None:
    second = b"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz"
    conn = impl(Limits())
    events = feed(conn, b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n" + second + b"GET /c HTT")
    assert [type(e) for e in events] == [H1Request, EndOfMessage, type(PAUSED)]
    assert conn.next_event() is PAUSED
    assert conn.trailing_data == second + b"GET /c HTT"
    respond(conn)
    conn.start_next_cycle()
    events = drain(conn)
    assert events[0].target == b"/b" and body_of(events) == b"xyz"
    respond(conn)
    conn.start_next_cycle()
    assert feed(conn, b"P/1.1\r\nHost: a\r\n\r\n")[0].target == b"/c"


def test_many_pipelined_requests_in_small_pieces(impl: type[Connection]) -> None:
    raw = b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(20))
    conn = impl(Limits())
    targets = []
    for start in range(0, len(raw), 7):
        conn.receive_data(raw[start : start + 7])
        while (event := conn.next_event()) is not NEED_DATA:
            if event is PAUSED:
                respond(conn)
                conn.start_next_cycle()
            elif isinstance(event, H1Request):
                targets.append(event.target)
    assert targets == [b"/%d" % i for i in range(20)]


def test_http10_request(impl: type[Connection]) -> None:
    conn = impl(Limits())
    request = request_for(conn, b"GET / HTTP/1.0\r\n\r\n")
    assert request.http_version == "1.0" and not request.keep_alive
    respond(conn)
    assert not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close", b"upgrade,CLOSE"])
def test_connection_close(impl: type[Connection], value: bytes) -> None:
    conn = impl(Limits())
    request = request_for(conn, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: " + value + b"\r\n\r\n")
    assert not request.keep_alive
    response = respond(conn)
    assert (b"connection", b"close") in [(n, v.lower()) for n, v in head_fields(response)]
    assert not conn.keep_alive
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()


def test_expect_100_continue(impl: type[Connection]) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n"
    assert parse(impl, raw)[0].expect_continue
    raw10 = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    assert not parse(impl, raw10)[0].expect_continue  # RFC 9110 §10.1.1
    assert HTTP_100_CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_eof_at_message_boundary(impl: type[Connection]) -> None:
    conn = impl(Limits())
    assert feed(conn, b"") == [CONNECTION_CLOSED]
    assert conn.next_event() is CONNECTION_CLOSED
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    respond(conn)
    conn.start_next_cycle()
    assert feed(conn, b"") == [CONNECTION_CLOSED]


@pytest.mark.parametrize(
    "raw",
    [b"GET / HT", b"GET / HTTP/1.1\r\nHost: a\r\n", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc",
     b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"],
)
def test_eof_inside_a_request_is_an_error(impl: type[Connection], raw: bytes) -> None:
    assert reject(impl, raw, eof=True).status_code == 400


# Rejected by both parsers: (request, our status, h11's status).
REJECTED_BY_BOTH = [
    (b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nNo-Colon\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\nx", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789012345678901\r\n\r\n", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501, 501),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, 505),
    (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, 505),
    (b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400, 400),
    (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, 400),
    (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, 400),
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    (b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    (b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, 400),  # TLS ClientHello
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n", 400, 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nBad Trailer: 1\r\n\r\n", 400, 400),
]


@pytest.mark.parametrize(("raw", "ours", "h11"), REJECTED_BY_BOTH)
def test_rejected_by_both(impl: type[Connection], raw: bytes, ours: int, h11: int) -> None:
    expected = ours if impl is HTTP11Connection else h11
    assert reject(impl, raw).status_code == expected


def test_request_line_limit(impl: type[Connection]) -> None:
    limits = Limits(max_request_line=40)
    line = b"GET /" + b"a" * 26 + b" HTTP/1.1"  # 40 bytes: allowed
    assert isinstance(parse(impl, line + b"\r\nHost: a\r\n\r\n", limits)[0], H1Request)
    error = reject(impl, b"GET /" + b"a" * 27 + b" HTTP/1.1\r\nHost: a\r\n\r\n", limits=limits)
    assert error.status_code == 414 and isinstance(error, RequestLineTooLong)


def test_header_count_limit(impl: type[Connection]) -> None:
    limits = Limits(max_headers=3)
    ok = b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"
    assert isinstance(parse(impl, ok, limits)[0], H1Request)
    error = reject(impl, b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits=limits)
    assert isinstance(error, HeaderTooLarge) and error.status_code == 431


def test_header_bytes_limit_on_a_complete_head(impl: type[Connection]) -> None:
    limits = Limits(max_header_bytes=64)
    ok = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * 50 + b"\r\n\r\n"  # 9 + 55 = 64 bytes
    assert isinstance(parse(impl, ok, limits)[0], H1Request)
    error = reject(impl, ok.replace(b"X: v", b"X: vv"), limits=limits)
    assert error.status_code == 431


def test_header_bytes_limit_before_the_head_completes(impl: type[Connection]) -> None:
    limits = Limits(max_request_line=100, max_header_bytes=1000)
    conn = impl(limits)
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\nX: ")
    with pytest.raises(ProtocolError) as info:
        for _ in range(200):
            feed(conn, b"v" * 10)
    assert info.value.status_code == 431


def test_body_limit_content_length(impl: type[Connection]) -> None:
    limits = Limits(max_body_size=10)
    ok = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
    assert body_of(parse(impl, ok, limits)) == b"0123456789"
    error = reject(impl, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", limits=limits)
    assert isinstance(error, BodyTooLarge) and error.status_code == 413


def test_body_limit_chunked(impl: type[Connection]) -> None:
    limits = Limits(max_body_size=10)
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert body_of(parse(impl, head + b"5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n", limits)) == b"0123456789"
    error = reject(impl, head + b"5\r\n01234\r\n6\r\n567890\r\n0\r\n\r\n", limits=limits)
    assert error.status_code == 413


# --- responses: shared behaviour -------------------------------------------------------


def test_response_with_content_length(impl: type[Connection]) -> None:
    conn = impl(Limits(), server_header=b"ftserver")
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"Content-Type", b"text/plain"), (b"content-length", b"5")], DATE)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    assert sorted(head_fields(head)) == sorted([
        (b"content-type", b"text/plain"), (b"content-length", b"5"), (b"date", DATE), (b"server", b"ftserver"),
    ])
    assert conn.send_data(b"hel") == b"hel"
    assert conn.send_data(b"lo") == b"lo"
    assert conn.send_end() == b""
    assert conn.keep_alive
    conn.start_next_cycle()


@pytest.mark.parametrize(
    ("raw", "status", "headers", "body"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [(b"content-type", b"text/plain")], b"hello"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [], b""),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [(b"Content-Length", b"5")], b"hello"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [(b"Content-Length", b"9")], b"hello"),  # short: close
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [(b"transfer-encoding", b"chunked")], b"hello"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [(b"transfer-encoding", b"chunked")], b""),
        (b"GET / HTTP/1.0\r\n\r\n", 200, [(b"transfer-encoding", b"chunked")], b"hello"),  # close-delimited
        (b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 200, [], b"hello"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 204, [], b""),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 200, [], b"hello"),
    ],
)
def test_send_complete_is_head_data_and_end_in_one(
    impl: type[Connection], raw: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    one, three = impl(Limits()), impl(Limits())
    feed(one, raw)
    feed(three, raw)
    expected = three.send_response(status, headers, DATE, len(body)) + three.send_data(body) + three.send_end()
    assert one.send_complete(status, headers, DATE, body) == expected
    assert one.keep_alive == three.keep_alive
    if one.keep_alive:
        one.start_next_cycle()


def test_send_complete_with_a_body_longer_than_its_content_length(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        conn.send_complete(200, [(b"content-length", b"2")], DATE, b"hello")
    assert conn.response_started  # the head was accepted: the caller can only close now
    bad = impl(Limits())
    feed(bad, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        bad.send_complete(200, [(b"bad name", b"x")], DATE, b"hello")
    assert not bad.response_started  # nothing accepted: a 500 can still be sent
    assert bad.send_complete(500, [], DATE, b"oops").startswith(b"HTTP/1.1 500 ")


def test_response_reason_phrases(impl: type[Connection]) -> None:
    for status, line in [(404, b"HTTP/1.1 404 Not Found\r\n"), (299, b"HTTP/1.1 299 Unknown\r\n"),
                         (999, b"HTTP/1.1 999 Unknown\r\n")]:
        conn = impl(Limits())
        feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert conn.send_response(status, [(b"content-length", b"0")], None).startswith(line)


@pytest.mark.parametrize(
    "reason",
    [b"Fine", b"", b"Nowhere To Be Found", b"tab\tand  spaces", b"Caf\xe9 obs-text", b"~!\"#%()*"],
)
def test_an_application_reason_phrase_is_sent_as_given(impl: type[Connection], reason: bytes) -> None:
    head = impl(Limits())
    feed(head, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert head.send_response(404, [(b"content-length", b"0")], None, None, reason).startswith(
        b"HTTP/1.1 404 " + reason + b"\r\ncontent-length: 0\r\n"
    )
    complete = impl(Limits())
    feed(complete, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    response = complete.send_complete(200, [], None, b"hello", reason)
    assert response.startswith(b"HTTP/1.1 200 " + reason + b"\r\ncontent-length: 5\r\n")
    assert response.endswith(b"\r\n\r\nhello")
    complete.start_next_cycle()


@pytest.mark.parametrize(
    "reason", [b"OK\r\nSet-Cookie: evil=1", b"a\nb", b"a\rb", b"a\x00b", b"bell\x07", b"del\x7f", b"esc\x1b[1m"]
)
def test_a_reason_phrase_with_control_characters_is_refused(impl: type[Connection], reason: bytes) -> None:
    for send in ("send_response", "send_complete"):
        conn = impl(Limits())
        feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        with pytest.raises(LocalProtocolError, match="RFC 9112 §4"):
            if send == "send_response":
                conn.send_response(200, [], None, None, reason)
            else:
                conn.send_complete(200, [], None, b"body", reason)
        assert not conn.response_started  # nothing accepted: a 500 can still be sent
        assert conn.send_complete(500, [], None, b"oops").startswith(b"HTTP/1.1 500 Internal Server Error\r\n")


def test_app_date_and_server_are_kept(impl: type[Connection]) -> None:
    conn = impl(Limits(), server_header=b"ftserver")
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"Date", b"yesterday"), (b"Server", b"app"), (b"content-length", b"0")], DATE)
    fields = head_fields(head)
    assert [v for n, v in fields if n == b"date"] == [b"yesterday"]
    assert [v for n, v in fields if n == b"server"] == [b"app"]


def test_chunked_response(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"content-type", b"text/plain")], None)
    assert (b"transfer-encoding", b"chunked") in head_fields(head)
    assert conn.send_data(b"hello") == b"5\r\nhello\r\n"
    assert conn.send_data(b"") == b""
    assert conn.send_data(b"x" * 300) == b"12c\r\n" + b"x" * 300 + b"\r\n"
    assert conn.send_end() == b"0\r\n\r\n"
    assert conn.keep_alive


def test_more_than_content_length_is_refused(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.send_response(200, [(b"content-length", b"3")], None)
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"toolong")


def test_less_than_content_length_closes(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.send_response(200, [(b"content-length", b"10")], None)
    conn.send_data(b"short")
    assert conn.send_end() == b""
    assert not conn.keep_alive


@pytest.mark.parametrize(
    ("method", "status"), [(b"HEAD", 200), (b"GET", 204), (b"GET", 304)]
)
def test_bodiless_responses(impl: type[Connection], method: bytes, status: int) -> None:
    conn = impl(Limits())
    feed(conn, method + b" / HTTP/1.1\r\nHost: a\r\n\r\n")
    headers = [(b"content-length", b"42")] if method == b"HEAD" else []
    head = conn.send_response(status, headers, None)
    fields = head_fields(head)
    if method == b"HEAD":
        assert (b"content-length", b"42") in fields  # what a GET would have had
    else:
        assert b"transfer-encoding" not in dict(fields)
    assert conn.send_data(b"ignored") == b""
    assert conn.send_end() == b""
    assert conn.keep_alive
    conn.start_next_cycle()


def test_http10_response_without_length_is_close_delimited(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.0\r\n\r\n")
    head = conn.send_response(200, [(b"content-type", b"text/plain")], None)
    fields = dict((n, v.lower()) for n, v in head_fields(head))
    assert b"transfer-encoding" not in fields and b"content-length" not in fields
    assert fields[b"connection"] == b"close"
    assert conn.send_data(b"raw body") == b"raw body"
    assert conn.send_end() == b""
    assert not conn.keep_alive


def test_app_connection_close(impl: type[Connection]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"connection", b"close"), (b"content-length", b"0")], None)
    assert [v for n, v in head_fields(head) if n == b"connection"] == [b"close"]
    conn.send_end()
    assert not conn.keep_alive


@pytest.mark.parametrize(
    "header",
    [(b"X-Split", b"a\r\nSet-Cookie: evil=1"), (b"X-Lf", b"a\nb"), (b"X-Cr", b"a\rb"), (b"X-Nul", b"a\x00b"),
     (b"Bad Name", b"v"), (b"Bad:Name", b"v"), (b"", b"v"), (b"X\r\nY", b"v")],
)
def test_invalid_response_headers_are_refused(impl: type[Connection], header: tuple[bytes, bytes]) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [header], None)


@pytest.mark.parametrize("status", [100, 101, 199, 1000, -1])
def test_status_out_of_range_is_refused(impl: type[Connection], status: int) -> None:
    conn = impl(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        conn.send_response(status, [], None)


def test_send_order_is_enforced(impl: type[Connection]) -> None:
    conn = impl(Limits())
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [], None)  # no request yet
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"x")  # no response head yet
    conn.send_response(200, [(b"content-length", b"0")], None)
    with pytest.raises(LocalProtocolError):
        conn.send_response(200, [], None)  # twice
    conn.send_end()
    with pytest.raises(LocalProtocolError):
        conn.send_end()  # twice
    with pytest.raises(LocalProtocolError):
        conn.start_next_cycle()  # request body not read


def test_error_response(impl: type[Connection]) -> None:
    conn = impl(Limits(), server_header=b"ftserver")
    error = reject_keep(conn, b"GET / HTTP/1.1\r\n\r\n")
    response = conn.error_response(error, DATE)
    head, body = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    fields = dict(head_fields(response))
    assert fields[b"connection"] == b"close"
    assert fields[b"content-type"] == b"text/plain; charset=utf-8"
    assert fields[b"content-length"] == b"%d" % len(body)
    assert fields[b"date"] == DATE and fields[b"server"] == b"ftserver"
    assert str(error).encode() in body
    assert not conn.keep_alive


# --- ours only: stricter than h11, or different on purpose --------------------------------


def ours(raw: bytes, limits: Limits | None = None) -> list[Any]:
    return parse(HTTP11Connection, raw, limits)


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (b"GET / HTTP/1.1\nHost: a\n\n", BadRequest, "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", BadRequest, "bare CR or LF"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n  z\r\n\r\n", BadRequest, "obs-fold"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", BadRequest, "control character"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n", BadRequest, "control character"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX: a \x00\r\n\r\n", BadRequest, "NUL"),
        (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", BadRequest, "whitespace between field name and colon"),
        (b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", BadRequest, "empty field name"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX(Y): b\r\n\r\n", BadRequest, "field name is not a token"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", BadRequest,
         "more than one Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\nx", BadRequest, "1*DIGIT"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456789\r\n\r\n", BadRequest,
         "longer than 18 digits"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         BadRequest, "Content-Length and Transfer-Encoding both present"),
        (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", BadRequest,
         "Transfer-Encoding in an HTTP/1.0 request"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", BadRequest,
         "chunked is not the final transfer coding"),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", UnsupportedTransferCoding,
         "only a single chunked"),
        (b"GET / HTTP/3.0\r\nHost: a\r\n\r\n", UnsupportedVersion, "HTTP version not supported"),
        (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest, "asterisk-form"),
        (b"GET relative HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest, "origin-form or absolute-form"),
        (b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest, "authority-form"),
        (b"CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest, "authority-form"),
        (b"\r\n" * 9 + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", BadRequest, "empty lines"),
    ],
)
def test_ours_rejects_with_the_rule_named(raw: bytes, error: type[ProtocolError], message: str) -> None:
    exc = reject(HTTP11Connection, raw)
    assert type(exc) is error
    assert message in str(exc)


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (b"00000000000000001\r\nx\r\n0\r\n\r\n", "longer than 16 hex digits"),
        (b"1 \r\nx\r\n0\r\n\r\n", "invalid chunk-size line"),
        (b"1;a\x00\r\nx\r\n0\r\n\r\n", "invalid chunk-size line"),
        (b"-1\r\n", "invalid chunk-size line"),
        (b"1\r\nxy", "not followed by CRLF"),
        (b"1\r\nx\r\n0\r\nX: a\x01\r\n\r\n", "control character in a field value in the trailer section"),
        (b"1\r\nx\r\n0\r\nX: a\nY: b\r\n", "bare CR or LF in the trailer section"),
        (b"1;" + b"e" * 5000, "chunk-size line longer than"),
        (b"1\r\nx\r\n0\r\nContent-Length: +3\r\n\r\n", "Content-Length in the trailer section"),
        (b"1\r\nx\r\n0\r\nX: y\r\ntransfer-encoding: chunked\r\n\r\n", "transfer-encoding in the trailer section"),
    ],
)
def test_ours_rejects_bad_chunks(chunks: bytes, message: str) -> None:
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    exc = reject(HTTP11Connection, head + chunks)
    assert exc.status_code == 400 and message in str(exc)


def test_ours_ignores_a_few_empty_lines_before_a_request() -> None:
    # RFC 9112 §2.2; h11 rejects these (test_h11_rejects_empty_lines_before_a_request).
    raw = b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert ours(raw)[0].target == b"/"
    conn = HTTP11Connection(Limits())
    events = feed(conn, *(raw[i : i + 1] for i in range(len(raw))))
    assert events[0].target == b"/"
    # The extra CRLF some clients send after a POST body.
    conn = HTTP11Connection(Limits())
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\n")
    respond(conn)
    conn.start_next_cycle()
    assert feed(conn, b"") == [CONNECTION_CLOSED]


def test_h11_rejects_empty_lines_before_a_request() -> None:
    assert reject(H11Connection, b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").status_code == 400


def test_ours_fails_fast_on_a_partial_head() -> None:
    conn = HTTP11Connection(Limits(max_request_line=50, max_headers=2, max_header_bytes=100))
    with pytest.raises(RequestLineTooLong):
        feed(conn, b"GET /" + b"a" * 60)  # no CRLF yet
    conn = HTTP11Connection(Limits(max_headers=2))
    with pytest.raises(HeaderTooLarge):
        feed(conn, b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n", b"C: 3\r\n")  # no empty line yet
    conn = HTTP11Connection(Limits())
    with pytest.raises(BadRequest, match="bare CR or LF"):
        feed(conn, b"GET / HTTP/1.1\r", b"\nHost: a\n")


def test_ours_partial_head_limits_are_exact() -> None:
    # The same request must be accepted however it is cut when it sits at the limits.
    limits = Limits(max_request_line=16, max_header_bytes=20, max_headers=2)
    raw = b"GET /0123 HTTP/1.1\r\nHost: a\r\nX: 0123456\r\n\r\n"  # 18 > 16
    assert reject(HTTP11Connection, raw, limits=limits).status_code == 414
    raw = b"GET /01 HTTP/1.1\r\nHost: a\r\nX: 01234567\r\n\r\n"  # line 16, section 9 + 13 = 22 > 20
    assert reject(HTTP11Connection, raw, limits=limits).status_code == 431
    raw = b"GET /01 HTTP/1.1\r\nHost: a\r\nX: 012345\r\n\r\n"  # section 20: at every limit
    for cut in range(1, len(raw)):
        for pieces in ([raw[:cut], raw[cut:]], [raw[i : i + 1] for i in range(len(raw))]):
            conn = HTTP11Connection(limits)
            assert isinstance(feed(conn, *pieces)[0], H1Request)


def test_ours_trailers_count_toward_header_limits() -> None:
    limits = Limits(max_headers=3, max_header_bytes=200)
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    assert ours(head + b"T: 1\r\n\r\n", limits)[-2] is END_OF_MESSAGE
    assert reject(HTTP11Connection, head + b"T: 1\r\nU: 2\r\n\r\n", limits=limits).status_code == 431
    conn = HTTP11Connection(limits)
    with pytest.raises(HeaderTooLarge):
        feed(conn, head, b"T: 1\r\n", b"U: 2\r\n")  # before the trailer section ends
    conn = HTTP11Connection(Limits(max_header_bytes=60))
    with pytest.raises(HeaderTooLarge):
        feed(conn, head, b"T: " + b"x" * 40)


def test_ours_http10_keep_alive() -> None:
    # h11 never keeps HTTP/1.0 connections alive; we do when the client asks.
    conn = HTTP11Connection(Limits())
    request = request_for(conn, b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert request.keep_alive
    head = conn.send_response(200, [(b"content-length", b"2")], None)
    assert (b"connection", b"keep-alive") in head_fields(head)
    conn.send_data(b"ok")
    conn.send_end()
    assert conn.keep_alive
    conn.start_next_cycle()
    # Without Content-Length the body is close-delimited, which ends keep-alive.
    request_for(conn, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    head = conn.send_response(200, [], None)
    assert (b"connection", b"close") in head_fields(head)
    assert not conn.keep_alive


def test_ours_response_head_is_exact() -> None:
    conn = HTTP11Connection(Limits(), server_header=b"ftserver")
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"content-type", b"text/plain"), (b"content-length", b"13")], DATE)
    assert head == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n"
                    b"date: " + DATE + b"\r\nserver: ftserver\r\n\r\n")


def test_ours_app_transfer_encoding() -> None:
    conn = HTTP11Connection(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"Transfer-Encoding", b"chunked")], None)
    assert [n for n, _ in head_fields(head)].count(b"transfer-encoding") == 1
    assert conn.send_data(b"abc") == b"3\r\nabc\r\n"
    # An HTTP/1.0 client cannot decode chunked: the field is dropped, the body is
    # delimited by closing the connection.
    conn = HTTP11Connection(Limits())
    feed(conn, b"GET / HTTP/1.0\r\n\r\n")
    head = conn.send_response(200, [(b"Transfer-Encoding", b"chunked"), (b"x", b"y")], None)
    assert head_fields(head) == [(b"x", b"y"), (b"connection", b"close")]
    assert conn.send_data(b"abc") == b"abc"
    for headers in ([(b"transfer-encoding", b"gzip")],
                    [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")],
                    [(b"content-length", b"1"), (b"content-length", b"1")],
                    [(b"content-length", b"-1")]):
        conn = HTTP11Connection(Limits())
        feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        with pytest.raises(LocalProtocolError):
            conn.send_response(200, headers, None)


def test_ours_head_and_304_keep_app_headers_as_given() -> None:
    conn = HTTP11Connection(Limits())
    feed(conn, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    head = conn.send_response(200, [(b"content-type", b"text/html")], None)
    assert head_fields(head) == [(b"content-type", b"text/html")]  # no transfer-encoding


def test_ours_receive_after_eof_is_a_driver_bug() -> None:
    conn = HTTP11Connection(Limits())
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"GET")


def test_ours_error_response_after_a_started_response_is_refused() -> None:
    conn = HTTP11Connection(Limits())
    feed(conn, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    conn.send_response(200, [], None)
    with pytest.raises(LocalProtocolError):
        conn.error_response(BadRequest("late"), None)


def test_ours_body_bytes_are_not_copied_when_a_read_holds_only_body() -> None:
    conn = HTTP11Connection(Limits())
    feed(conn, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n")
    piece = b"0123456789"
    conn.receive_data(piece)
    assert conn.next_event().data is piece


def test_ours_server_header_is_validated() -> None:
    with pytest.raises(ValueError):
        HTTP11Connection(Limits(), server_header=b"bad\r\nX: y")


def test_ours_unlimited_limits() -> None:
    limits = Limits(max_request_line=None, max_header_bytes=None, max_headers=None, max_body_size=None)
    raw = (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 500 + b"\r\n")
    assert len(ours(raw, limits)[0].headers) == 501
