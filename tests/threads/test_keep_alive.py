"""A sub-second ``--timeout-keep-alive`` with real sockets: a connection is never closed
before it has been idle that long (the worker's cached clock lags real time), and one idle
well past it is closed."""

from __future__ import annotations

import socket
import time

from ftserver.testing import serve
from tests.apps import basic

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


def ask(sock: socket.socket) -> bytes:
    """Send a request; what arrives first (b"" once the server has closed)."""
    try:
        sock.sendall(REQUEST)
        return sock.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return b""


def test_idle_below_the_timeout_is_served():
    # Each idle period of 0.3 s (below 0.5) meets a tick of the worker's clock with a
    # chance of about 0.3 (once a second, or more often); before the fix such a tick
    # closed the connection, as its idle clock had started from the clock cached at the
    # tick before. Sixteen periods all missing a tick: 0.7**16, about 1 run in 300.
    with serve(basic.hello, timeout_keep_alive=0.5) as server:
        for _ in range(8):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                time.sleep(0.3)  # just opened
                assert ask(sock).startswith(b"HTTP/1.1 200"), "closed before 0.5 s idle (just opened)"
                time.sleep(0.3)  # just answered
                assert ask(sock).startswith(b"HTTP/1.1 200"), "closed before 0.5 s idle (after an answer)"


def test_idle_past_the_timeout_is_closed():
    with serve(basic.hello, timeout_keep_alive=0.5) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            assert ask(sock).startswith(b"HTTP/1.1 200")
            time.sleep(1.5)
            assert ask(sock) == b"", "still open after 1.5 s idle with a 0.5-s keep-alive timeout"
