"""HTTP/1.1 behaviour through real sockets, for both --http1 implementations."""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import time

import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic

HTTP1 = ["fast", "h11"]


@pytest.fixture(params=HTTP1)
def http1(request):
    return request.param


def test_hello_and_keep_alive(http1):
    with serve(basic.hello, http1=http1) as server:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(5):
                r = client.get("/")
                assert r.status_code == 200
                assert r.text == "Hello, world!"
                assert r.headers["server"] == "ftserver"
                assert "date" in r.headers
                # one body message: the length is known, so no chunked framing
                assert r.headers["content-length"] == "13"
    # counted after the response is written: read once the server has stopped
    assert server.stats()["requests"] == 5
    assert server.stats()["connections"] == 1


@pytest.mark.parametrize("threads,accept", [(1, "queue"), (2, "queue"), (2, "reuseport")])
def test_threads_and_accept_modes(threads, accept):
    with serve(basic.hello, threads=threads, accept=accept) as server:
        for _ in range(8):  # a new connection each time: spread across threads
            assert httpx.get(server.url + "/").text == "Hello, world!"
    assert server.stats()["requests"] == 8


def test_post_echo_large_body_streams_with_backpressure(http1):
    body = bytes(range(256)) * 8192  # 2 MiB: more than the read high-water mark
    with serve(basic.echo, http1=http1) as server:
        r = httpx.post(server.url + "/", content=body, timeout=30)
        assert r.status_code == 200
        assert r.content == body


def test_chunked_request_body(http1):
    def gen():
        for i in range(20):
            yield b"x" * i
    with serve(basic.echo, http1=http1) as server:
        r = httpx.post(server.url + "/", content=gen())
        assert r.content == b"".join(b"x" * i for i in range(20))


def test_streaming_response(http1):
    with serve(basic.stream, http1=http1) as server:
        with httpx.stream("GET", server.url + "/") as r:
            chunks = b"".join(r.iter_raw())
        assert chunks == b"".join(f"chunk {i}\n".encode() for i in range(5))


def test_app_exception_gives_500_and_connection_lives_on(raw_client, http1):
    with serve(basic.crash, http1=http1) as server:
        c = raw_client(server.url)
        for _ in range(2):
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = c.read_response()
            assert status == 500
            assert body == b"Internal Server Error"


def test_app_exception_after_start_closes_connection(raw_client, http1):
    with serve(basic.crash_after_start, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = c.read_until_closed()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"partial" in data
        assert not data.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees the truncation


async def _body_longer_than_content_length(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"hello"})


async def _invalid_header(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"bad name", b"x")]})
    await send({"type": "http.response.body", "body": b"hello"})


def test_body_longer_than_content_length_closes_without_a_response(raw_client, http1):
    # The head was valid, so it counts as sent: no 500 can follow; the connection closes.
    with serve(_body_longer_than_content_length, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_until_closed() == b""


def test_invalid_response_header_gives_500_and_connection_lives_on(raw_client, http1):
    with serve(_invalid_header, http1=http1) as server:
        c = raw_client(server.url)
        for _ in range(2):
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.read_response()[0] == 500


def test_app_returning_without_response_gives_500(http1):
    with serve(basic.no_response, http1=http1) as server:
        assert httpx.get(server.url + "/").status_code == 500


def test_pipelining_in_order(raw_client, http1):
    with serve(basic.scope_json, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"".join(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(5)))
        for i in range(5):
            status, _, body = c.read_response()
            assert status == 200
            assert json.loads(body)["path"] == f"/{i}"


def test_pipelined_post_bodies(raw_client, http1):
    with serve(basic.echo, http1=http1) as server:
        c = raw_client(server.url)
        req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        chunked = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        c.send(req + chunked + req)
        assert c.read_response()[2] == b"hello"
        assert c.read_response()[2] == b"abcde"
        assert c.read_response()[2] == b"hello"


H11_LENIENT = {
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
}


@pytest.mark.parametrize(
    "request_bytes,status",
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),  # chunked not final
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ],
)
def test_malformed_requests_get_4xx_and_close(raw_client, request_bytes, status, http1):
    if http1 == "h11" and request_bytes in H11_LENIENT:
        pytest.skip("h11 itself accepts this (merges equal Content-Length / unfolds obs-fold / answers 501)")
    with serve(basic.hello, http1=http1) as server:
        c = raw_client(server.url)
        c.send(request_bytes)
        data = c.read_until_closed()
        assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:80]
        assert b"connection: close" in data.lower()


