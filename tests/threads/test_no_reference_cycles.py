"""The server's own objects are freed by reference counting, never left to the cyclic GC.

On free-threaded 3.13 a collection stops every thread and walks the whole heap: a request,
stream or connection that leaves a reference cycle makes the GC run every few thousand of
them, and each run pauses every client (HTTP/2 hello: 0.9 s of GC in 5 s, p99 latency
4× before the streams stopped referring to their exchanges). Each test runs real clients
with the GC off, then counts the ``ftserver`` objects a collection finds unreachable.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from ftserver.testing import serve
from tests.apps.basic import crash, crash_after_start, echo, hello, stream
from tests.threads.h2client import H2Client
from tests.websocket.apps import Recorder, make_app
from tests.websocket.h2ws import H2WebSocketClient


async def crash_suspended(scope, receive, send):
    await asyncio.sleep(0.001)
    raise RuntimeError("the app's mistake, after a suspension")


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return
    routes = {"/echo": echo, "/stream": stream, "/crash": crash, "/crash-late": crash_after_start, "/crash-suspended": crash_suspended}
    await routes.get(scope["path"], hello)(scope, receive, send)


def wsgi_app(environ, start_response):
    body = environ["wsgi.input"].read()
    if environ["PATH_INFO"].startswith("/crash"):
        raise RuntimeError("the app's mistake")
    start_response("200 OK", [("content-type", "text/plain")])
    return [b"hello ", body]


class RSGIApp:
    async def __rsgi__(self, scope, protocol):
        body = await protocol()
        if scope.path.startswith("/crash"):
            raise RuntimeError("the app's mistake")
        protocol.response_bytes(200, [("content-type", "text/plain")], b"hello " + body)


APPS = {"asgi": app, "wsgi": wsgi_app, "rsgi": RSGIApp()}


@contextmanager
def no_gc() -> Iterator[list[str]]:
    """The GC off inside; on leaving, the names of the ``ftserver`` objects a collection
    finds unreachable are put in the list."""
    gc.collect()
    gc.disable()
    found: list[str] = []
    try:
        yield found
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found += [type(o).__qualname__ for o in gc.garbage if type(o).__module__.startswith("ftserver")]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def closed(server: Any) -> None:
    """Wait until the server has closed every connection (its objects then are garbage or freed)."""
    deadline = time.monotonic() + 10
    while server.stats()["open_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # (the last exchange's end, after its connection's count)


def check(server: Any, clients: Callable[[], None]) -> None:
    clients()  # (first: whatever is made once, on the first request)
    closed(server)
    with no_gc() as found:
        clients()
        closed(server)
    assert not found, collections.Counter(found).most_common()


def h2_requests(port: int, paths: list[str], context: ssl.SSLContext | None = None) -> None:
    client = H2Client(port) if context is None else None
    if client is None:
        with httpx.Client(http2=True, http1=False, verify=context) as tls:
            for path in paths:
                response = tls.post(f"https://localhost:{port}{path}", content=b"x" * 100)
                assert response.status_code == 200 and response.http_version == "HTTP/2"
        return
    try:
        for path in paths:
            stream_id = client.request(path, "POST", b"x" * 100)
            headers, _, _ = client.response(stream_id)
            assert headers[b":status"] == b"200"
    finally:
        client.close()


@pytest.mark.parametrize("interface", ["asgi", "wsgi", "rsgi"])
def test_http11_requests_and_connections(interface):
    paths = ["/", "/echo", "/stream"] * 5

    def clients() -> None:
        with httpx.Client(base_url=server.url) as client:  # keep-alive
            for path in paths:
                assert client.post(path, content=b"x" * 100).status_code == 200
        for _ in range(5):  # a connection per request
            with httpx.Client(base_url=server.url, headers={"connection": "close"}) as client:
                assert client.get("/").status_code == 200

    with serve(APPS[interface], interface=interface) as server:
        check(server, clients)


@pytest.mark.parametrize("data", [b"GET / HTTP/9.1\r\n\r\n", b"\x00\x01\x02\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"])
def test_refused_requests(data):
    def clients() -> None:
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(data)
                assert sock.recv(4096).startswith(b"HTTP/1.1 4") or data.startswith(b"GET / HTTP/9")
                while sock.recv(4096):
                    pass

    with serve(app) as server:
        check(server, clients)


@pytest.mark.parametrize("interface", ["asgi", "wsgi", "rsgi"])
def test_http2_streams_and_connections(interface):
    def clients() -> None:
        h2_requests(server.port, ["/", "/echo", "/stream"] * 10)  # streams on one connection
        for _ in range(5):
            h2_requests(server.port, ["/"])

    with serve(APPS[interface], interface=interface) as server:
        check(server, clients)


@pytest.mark.parametrize("interface", ["asgi", "wsgi", "rsgi"])
def test_app_errors(interface):
    paths = ["/crash", "/crash-late", "/crash-suspended"]

    def clients() -> None:
        with httpx.Client(base_url=server.url) as client:
            for path in paths:
                try:
                    assert client.get(path).status_code == 500
                except httpx.RemoteProtocolError:  # (the error after the response started)
                    pass
        client = H2Client(server.port)
        try:
            for path in paths:
                client.response(client.request(path))
        finally:
            client.close()

    with serve(APPS[interface], interface=interface, log_level="critical") as server:
        check(server, clients)


def test_static_files(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"hello" * 1000)

    def clients() -> None:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(3):
                assert client.get("/static/a.txt").content == b"hello" * 1000
        client = H2Client(server.port)
        try:
            for _ in range(3):
                assert client.response(client.request("/static/a.txt"))[1] == b"hello" * 1000
        finally:
            client.close()

    with serve(app, static_path_mount=(str(tmp_path),)) as server:
        check(server, clients)


def test_h2c_upgrade():
    def clients() -> None:
        for _ in range(3):
            out = subprocess.run(
                ["curl", "-s", "--http2", "-d", "abc", f"{server.url}/echo", f"{server.url}/echo"],
                capture_output=True, timeout=30, check=True,
            ).stdout  # (POSTs the app reads: curl 7.88 may fail on the reset of an unread body)
            assert out == b"abcabc"

    with serve(app) as server:
        check(server, clients)


def test_tls(certs):
    context = certs.client_context()

    def clients() -> None:
        with httpx.Client(verify=context) as client:
            for _ in range(5):
                assert client.get(f"https://localhost:{server.port}/").status_code == 200
        for _ in range(3):
            with httpx.Client(verify=context, headers={"connection": "close"}) as client:
                assert client.get(f"https://localhost:{server.port}/").status_code == 200
            h2_requests(server.port, ["/", "/echo", "/stream"], context)

    with serve(app, ssl_certfile=certs.server, ssl_keyfile=certs.server_key) as server:
        check(server, clients)


def test_websockets():
    rec = Recorder()

    def clients() -> None:
        for _ in range(3):
            with connect(server.url.replace("http://", "ws://") + "/echo") as ws:
                for i in range(3):
                    ws.send(f"message {i}")
                    assert ws.recv() == f"message {i}"
        client = H2WebSocketClient(server.port)
        try:
            for _ in range(3):
                stream_id, status, _ = client.connect("/echo")
                assert status == 200
                client.send(stream_id, "over h2")
                assert client.recv(stream_id) == "over h2"
                client.close_ws(stream_id, 1000)
        finally:
            client.close()

    with serve(make_app(rec)) as server:
        check(server, clients)


def test_refused_tls_handshakes_and_timeouts(certs):
    def clients() -> None:
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello"):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(data)  # plain HTTP, a broken ClientHello
                while sock.recv(4096):
                    pass
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            while sock.recv(4096):  # no ClientHello: the handshake timeout
                pass
        context = certs.client_context()
        for data in (b"GET / HTTP/1.1\r\nHost: x\r\n", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab"):
            with context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="localhost") as sock:
                sock.sendall(data)  # a head, a body that stop: 408
                assert sock.recv(4096).startswith(b"HTTP/1.1 408")

    with serve(
        app, ssl_certfile=certs.server, ssl_keyfile=certs.server_key, ssl_handshake_timeout=0.3,
        timeout_header_read=0.3, timeout_io=0.3, log_level="critical",
    ) as server:
        check(server, clients)


def test_http2_connection_errors():
    def clients() -> None:
        for frame in (b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00", b"\x00\x00\x08\x06\x00\x00\x00\x00\x03abcdefgh"):
            client = H2Client(server.port)
            try:
                client.send_raw(frame)  # a WINDOW_UPDATE of 0 on the connection; a PING on a stream
                client.goaway()
            finally:
                client.close()

    with serve(app, log_level="critical") as server:
        check(server, clients)


def test_wsgi_bodies_that_never_come():
    def clients() -> None:
        for _ in range(3):  # the client goes mid-body: the app never runs
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
                time.sleep(0.05)
        for _ in range(2):  # the body stalls: 408
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
                assert sock.recv(4096).startswith(b"HTTP/1.1 408")

    with serve(wsgi_app, interface="wsgi", timeout_io=0.3, log_level="critical") as server:
        check(server, clients)
