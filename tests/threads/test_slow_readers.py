"""Clients that do not read their responses (issue 13, items 1 and 2), through real sockets:
the memory they can hold and how long they can hold a connection. RSS is read from
/proc/self/status (the server runs in this process) with generous bounds."""

from __future__ import annotations

import socket
import time

import pytest

from ftserver.testing import serve

MIB = 1 << 20
BODY = b"y" * MIB


def rss_mb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    size = int(scope["query_string"] or MIB)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    if scope["path"] == "/parts":  # the body in 64 KiB messages
        for start in range(0, size, 65536):
            await send({"type": "http.response.body", "body": BODY[:65536], "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.body", "body": BODY * (size // MIB) if size > MIB else BODY[:size]})


def wsgi_app(environ, start_response):
    size = int(environ.get("QUERY_STRING") or MIB)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY * (size // MIB) if size > MIB else BODY[:size]]


class RSGIApp:
    async def __rsgi__(self, scope, protocol):
        size = int(scope.query_string or MIB)
        protocol.response_bytes(200, [("content-type", "text/plain")], BODY * (size // MIB) if size > MIB else BODY[:size])


APPS = {"asgi": asgi_app, "wsgi": wsgi_app, "rsgi": RSGIApp()}


def non_reader(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "interface,http1", [("asgi", "fast"), ("asgi", "h11"), ("wsgi", "fast"), ("rsgi", "fast")]
)
def test_pipelined_requests_of_a_non_reader_do_not_buffer_every_response(interface, http1):
    """300 pipelined GETs of a 1 MiB response, never read: the next request waits for
    the response before it to drain (it grew the worker by ~590 MB)."""
    count = 300
    with serve(APPS[interface], interface=interface, http1=http1) as server:
        before = rss_mb()
        sock = non_reader(port_of(server))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        time.sleep(2)  # (a bound on the work, not a timed assertion: the figure is RSS)
        grown = rss_mb() - before
        assert grown < 100, f"RSS grew {grown} MB"
        # Reading resumes the pipeline: every response arrives, in order.
        sock.settimeout(30)
        received = 0
        heads = 0
        tail = b""
        while heads < count or received < count * MIB:
            data = sock.recv(1 << 20)
            assert data, f"connection closed after {heads} responses"
            received += len(data)
            heads += (tail + data).count(b"HTTP/1.1 200 ")
            tail = data[-16:]
        sock.close()


@pytest.mark.parametrize("interface,path", [("asgi", "/"), ("asgi", "/parts"), ("rsgi", "/"), ("wsgi", "/")])
def test_a_client_that_reads_nothing_is_dropped_after_timeout_io(interface, path):
    """A response that makes no write progress for --timeout-io costs the connection
    (ASGI and RSGI held it for as long as the client kept it open)."""
    with serve(APPS[interface], interface=interface, timeout_io=1.0) as server:
        socks = [non_reader(port_of(server)) for _ in range(4)]
        for sock in socks:
            sock.sendall(f"GET {path}?{16 * MIB} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_for(lambda: server.stats()["connections"] == 4, 30, "the connections to be accepted")
        wait_for(lambda: server.stats()["open_connections"] == 0, 30, "the non-readers to be dropped")
        for sock in socks:
            sock.close()


def test_a_slow_but_reading_client_is_not_dropped():
    with serve(asgi_app, timeout_io=1.0) as server:
        sock = non_reader(port_of(server))
        sock.sendall(f"GET /parts?{2 * MIB} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.settimeout(10)
        received = 0
        while received < 2 * MIB:
            data = sock.recv(256 * 1024)
            assert data, f"dropped after {received} bytes"
            received += len(data)
            time.sleep(0.02)  # 4 KiB reads: ~10 s, many times --timeout-io, always progressing
        sock.close()


def test_a_closed_connection_whose_response_is_not_read_is_dropped():
    """Closing (here: Connection: close) waits for the buffer to be sent; a client that reads
    nothing must not keep that connection forever."""
    with serve(RSGIApp(), interface="rsgi", timeout_io=1.0) as server:
        sock = non_reader(port_of(server))
        sock.sendall(f"GET /?{16 * MIB} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        wait_for(lambda: server.stats()["requests"] == 1, 30, "the response to be written")
        wait_for(lambda: server.stats()["open_connections"] == 0, 30, "the connection to be dropped")
        sock.close()