def test_limits(raw_client, http1):
    options = dict(limit_request_line=100, limit_request_headers=400, limit_request_fields=5, limit_request_body=10)
    with serve(basic.echo, http1=http1, **options) as server:
        cases = [
            (b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 500 + b"\r\n\r\n", 431),
            (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(10)) + b"\r\n", 431),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n" + b"a" * 11, 413),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n" + b"a" * 11 + b"\r\n0\r\n\r\n", 413),
        ]
        for request_bytes, status in cases:
            c = raw_client(server.url)
            c.send(request_bytes)
            data = c.read_until_closed()
            assert data.startswith(f"HTTP/1.1 {status} ".encode()), (status, data[:80])


def test_request_line_too_long_detected_without_crlf(raw_client):
    with serve(basic.hello, limit_request_line=100) as server:
        c = raw_client(server.url)
        c.send(b"GET /" + b"a" * 5000)  # never terminated: must not be buffered forever
        assert c.read_until_closed().startswith(b"HTTP/1.1 414 ")


def test_expect_100_continue_sent_when_app_reads(raw_client, http1):
    with serve(basic.echo, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, _, _ = c.read_response()
        assert status == 100
        c.send(b"hello")
        status, _, body = c.read_response()
        assert (status, body) == (200, b"hello")


def test_no_100_continue_when_app_answers_without_reading(raw_client, http1):
    with serve(basic.hello, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        status, _, body = c.read_response()
        assert (status, body) == (200, b"Hello, world!")


def test_unread_body_is_discarded_and_connection_reused(raw_client, http1):
    with serve(basic.hello, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response()[0] == 200
        assert c.read_response()[0] == 200


def test_head_has_no_body(raw_client, http1):
    with serve(basic.hello, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = c.read_response(head=True)
        assert status == 200 and body == b""
        status, headers, body = c.read_response()
        assert body == b"Hello, world!"


def test_http10(raw_client, http1):
    with serve(basic.hello, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        data = c.read_until_closed()  # no Content-Length and no chunked in 1.0: close-delimited
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b"\r\n\r\nHello, world!")

    if http1 == "h11":
        return  # h11 never keeps HTTP/1.0 connections alive
    with serve(basic.echo, http1=http1) as server:
        c = raw_client(server.url)
        for _ in range(2):  # keep-alive honoured when asked for and the length is known
            c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = c.read_response()
            assert status == 200 and headers["connection"].lower() == "keep-alive"


def test_connection_close_honoured(raw_client, http1):
    with serve(basic.hello, http1=http1) as server:
        c = raw_client(server.url)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = c.read_until_closed()
        assert b"connection: close" in data.lower()
        assert data.endswith(b"\r\n\r\nHello, world!")


def test_scope(http1):
    with serve(basic.scope_json, http1=http1, root_path="/mount") as server:
        r = httpx.get(server.url + "/a%20b/c%2Fd?x=1&y=%20", headers={"X-Custom": "Value"})
        scope = r.json()
        assert scope["type"] == "http"
        assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
        assert scope["http_version"] == "1.1"
        assert scope["method"] == "GET"
        assert scope["scheme"] == "http"
        assert scope["root_path"] == "/mount"
        assert scope["path"] == "/mount/a b/c/d"
        assert scope["raw_path"] == "/mount/a%20b/c%2Fd"
        assert scope["query_string"] == "x=1&y=%20"
        assert ["x-custom", "Value"] in scope["headers"]
        assert scope["client"][0] == "127.0.0.1"
        assert scope["server"] == ["127.0.0.1", server.port]


def test_disconnect_reaches_app_waiting_for_body():
    seen: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            while True:  # the rest of the body never comes: the client goes away
                message = await receive()
                if message["type"] == "http.disconnect":
                    seen.append(message["type"])
                    return
                assert message["more_body"]

    with serve(app) as server:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.2)
        sock.close()
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            time.sleep(0.02)
    assert seen == ["http.disconnect"]


def test_keep_alive_timeout_closes_idle_connection(raw_client):
    with serve(basic.hello, timeout_keep_alive=1) as server:
        c = raw_client(server.url)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response()[0] == 200
        start = time.monotonic()
        assert c.read_until_closed(limit=5) == b""
        assert time.monotonic() - start < 4.5


def test_slow_request_head_gets_408(raw_client):
    with serve(basic.hello, timeout_keep_alive=1) as server:
        c = raw_client(server.url)
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
        assert c.read_until_closed(limit=5).startswith(b"HTTP/1.1 408 ")


def test_current_task_timeout_and_context_isolation(http1):
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)

    async def app(scope, receive, send):
        task = asyncio.current_task()
        assert task is not None
        before = var.get()
        var.set(before + 1)
        async with asyncio.timeout(5):
            await asyncio.sleep(0)  # really suspend: the host task continues us
        assert asyncio.current_task() is task
        body = json.dumps({"before": before}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with serve(app, http1=http1) as server:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(3):  # same connection: the context must not leak between requests
                assert client.get("/").json() == {"before": 0}


def test_timeout_cancels_app_and_connection_survives():
    async def app(scope, receive, send):
        try:
            async with asyncio.timeout(0.05):
                await asyncio.sleep(10)
        except TimeoutError:
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"timed out"})

    with serve(app) as server:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(3):
                assert client.get("/").text == "timed out"


def test_invalid_response_header_gives_500(http1):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-bad", b"a\r\nInjected: yes")]})
        await send({"type": "http.response.body", "body": b"no"})

    with serve(app, http1=http1) as server:
        r = httpx.get(server.url + "/")
        assert r.status_code == 500
        assert "injected" not in r.headers


async def trailers_app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")], "trailers": True})
    await send({"type": "http.response.body", "body": b"data", "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")], "more_trailers": False})


