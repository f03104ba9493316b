"""The writer's one-piece response (``ResponseWriter.send_complete`` for plain fields)
against the field-by-field path it skips.

For any status, fields, body, request method and version, the one-piece path either
declines (and the field-by-field path answers, errors included), or gives the very bytes
and connection state the field-by-field path gives. Checked on the protocol object with
generated fields, and end to end: a real server and a raw socket, the same matrix of
responses served with the one-piece path and without it, byte for byte.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftserver.protocols.errors import LocalProtocolError
from ftserver.protocols.http1 import HTTP11Connection, ResponseWriter
from ftserver.protocols.limits import Limits
from ftserver.testing import serve

DATE = b"Tue, 24 Nov 2026 10:00:00 GMT"


def generic_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the one-piece path off: every response goes field by field."""
    monkeypatch.setattr(ResponseWriter, "send_complete", ResponseWriter.complete_by_fields)


class Connection(HTTP11Connection):
    """Notes whether ``send_complete`` declined to the field-by-field path."""

    __slots__ = ("declined",)

    def complete_by_fields(self, *args: Any) -> bytes:
        self.declined = True
        return super().complete_by_fields(*args)


def ready(request: bytes) -> Connection:
    conn = Connection(Limits(), b"ftserver")
    conn.declined = False
    conn.receive_data(request)
    conn.next_event()  # the request
    conn.next_event()  # its end
    return conn


def outcome(conn: HTTP11Connection, send: Any, status: int, headers: Any, body: bytes) -> tuple[Any, ...]:
    try:
        data: Any = send(conn, status, headers, DATE, body)
    except (LocalProtocolError, TypeError, ValueError, AttributeError) as exc:
        data = (type(exc), str(exc))
    return data, conn.keep_alive, conn.response_started


def both(request: bytes, status: int, headers: Any, body: bytes) -> tuple[tuple[Any, ...], tuple[Any, ...], bool]:
    """(one-piece outcome, field-by-field outcome, whether the one-piece path answered)."""
    fast = ready(request)
    one_piece = outcome(fast, ResponseWriter.send_complete, status, headers, body)
    field_by_field = outcome(ready(request), ResponseWriter.complete_by_fields, status, headers, body)
    return one_piece, field_by_field, not fast.declined


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
REQUESTS = [
    GET,
    b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
]


def test_hello_is_one_piece() -> None:
    conn = ready(GET)
    data = conn.send_complete(200, [(b"content-type", b"text/plain")], DATE, b"Hello, world!")
    assert not conn.declined
    assert data == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n"
        b"date: " + DATE + b"\r\nserver: ftserver\r\n\r\nHello, world!"
    )
    assert conn.keep_alive and conn.response_started
    assert conn.next_cycle() == 0


# (status, headers, body, whether the one-piece path takes it)
CASES = [
    (200, [(b"content-type", b"text/plain")], b"hello", True),
    (200, [], b"", True),
    (200, [(b"content-length", b"5")], b"hello", True),
    (200, [(b"Content-Length", b"5"), (b"x", b"y")], b"hello", True),
    (200, [(b"x", b"y"), (b"CONTENT-LENGTH", b"0")], b"", True),
    (201, [(b"content-length", b"9")], b"hello", False),  # declared more: the connection closes
    (200, [(b"content-length", b"3")], b"hello", False),  # declared less: an error
    (200, [(b"content-length", b" 5\t")], b"hello", False),  # OWS: the generic path strips it
    (200, [(b"content-length", b"5"), (b"content-length", b"5")], b"hello", False),
    (200, [(b"content-length", b"x")], b"hello", False),
    (200, [(b"transfer-encoding", b"chunked")], b"hello", False),
    (200, [(b"Transfer-Encoding", b"chunked")], b"", False),
    (200, [(b"connection", b"close")], b"hello", False),
    (200, [(b"connection", b"keep-alive")], b"hello", False),
    (200, [(b"date", b"yesterday")], b"hello", False),
    (200, [(b"Server", b"other")], b"hello", False),
    (204, [], b"", True),
    (204, [(b"content-length", b"7")], b"", True),
    (304, [(b"etag", b'"abc"'), (b"content-length", b"100")], b"", True),
    (304, [(b"content-length", b"100"), (b"content-length", b"1")], b"", False),
    (599, [(b"x-odd", b"a:b")], b"body", True),
    (999, [], b"x", True),
    (200, [(b"x-tchars!#$%&'*+.^_`|~", b"\t v\x01\x7f\x80\xff:x:\t")], b"hello", True),
    (200, [(b"x-colon-space", b"a: b")], b"hello", False),  # declined, still served
    (200, [(b"location", b"http://example.com:80/a?b=c")], b"", True),
    (200, [(b"x-empty", b"")], b"hello", True),
    (200, [(b"content-lengthx", b"1"), (b"dates", b"d"), (b"x-server", b"s")], b"hello", True),
    # invalid: refused the same way
    (200, [(b"x", b"a\r\nset-cookie: evil")], b"hello", False),
    (200, [(b"x", b"a\nb")], b"hello", False),
    (200, [(b"x", b"a\rb")], b"hello", False),
    (200, [(b"x", b"a\x00b")], b"hello", False),
    (200, [(b"x", b"b\r")], b"hello", False),
    (200, [(b"bad name", b"v")], b"hello", False),
    (200, [(b"bad:name", b"v")], b"hello", False),
    (200, [(b"a: b", b"c")], b"hello", False),
    (200, [(b"a: b\r\nc", b"d")], b"hello", False),
    (200, [(b"a\r", b"d")], b"hello", False),
    (200, [(b"", b"v")], b"hello", False),
    (200, [("content-type", "text/plain")], b"hello", False),
    (200, [[b"content-type", b"text/plain"]], b"hello", False),
    (200, [(b"content-type", b"text/plain", b"extra")], b"hello", False),
    (100, [], b"", False),
    (1000, [], b"", False),
]


