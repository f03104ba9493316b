"""Lingering close: an error answered before the request was read (a 413 on its head)
reaches a client that is still sending its body, instead of being destroyed by a RST."""

from __future__ import annotations

import http.client
import socket
import time

from ftserver.testing import serve
from tests.apps import basic

BODY = 4 * 1024 * 1024


def post_everything(port: int) -> tuple[bytes, str | None]:
    """Send a whole 4 MiB POST body whatever the server says, then read to EOF: the
    answer, and the error the socket gave while sending or reading (None)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    error = None
    answer = b""
    try:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % BODY)
        time.sleep(0.2)  # (the 413 and the server's close come now, before the body)
        piece = b"x" * 65536
        for _ in range(BODY // len(piece)):
            sock.sendall(piece)
    except OSError as exc:
        error = f"send: {exc!r}"
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except OSError as exc:
        error = (error or "") + f" recv: {exc!r}"
    finally:
        sock.close()
    return answer, error


def test_a_413_reaches_a_client_still_sending_its_body():
    with serve(basic.echo, limit_request_body=1024) as server:
        for _ in range(3):
            answer, error = post_everything(server.port)
            assert answer.startswith(b"HTTP/1.1 413 "), (answer[:100], error)
            assert error is None
            head, _, body = answer.partition(b"\r\n\r\n")
            assert b"connection: close" in head.lower()
            assert len(body) == int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])


def test_http_client_that_sends_its_whole_body_first_reads_the_413():
    """``http.client`` (as ``urllib`` and ``requests`` over it) writes the whole body before
    it reads anything: without the lingering close its write fails (a reset) and the app's
    answer is never read."""
    with serve(basic.echo, limit_request_body=1024) as server:
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            try:
                connection.request("POST", "/echo", body=b"x" * BODY)
                response = connection.getresponse()
                assert response.status == 413
                assert b"exceeds the limit of 1024 bytes" in response.read()
            finally:
                connection.close()


def test_over_tls_too(certs):
    """TLS cannot half-close: the client's bytes are read and dropped all the same."""
    with serve(basic.echo, limit_request_body=1024, ssl_certfile=certs.server, ssl_keyfile=certs.server_key) as server:
        for _ in range(2):
            connection = http.client.HTTPSConnection("localhost", server.port, timeout=10, context=certs.client_context())
            try:
                connection.request("POST", "/echo", body=b"x" * BODY)
                response = connection.getresponse()
                assert response.status == 413
                assert b"exceeds the limit of 1024 bytes" in response.read()
            finally:
                connection.close()
