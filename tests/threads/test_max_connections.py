"""``--limit-max-connections N`` per worker thread, with real sockets: at N a thread takes no
more connections (they wait in the kernel's listen queue) and takes them again once one
closes; however connections end, the thread's count goes back to zero (a leak would stop
the thread for good)."""

from __future__ import annotations

import socket
import struct
import time

import httpx
import pytest
from websockets.sync.client import connect

from ftserver.testing import serve
from tests.apps import basic
from tests.ftserve_process import ftserve, wait_for  # noqa: F401 - the fixture
from tests.threads.h2client import H2Client
from tests.threads.test_tls import tls_options
from tests.tls_certs import certs  # noqa: F401 - the fixture

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def answered(sock: socket.socket, timeout: float) -> bool:
    """Whether the response to the request already sent on ``sock`` arrives within ``timeout``."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except TimeoutError:
        return False
    assert data.startswith(b"HTTP/1.1 200"), data
    return True


def open_and_ask(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(REQUEST)
    return sock


def check_third_waits_for_a_close(port: int) -> None:
    first, second = open_and_ask(port), open_and_ask(port)
    assert answered(first, 10) and answered(second, 10)
    third = open_and_ask(port)  # the TCP handshake completes in the kernel's queue
    try:
        assert not answered(third, 1.0), "a third connection was served with two open"
        first.close()
        assert answered(third, 10), "the third connection was not served after one closed"
    finally:
        for sock in (first, second, third):
            sock.close()


@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_a_full_thread_leaves_connections_in_the_kernel_queue(accept):
    with serve(basic.hello, accept=accept, limit_max_connections=2) as server:
        check_third_waits_for_a_close(server.port)


def test_every_thread_full_in_queue_mode():
    with serve(basic.hello, threads=2, limit_max_connections=1) as server:
        check_third_waits_for_a_close(server.port)


def test_worker_process(ftserve):  # noqa: F811
    served = ftserve("--workers", "1", "--limit-max-connections", "2", app="tests.apps.basic:hello")
    check_third_waits_for_a_close(served.port)


def test_worker_process_with_max_requests_resumes_on_close(ftserve):  # noqa: F811
    # --max-requests gives the worker's threads request-counting stats; they must keep the
    # close hook of --limit-max-connections, which resumes a full reuseport thread as soon as
    # one of its connections closes. Without the hook only the loop's 1-s ticker resumes
    # it: a close at a random moment of that second waits 0 to 1 s, so eight rounds all
    # resumed within 0.5 s happen by chance once in 256 runs; with the hook each takes a
    # loop pass (milliseconds, tens of them on a loaded machine).
    served = ftserve(
        "--workers", "1", "--threads", "1", "--accept", "reuseport", "--limit-max-connections", "2",
        "--max-requests", "30", "--max-requests-jitter", "0", app="tests.apps.basic:hello",
    )  # fmt: skip
    waits = []
    for _ in range(8):
        first, second = open_and_ask(served.port), open_and_ask(served.port)
        try:
            assert answered(first, 10) and answered(second, 10)
            third = open_and_ask(served.port)
            assert not answered(third, 0.1), "a third connection was served with two open"
            first.close()
            start = time.monotonic()
            assert answered(third, 10), "the third connection was not served after one closed"
            waits.append(time.monotonic() - start)
            third.close()
        finally:
            first.close()
            second.close()
    assert max(waits) < 0.5, f"resumed by the 1-s ticker, not on the close: {waits}"
    for _ in range(10):  # 24 served so far; --max-requests still retires the worker
        sock = open_and_ask(served.port)
        assert answered(sock, 10)
        sock.close()
    served.wait_log(r"--max-requests reached \(\d+ requests served\)")


def thread_counts(server) -> list[int]:
    return [worker.open_connections() for worker in server.server.workers]


def closed_in_every_way(port: int) -> None:
    """Connections that end every way a connection ends, one after the other."""
    sock = open_and_ask(port)  # the client closes after its response
    assert answered(sock, 10)
    sock.close()
    socket.create_connection(("127.0.0.1", port)).close()  # closed before a byte
    with socket.create_connection(("127.0.0.1", port)) as sock:  # in the middle of a head
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # a 400: the server closes
        sock.sendall(b"NOT HTTP\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # reset by the client
        sock.sendall(REQUEST)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client = H2Client(port)  # HTTP/2, closed after a response
    headers, _, _ = client.response(client.request("/"))
    assert headers[b":status"] == b"200"
    client.sock.close()
    with httpx.Client(http1=False, http2=True) as h2:  # HTTP/2 through httpx
        assert h2.get(f"http://127.0.0.1:{port}/").status_code == 200


def test_no_leak_however_connections_close(tmp_path):
    # (A keep-alive timeout well above 1 s: a fresh connection's idle time is counted from the
    # loop time cached once a second, so a shorter one could close a connection just made.)
    with serve(basic.hello, threads=2, limit_max_connections=2, timeout_keep_alive=2.0) as server:
        for _ in range(10):
            closed_in_every_way(server.port)
        idle = open_and_ask(server.port)  # the keep-alive timeout: the server closes
        assert answered(idle, 10)
        idle.settimeout(10)
        assert idle.recv(100) == b""
        idle.close()
        wait_for(lambda: thread_counts(server) == [0, 0], 10, "every connection counted closed")
        # Both threads take their two connections again: four at once.
        socks = [open_and_ask(server.port) for _ in range(4)]
        try:
            assert all(answered(sock, 10) for sock in socks)
        finally:
            for sock in socks:
                sock.close()


async def ws_app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass
        return
    await basic.hello(scope, receive, send)


def test_websockets_hold_their_connection_until_closed():
    with serve(ws_app, limit_max_connections=2, accept="reuseport") as server:
        url = f"ws://127.0.0.1:{server.port}/"
        for _ in range(10):
            with connect(url, open_timeout=10), connect(url, open_timeout=10):
                third = open_and_ask(server.port)
                assert not answered(third, 0.5)
            assert answered(third, 10)
            third.close()
        wait_for(lambda: thread_counts(server) == [0], 10, "every connection counted closed")


def test_failed_tls_handshakes_do_not_leak(certs):  # noqa: F811
    with serve(basic.hello, limit_max_connections=2, ssl_handshake_timeout=0.5, **tls_options(certs)) as server:
        for _ in range(10):
            for junk in (b"GET / HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b""):  # a plain request, garbage, silence
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                    if junk:
                        sock.sendall(junk)
                        try:
                            sock.recv(100)
                        except ConnectionResetError:
                            pass
                    else:
                        time.sleep(0.01)
        wait_for(lambda: thread_counts(server) == [0], 10, "every handshake counted closed")
        with httpx.Client(verify=certs.client_context()) as a, httpx.Client(verify=certs.client_context()) as b:
            assert a.get(server.url + "/").status_code == 200
            assert b.get(server.url + "/").status_code == 200
