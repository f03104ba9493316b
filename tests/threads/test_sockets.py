"""The worker's own socket transport (``ftserver.threads.sockets``), through real sockets:
write backpressure with a slow reader, resets, half-close, sendfile, close after a full
write buffer."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import threading
import time
from pathlib import Path

import httpx
import pytest

from ftserver.testing import serve
from ftserver.threads.sockets import SocketTransport
from tests.apps import basic

CHUNK = bytes(range(256)) * 256  # 64 KiB
CHUNKS = 64  # 4 MiB in all: far more than the socket buffers hold


async def big_stream(scope, receive, send):
    """CHUNKS × CHUNK, streamed; counts what happened in ``scope['state']`` if present."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    for _ in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def big_body(scope, receive, send):
    """One 4 MiB body message: written to the transport in one piece."""
    body = CHUNK * CHUNKS
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def slow_read_all(sock: socket.socket, pause_every: int = 256 * 1024) -> bytes:
    """Read until EOF, pausing now and then so the server's write buffer fills up."""
    chunks = []
    since_pause = 0
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)
        since_pause += len(data)
        if since_pause >= pause_every:
            since_pause = 0
            time.sleep(0.02)


def test_connections_use_our_transport():
    with serve(basic.hello) as server:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/").text == "Hello, world!"
            connections = [p for w in server.server.workers for p in w.ctx.connections]
            assert connections and all(isinstance(p.transport, SocketTransport) for p in connections)


@pytest.mark.parametrize("app", [big_stream, big_body], ids=["streamed", "one-message"])
def test_slow_reader_gets_every_byte_in_order(app):
    expected = CHUNK * CHUNKS
    with serve(app) as server:
        sock = socket.create_connection((server.host, server.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = slow_read_all(sock)
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    if b"transfer-encoding: chunked" in head:
        body = _dechunk(body)
    assert len(body) == len(expected)
    assert hashlib.sha256(body).digest() == hashlib.sha256(expected).digest()


def _dechunk(data: bytes) -> bytes:
    out = []
    while True:
        line, _, data = data.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2 :]


def test_reset_mid_response_leaves_the_worker_serving():
    """A client that resets while its response is streaming: the app's send fails, the
    worker goes on serving its other connections."""
    outcome: list[str] = []
    finished = threading.Event()

    async def endless(scope, receive, send):
        if scope["path"] == "/hello":
            await basic.hello(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100_000):
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
            outcome.append("finished")
        except OSError:
            outcome.append("disconnected")
        finally:
            finished.set()

    with serve(endless, threads=1) as server:
        with httpx.Client(base_url=server.url) as other:  # another connection on the same worker
            assert other.get("/hello").text == "Hello, world!"
            sock = socket.create_connection((server.host, server.port), timeout=5)
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # RST
            assert finished.wait(10)
            assert outcome == ["disconnected"]
            assert other.get("/hello").text == "Hello, world!"


async def late_big_body(scope, receive, send):
    await asyncio.sleep(0.2)  # the client's FIN arrives before any of the response
    await big_body(scope, receive, send)


def test_half_close_still_gets_the_response_then_the_close():
    # The keep-alive timeout is far beyond the socket timeout: the close must follow the
    # response, not the idle timer.
    with serve(late_big_body, timeout_keep_alive=60) as server:
        sock = socket.create_connection((server.host, server.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        data = slow_read_all(sock)
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert body == CHUNK * CHUNKS


def test_sendfile_larger_than_the_socket_buffers(tmp_path: Path):
    content = bytes(range(251)) * 40_000  # ~10 MB, a prime-length pattern
    path = tmp_path / "big.bin"
    path.write_bytes(content)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 65536)

    with serve(app, interface="wsgi") as server:
        sock = socket.create_connection((server.host, server.port), timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = slow_read_all(sock, pause_every=1024 * 1024)
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert hashlib.sha256(body).digest() == hashlib.sha256(content).digest()
