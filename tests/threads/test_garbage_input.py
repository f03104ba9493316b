"""Garbage on the wire never takes a worker down: each bad connection gets a 4xx or a close."""

from __future__ import annotations

import random
import socket

import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        choice = rng.random()
        pos = rng.randrange(len(out) + 1)
        if choice < 0.4 and out:
            out[min(pos, len(out) - 1)] = rng.randrange(256)
        elif choice < 0.7:
            out[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del out[pos : pos + rng.randint(1, 8)]
    return bytes(out)


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_mutated_requests_get_an_answer_or_a_close(http1):
    rng = random.Random(1234)
    with serve(basic.echo, http1=http1, timeout_keep_alive=1) as server:
        for _ in range(150):
            payload = mutate(rng, rng.choice(SEEDS))
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)  # nothing more is coming: the server must finish
                data = b""
                try:
                    while chunk := sock.recv(65536):
                        data += chunk
                except ConnectionResetError:
                    pass
            if data:
                assert data.startswith(b"HTTP/1.1 "), (payload, data[:100])
                status = int(data[9:12])
                # 4xx, or 501/505 for a coding or version we do not implement; never a 500
                assert status < 500 or status in (501, 505), (payload, data[:200])
        # and the server still serves normal traffic
        assert httpx.post(server.url, content=b"alive").content == b"alive"
