"""ASGI streamed responses: a client that goes away is noticed even when sends never wait."""

from __future__ import annotations

import socket
import struct
import threading

from ftserver.testing import serve

CHUNK = b"x" * 65536
LIMIT = 64 * 1024 * 1024  # far more than the socket buffers between us and the client


class StreamingApp:
    """Streams up to LIMIT bytes; records how it ended."""

    def __init__(self) -> None:
        self.outcome: str | None = None
        self.sent = 0
        self.done = threading.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        try:
            while self.sent < LIMIT:
                await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
                self.sent += len(CHUNK)
            await send({"type": "http.response.body", "body": b""})
            self.outcome = "finished"
        except OSError as exc:
            self.outcome = type(exc).__name__
            raise
        finally:
            self.done.set()


def test_reset_client_stops_a_stream_whose_sends_never_wait():
    app = StreamingApp()
    with serve(app, threads=1, interface="asgi") as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        # Reset: the server's next send() fails, after which its transport drops every write
        # without ever pausing, so only the loop can tell the app the client is gone.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        assert app.done.wait(20)
        assert app.outcome == "ClientDisconnected"
        assert app.sent < LIMIT
        # The worker still serves.
        probe = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        probe.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert probe.recv(65536).startswith(b"HTTP/1.1 200 ")
        probe.close()


def test_client_that_closes_gets_http_disconnect_while_the_app_waits():
    """A long-poll app waits in receive() for http.disconnect; the client closes (FIN)."""
    seen: list[str] = []
    done = threading.Event()

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
        seen.append(message["type"])
        done.set()

    with serve(app, threads=1, interface="asgi") as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.close()
        assert done.wait(10)
        assert seen == ["http.disconnect"]


def test_half_closed_client_still_gets_its_response():
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"still here"})

    with serve(app, threads=1, interface="asgi") as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"still here")
