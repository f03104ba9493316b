"""Request bodies from hostile clients (issue 13, items 3 and 4), through real sockets: a
body that stalls meets the driver's body timeout (--timeout-io) whatever the interface,
and a body of many tiny chunks neither holds the loop nor passes the chunk-framing limit."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from ftserver.interfaces.rsgi import RSGIProtocolClosed
from ftserver.testing import serve
from ftserver.threads.http1 import EVENTS_PER_PASS

HTTP1 = ["fast", "h11"]
STALLED = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"


@pytest.fixture(params=HTTP1)
def http1(request):
    return request.param


def _assert_closed(client) -> None:
    """The server closes the connection (an EOF, not a read timeout)."""
    assert not client.buf
    client.sock.settimeout(10)
    assert client.sock.recv(1) == b""


def _reader(seen: list[str], done: threading.Event):
    """An ASGI app that reads the body and records the message types it receives."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        try:
            while True:
                message = await receive()
                if scope["method"] == "POST":
                    seen.append(message["type"])
                if message["type"] == "http.disconnect" or not message.get("more_body"):
                    break
            if message["type"] == "http.request" and scope["method"] == "POST":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"read"})
            elif scope["method"] == "GET":
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"ok"})
        finally:
            if scope["method"] == "POST":
                done.set()

    return app


def test_a_stalled_asgi_body_gets_408_and_the_app_a_disconnect(raw_client, http1):
    seen: list[str] = []
    done = threading.Event()
    with serve(_reader(seen, done), http1=http1, timeout_io=0.5) as server:
        client = raw_client(server.port, timeout=10)
        client.send(STALLED)
        status, headers, body = client.read_response()
        assert (status, body) == (408, b"request body not received in time\n")
        assert headers["connection"] == "close"
        _assert_closed(client)
        assert done.wait(10)
        assert httpx.get(server.url, timeout=10).text == "ok"  # the worker lives on
    assert seen == ["http.request", "http.disconnect"]


def test_a_stalled_rsgi_body_gets_408_and_the_app_protocol_closed(raw_client, http1):
    outcome: dict[str, object] = {}
    done = threading.Event()

    async def app(scope, protocol):
        try:
            await protocol()
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome["error"] = exc
            raise
        finally:
            done.set()

    with serve(app, interface="rsgi", http1=http1, timeout_io=0.5) as server:
        client = raw_client(server.port, timeout=10)
        client.send(STALLED)
        status, headers, _ = client.read_response()
        assert status == 408
        assert headers["connection"] == "close"
        assert done.wait(10)
    assert isinstance(outcome["error"], RSGIProtocolClosed)


def test_a_body_that_stalls_after_the_response_started_closes_the_connection(raw_client, http1):
    seen: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started ", "more_body": True})
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return

    with serve(app, http1=http1, timeout_io=0.5) as server:
        client = raw_client(server.port, timeout=10)
        client.send(STALLED)
        received = client.read_until_closed(limit=10)
        assert received.startswith(b"HTTP/1.1 200 ")
        assert b" 408 " not in received
    assert seen[-1] == "http.disconnect"


def test_the_rest_of_a_stalled_body_is_not_awaited_after_the_response(raw_client, http1):
    async def app(scope, receive, send):  # answers without reading the body
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"early"})

    with serve(app, http1=http1, timeout_io=0.5) as server:
        client = raw_client(server.port, timeout=10)
        client.send(STALLED)
        assert client.read_response()[::2] == (200, b"early")
        _assert_closed(client)


def test_a_client_waiting_for_100_continue_is_not_timed_out(raw_client, http1):
    """The clock runs only while the server waits for the client: here the client waits for
    us (``Expect: 100-continue``) while the app takes its time."""

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await asyncio.sleep(2.5)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"later"})

    with serve(app, http1=http1, timeout_io=0.5) as server:
        client = raw_client(server.port, timeout=10)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert client.read_response()[::2] == (200, b"later")


def test_an_asgi_body_that_keeps_coming_is_not_timed_out(raw_client, http1):
    seen: list[str] = []
    with serve(_reader(seen, threading.Event()), http1=http1, timeout_io=0.6) as server:
        client = raw_client(server.port, timeout=10)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n")
        for part in (b"a", b"b", b"c", b"d"):
            threading.Event().wait(0.4)
            client.send(part)
        assert client.read_response()[::2] == (200, b"read")


# -- many tiny chunks ------------------------------------------------------------------


def _chunked(size: int, count: int) -> bytes:
    chunk = b"%x\r\n" % size + b"x" * size + b"\r\n"
    return b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * count + b"0\r\n\r\n"


def _echo_length(first: list[int]):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            if not first:
                first.append(len(message["body"]))
            total += len(message["body"])
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    return app


def test_a_read_of_many_chunks_is_handled_in_slices(raw_client, http1):
    """The app starts after the first pass over the first read: that pass handled at most
    EVENTS_PER_PASS chunks (the rest come from later loop callbacks), not the whole read."""
    first: list[int] = []
    with serve(_echo_length(first), http1=http1) as server:
        client = raw_client(server.port, timeout=30)
        client.send(_chunked(5, 40_000))
        assert client.read_response()[::2] == (200, b"200000")
    assert 0 < first[0] <= EVENTS_PER_PASS * 5


def test_a_body_of_one_byte_chunks_is_refused(raw_client, http1):
    with serve(_echo_length([]), http1=http1) as server:
        client = raw_client(server.port, timeout=30)
        try:
            client.send(_chunked(1, 200_000))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before it had everything
        status, headers, body = client.read_response()
        assert status == 400
        assert b"too many tiny chunks" in body
        assert headers["connection"] == "close"