@pytest.mark.parametrize("te,expected_end", [(b"TE: trailers\r\n", b"0\r\nx-checksum: abc\r\n\r\n"), (b"", b"0\r\n\r\n")])
def test_response_trailers_only_when_client_accepts_them(raw_client, http1, te, expected_end):
    with serve(trailers_app, http1=http1) as server:
        c = raw_client(server.url)
        for _ in range(2):  # and the connection is reusable afterwards
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + te + b"\r\n")
            head = c._read_until(b"\r\n\r\n")
            assert b"transfer-encoding: chunked" in head.lower()
            body = c._read_until(expected_end)
            assert body == b"4\r\ndata\r\n1\r\n!\r\n"


def test_a_trickling_request_head_is_cut_by_the_header_read_timeout(raw_client):
    """With a long keep-alive timeout (behind a load balancer), a client sending its head a
    byte at a time is still cut off --timeout-header-read after its first bytes."""
    with serve(basic.hello, timeout_keep_alive=60, timeout_header_read=1) as server:
        idle = raw_client(server.url)  # an idle connection: only the keep-alive timeout applies
        c = raw_client(server.url)
        head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        start = time.monotonic()
        status = None
        for byte in head:
            try:
                c.send(bytes([byte]))
            except OSError:
                break
            time.sleep(0.05)
            if time.monotonic() - start > 10:
                break
        status = c.read_until_closed(limit=10)
        assert status.startswith(b"HTTP/1.1 408 "), status
        assert time.monotonic() - start < 8  # long before the keep-alive timeout
        idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # still open after the 1 s limit
        assert idle.read_response()[0] == 200
