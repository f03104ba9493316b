"""``HTTP11Connection.receive_request`` (the one-read fast path) against the full parser.

For any bytes, the fast path either declines (returns ``None`` and consumes nothing), or
gives exactly the ``H1Request`` that ``receive_data`` + ``next_event`` give for the same
bytes, leaves the connection in the same state (the next events, the response bytes,
``keep_alive``), and never accepts what the full parser rejects.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ftserver.protocols.errors import ProtocolError
from ftserver.protocols.events import END_OF_MESSAGE, NEED_DATA, PAUSED, Data
from ftserver.protocols.http1 import H1Request, HTTP11Connection
from ftserver.protocols.limits import Limits

from .test_differential import SETTINGS, SNIPPETS, mutate, mutation, requests

DATE = b"Tue, 24 Nov 2026 10:00:00 GMT"
HEADERS = [(b"content-type", b"text/plain")]


def fields(request: H1Request) -> tuple[object, ...]:
    return (
        request.stream_id, request.method, request.target, request.authority, request.scheme,
        request.http_version, request.headers, request.keep_alive, request.expect_continue,
        request.content_length, request.chunked, request.has_body,
    )  # fmt: skip


def comparable(event: object) -> object:
    return ("data", event.data) if isinstance(event, Data) else event


def full_parse(conn: HTTP11Connection, data: bytes) -> tuple[H1Request | None, list[object]]:
    """The usual way: the request (or None after an error) and the events that follow."""
    conn.receive_data(data)
    try:
        event = conn.next_event()
        if not isinstance(event, H1Request):
            return None, [event]
        return event, [comparable(conn.next_event()), comparable(conn.next_event())]
    except ProtocolError as exc:
        return None, [exc.status_code]


def check(data: bytes, limits: Limits = Limits()) -> H1Request | None:
    fast = HTTP11Connection(limits, b"ftserver")
    slow = HTTP11Connection(limits, b"ftserver")
    request = fast.receive_request(data)
    expected, after = full_parse(slow, data)
    if request is None:
        # Declined: nothing consumed, the usual way still works on the same bytes.
        again, after_again = full_parse(fast, data)
        assert (again and fields(again)) == (expected and fields(expected))
        assert after_again == after
        return None
    assert expected is not None, f"fast path accepted what the parser rejects: {data!r} ({after})"
    assert fields(request) == fields(expected)
    assert after == [END_OF_MESSAGE, PAUSED]
    assert fast.next_event() is PAUSED
    assert fast.keep_alive == slow.keep_alive
    body = b"hello"
    assert fast.send_complete(200, HEADERS, DATE, body) == slow.send_complete(200, HEADERS, DATE, body)
    assert fast.keep_alive == slow.keep_alive
    if fast.keep_alive:
        fast.start_next_cycle()
        assert fast.next_event() is NEED_DATA
    return request


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8000\r\nUser-Agent: curl/7.88\r\nAccept: */*\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nhost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nX-Trailing-Space: v \t\r\n\r\n",
        b"DELETE /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nX-Empty:\r\n\r\n",
    ],
)
def test_usual_requests_take_the_fast_path(data: bytes) -> None:
    assert check(data) is not None


def test_authority_is_the_host_field() -> None:
    request = check(b"GET / HTTP/1.1\r\nAccept: */*\r\nhOST:  Example.com:8000 \t\r\nX: y\r\n\r\n")
    assert request is not None and request.authority == b"Example.com:8000"


def test_repeated_heads_on_one_connection() -> None:
    """A connection keeps the last head the fast path parsed: the same bytes again give the
    full parser's request again, with a headers list of its own each time."""
    get = b"GET /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n"
    heads = [
        get, get, bytes(get),  # the same bytes, the same object or not
        b"HEAD /a HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", get,
        b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    conn = HTTP11Connection(Limits(), b"ftserver")
    for head in heads:
        request = conn.receive_request(head)
        slow = HTTP11Connection(Limits(), b"ftserver")
        expected, _ = full_parse(slow, head)
        assert request is not None and expected is not None
        assert fields(request) == fields(expected)
        request.headers.append((b"x-added", b"by the app"))  # must not reach the next request
        assert conn.send_complete(200, HEADERS, DATE, b"hello") == slow.send_complete(200, HEADERS, DATE, b"hello")
        if conn.next_cycle() < 0:
            conn = HTTP11Connection(Limits(), b"ftserver")
    # Not taken while a request is in progress, even for the same bytes.
    assert conn.receive_request(get) is not None
    assert conn.receive_request(get) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",  # HTTP/1.0
        b"GET / HTTP/1.1\r\n\r\n",  # no Host: 400 from the parser
        b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",  # two Hosts: 400
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",  # framing
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute-form
        b"CONNECT /x HTTP/1.1\r\nHost: x\r\n\r\n",  # CONNECT needs authority-form: 400
        b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",  # empty line first
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",  # pipelined
        b"GET / HTTP/1.1\r\nHost: x\r\n",  # incomplete
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # space before the colon: 400
        b"GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",  # obs-fold: 400
        b"GET / HTTP/1.1\r\nHost: x\nX: y\r\n\r\n",  # bare LF: 400
        b"GET / HTTP/1.1\r\nHost: \x00\r\n\r\n",  # NUL: 400
    ],
)
def test_other_requests_are_left_to_the_parser(data: bytes) -> None:
    assert check(data) is None


def test_limits_are_the_parsers() -> None:
    data = b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 10 + b"\r\n"
    assert check(data, Limits(max_request_line=50)) is None  # 414 from the parser
    assert check(data, Limits(max_header_bytes=40)) is None  # 431
    assert check(data, Limits(max_headers=5)) is None  # 431
    assert check(data, Limits(max_headers=11)) is not None


def test_declined_when_something_is_buffered() -> None:
    conn = HTTP11Connection(Limits())
    conn.receive_data(b"GET / HTTP/1.1\r\n")
    assert conn.receive_request(b"Host: x\r\n\r\n") is None
    conn.receive_data(b"Host: x\r\n\r\n")
    assert isinstance(conn.next_event(), H1Request)


@SETTINGS
@given(requests())
def test_generated_requests(generated: object) -> None:
    check(generated.raw)  # type: ignore[attr-defined]


@SETTINGS
@given(requests(), st.lists(mutation, min_size=1, max_size=3))
def test_mutated_requests(generated: object, edits: list[tuple[str, int, bytes]]) -> None:
    check(mutate(generated.raw, edits))  # type: ignore[attr-defined]


@SETTINGS
@given(st.lists(st.sampled_from(SNIPPETS), max_size=6))
def test_snippet_heads(snippets: list[bytes]) -> None:
    check(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(snippets) + b"\r\n")