@pytest.mark.parametrize("request_bytes", REQUESTS)
@pytest.mark.parametrize(("status", "headers", "body", "plain"), CASES)
def test_matrix(request_bytes: bytes, status: int, headers: Any, body: bytes, plain: bool) -> None:
    fast, generic, taken = both(request_bytes, status, headers, body)
    assert fast == generic
    bodiless = request_bytes.startswith(b"HEAD") or status in (204, 304)
    # Without a body a Content-Length is sent as the application gave it, right or wrong.
    wrong_length = headers in ([(b"content-length", b"9")], [(b"content-length", b"3")])
    assert taken == (plain or (bodiless and wrong_length))


def test_state_after_one_piece() -> None:
    conn = ready(GET)
    conn.send_complete(200, [], DATE, b"x")
    with pytest.raises(LocalProtocolError):
        conn.send_data(b"y")
    with pytest.raises(LocalProtocolError):
        conn.send_complete(200, [], DATE, b"x")  # no second response to one request
    conn.receive_data(GET)
    assert conn.next_cycle() == len(GET)


def test_date_changes_are_followed() -> None:
    conn = ready(GET + GET + GET)
    first = conn.send_complete(200, [], DATE, b"")
    conn.next_cycle()
    conn.next_event(), conn.next_event()
    second = conn.send_complete(200, [], b"Tue, 24 Nov 2026 10:00:01 GMT", b"")
    conn.next_cycle()
    conn.next_event(), conn.next_event()
    third = conn.send_complete(200, [], None, b"")
    assert b"10:00:00" in first and b"10:00:01" in second and b"date:" not in third


