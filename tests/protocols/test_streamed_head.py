"""The writer's remembered head for responses sent before their body (``send_response``
without a body length: streaming, chunked): a head of the same status and fields again, for
a request in the same state, is the head ``_head`` makes, byte for byte, with the same
framing and keep-alive; any other request makes its own.

Each case serves a first request on a connection (which remembers its head), then a second
one with the same status and fields, and compares the second response's bytes (head, a body
piece, its end) and connection state with those of a connection that never saw the first.
"""

from __future__ import annotations

from typing import Any

import pytest

from ftserver.protocols.default_headers import DefaultHeaders
from ftserver.protocols.errors import LocalProtocolError
from ftserver.protocols.http1 import HTTP11Connection
from ftserver.protocols.limits import Limits

DATES = (b"Tue, 24 Nov 2026 10:00:00 GMT", b"Tue, 24 Nov 2026 10:00:01 GMT")

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
]

FIELDS = [
    [(b"content-type", b"application/octet-stream")],
    [],
    [(b"content-length", b"3")],
    [(b"Content-Length", b"6"), (b"x", b"y")],
    [(b"transfer-encoding", b"chunked")],
    [(b"connection", b"close")],
    [(b"connection", b"keep-alive")],
    [(b"date", b"yesterday")],
    [(b"server", b"other")],
    [(b"x-default", b"mine")],
    [(b"x", b"a\r\nevil: 1")],
    [(b"bad name", b"v")],
]
STATUSES = [200, 204, 304, 404]


def connection(defaults: bool) -> HTTP11Connection:
    return HTTP11Connection(Limits(), b"ftserver", DefaultHeaders([("x-default", "d")]) if defaults else None)


def serve(conn: HTTP11Connection, request: bytes, status: int, fields: Any, date: bytes) -> tuple[Any, ...]:
    """One request and its streamed response: what was written and the state after."""
    conn.receive_data(request)
    conn.next_event()
    conn.next_event()
    try:
        data = [conn.send_response(status, fields, date)]
        data += [conn.send_data(b"abc"), conn.send_end()]
    except LocalProtocolError as exc:
        return ("error", str(exc), conn.response_started)
    return (b"".join(data), conn.keep_alive)


@pytest.mark.parametrize("defaults", [False, True])
@pytest.mark.parametrize("second", REQUESTS)
@pytest.mark.parametrize("first", REQUESTS[:1] + REQUESTS[4:5])
def test_a_remembered_head_is_the_head_made_field_by_field(first: bytes, second: bytes, defaults: bool) -> None:
    for status in STATUSES:
        for fields in FIELDS:
            conn = connection(defaults)
            served = serve(conn, first, status, list(fields), DATES[0])
            if served[0] == "error" or not conn.keep_alive:
                continue
            assert conn.next_cycle() == 0
            again = serve(conn, second, status, list(fields), DATES[1])
            assert again == serve(connection(defaults), second, status, list(fields), DATES[1]), (status, fields)


class Counting(HTTP11Connection):
    """Counts the heads made field by field."""

    __slots__ = ("made",)

    def _head(self, *args: Any) -> Any:
        self.made += 1
        return super()._head(*args)


def test_the_usual_streamed_head_is_remembered() -> None:
    conn = Counting(Limits(), b"ftserver")
    conn.made = 0
    fields = [(b"content-type", b"application/octet-stream")]
    first = serve(conn, REQUESTS[0], 200, fields, DATES[0])
    conn.next_cycle()
    again = serve(conn, REQUESTS[0], 200, fields, DATES[1])
    assert conn.made == 1  # (the second from the remembered pieces)
    assert again == (first[0].replace(DATES[0], DATES[1]), True)
    assert b"transfer-encoding: chunked\r\n" in again[0]


def test_a_changed_field_list_makes_its_own_head() -> None:
    conn = connection(False)
    fields = [(b"content-type", b"text/plain")]
    serve(conn, REQUESTS[0], 200, fields, DATES[0])
    conn.next_cycle()
    fields[0] = (b"content-type", b"text/html")  # the app reuses and changes its list
    again = serve(conn, REQUESTS[0], 200, fields, DATES[0])
    assert b"content-type: text/html\r\n" in again[0]
    assert b"text/plain" not in again[0]