_name = st.one_of(
    st.sampled_from([b"content-type", b"Content-Length", b"content-length", b"connection", b"date", b"server",
                     b"transfer-encoding", b"x", b"Set-Cookie", b"a: b", b"a:", b"", b"x y", b"x\r\ny"]),
    st.binary(max_size=6),
    st.text("abcx-:!~ \r\n\x00", max_size=6).map(str.encode),
)  # fmt: skip
_value = st.one_of(
    st.sampled_from([b"5", b"0", b"13", b" 5", b"chunked", b"close", b"keep-alive", b"a: b", b"a:b", b""]),
    st.binary(max_size=8),
    st.text("ab: \t\r\n\x00\x01\x80", max_size=8).map(lambda s: s.encode("latin-1")),
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    request_bytes=st.sampled_from(REQUESTS),
    status=st.sampled_from([200, 204, 304, 404, 599, 999, 1000, 99]),
    headers=st.lists(st.tuples(_name, _value), max_size=4),
    body=st.sampled_from([b"", b"hello", b"x" * 13]),
)
def test_generated_fields(request_bytes: bytes, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    fast, generic, _ = both(request_bytes, status, headers, body)
    assert fast == generic


def kept_lines_agree(responses: list[tuple[int, Any, bytes]], mutate: Any = None) -> None:
    """One connection answers ``responses`` in turn (``send_complete`` keeps the lines of
    fields it rendered before): each must be what a fresh connection's field-by-field path
    gives. ``mutate(index)`` runs before each response (to change fields in place)."""
    conn = ready(GET)
    for index, (status, headers, body) in enumerate(responses):
        if mutate is not None:
            mutate(index)
        expected = outcome(ready(GET), ResponseWriter.complete_by_fields, status, headers, body)
        assert outcome(conn, ResponseWriter.send_complete, status, headers, body) == expected
        if not conn.keep_alive or conn._response_state != 3:  # (the one cycle of an error)
            conn = ready(GET)
            continue
        conn.next_cycle()
        conn.receive_data(GET)
        conn.next_event(), conn.next_event()


def test_repeated_fields_reuse_their_lines() -> None:
    text = [(b"content-type", b"text/plain")]
    declared = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    kept_lines_agree([
        (200, text, b"hello"),
        (200, text, b"hello, world"),  # the same list: its lines again, another length
        (200, [(b"content-type", b"text/plain")], b""),  # an equal list
        (404, text, b"x"),
        (204, text, b""),
        (200, declared, b"hello"),
        (200, list(declared), b"hello"),
        (200, list(declared), b"hell"),  # the declared length no longer matches the body
        (200, [(b"x-a", b"1\r\nx-b: 2")], b""),  # an error, then fine fields again
        (200, text, b"hello"),
    ])  # fmt: skip


def test_fields_changed_in_place_are_rendered_again() -> None:
    reused = [(b"content-type", b"text/plain")]
    value = bytearray(b"one")
    with_bytearray = [(b"x-v", value)]

    def mutate(index: int) -> None:
        if index == 2:
            reused.append((b"x-more", b"1"))  # the app's own list, changed after it was sent
        if index == 4:
            value[:] = b"two"
        if index == 5:
            value[:] = b"a\r\nb"  # now unsafe: must be refused, not taken from before

    kept_lines_agree(
        [(200, reused, b"a"), (200, reused, b"a"), (200, reused, b"a"),
         (200, with_bytearray, b"a"), (200, with_bytearray, b"a"), (200, with_bytearray, b"a")],
        mutate,
    )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([200, 204, 404]),
            st.lists(st.sampled_from([(b"content-type", b"text/plain"), (b"content-length", b"5"),
                                      (b"x", b""), (b"Server", b"app"), (b"x", b"a\rb")]), max_size=3),
            st.sampled_from([b"", b"hello", b"x" * 13]),
        ),
        max_size=8,
    )
)  # fmt: skip
def test_generated_sequences(responses: list[tuple[int, Any, bytes]]) -> None:
    kept_lines_agree(responses)


# --- end to end: a real server, a raw socket -------------------------------------------

SENTINEL = b"end-of-case"


def case_app(cases: list[tuple[int, Any, bytes]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/sentinel":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"x-end", SENTINEL)]})
            await send({"type": "http.response.body", "body": SENTINEL})
            return
        status, headers, body = cases[int(scope["path"][1:])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def exchange(port: int, request: bytes) -> bytes:
    """Everything the server sends back for ``request`` followed by a pipelined sentinel
    request: up to the sentinel's response or the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request + b"GET /sentinel HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\n" + SENTINEL):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        return data


def serve_matrix(cases: list[tuple[int, Any, bytes]], requests: list[bytes]) -> list[bytes]:
    with serve(case_app(cases), date_header=False, lifespan="off") as server:
        return [exchange(server.port, request) for request in requests]


WIRE_REQUESTS = [
    b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD /%d HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /%d HTTP/1.0\r\n\r\n",
    b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
]
WIRE_CASES = [(status, headers, body) for status, headers, body, _ in CASES if 200 <= status <= 999]


def test_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    requests = [template % i for i in range(len(WIRE_CASES)) for template in WIRE_REQUESTS]
    one_piece = serve_matrix(WIRE_CASES, requests)
    generic_only(monkeypatch)
    field_by_field = serve_matrix(WIRE_CASES, requests)
    for request, fast, generic in zip(requests, one_piece, field_by_field):
        assert fast == generic, request
    hello = one_piece[0]
    assert hello == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nserver: ftserver\r\n\r\nhello"
        b"HTTP/1.1 200 OK\r\nx-end: end-of-case\r\ncontent-length: 11\r\nserver: ftserver\r\n\r\nend-of-case"
    )
    evil = next(i for i, case in enumerate(WIRE_CASES) if case[1] == [(b"x", b"a\r\nset-cookie: evil")])
    refused = one_piece[len(WIRE_REQUESTS) * evil]  # CR LF in a value: a 500, nothing of the value
    assert refused.startswith(b"HTTP/1.1 500 Internal Server Error\r\n") and b"evil" not in refused
