"""HTTP/1.1 request semantics through real sockets, in both parser modes: invalid Host values
and chunk extensions are answered 400 (and nothing after them is served), a chunk-size past
the body limit 413 at once, and an absolute-form target's authority is the host every
interface (ASGI, WSGI, RSGI) shows the application.
"""

from __future__ import annotations

import json
import socket

import pytest

from ftserver.testing import serve
from tests.conftest import RawClient
from tests.protocols.test_differential import CHUNKED_HEAD, HOSTILE, SMUGGLED

MODES = ["fast", "h11"]


class Recorder:
    """An ASGI app answering 200 with its path; the paths it served, in order."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        self.paths.append(scope["path"])
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def exchange(address: int | str, data: bytes) -> bytes:
    """Send ``data`` to a TCP port or a Unix socket path, then read until the server
    closes (bounded by a generous timeout)."""
    if isinstance(address, int):
        client = RawClient(address, timeout=10)
        try:
            client.send(data)
            return client.read_until_closed(limit=30)
        finally:
            client.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(data)
        return sock.makefile("rb").read()


@pytest.mark.parametrize("http1", MODES)
def test_hostile_requests_are_refused_and_nothing_after_them_is_served(http1: str) -> None:
    app = Recorder()
    with serve(app, http1=http1, limit_request_body=1 << 20, timeout_keep_alive=5) as server:
        for raw, status in HOSTILE:
            # The connection stays open on our side: the server must answer and close.
            answer = exchange(server.port, raw + SMUGGLED)
            assert answer.startswith(b"HTTP/1.1 %d " % status), (raw, answer[:200])
            assert answer.count(b"HTTP/1.1 ") == 1, (raw, answer)
        assert "/smuggled" not in app.paths


@pytest.mark.parametrize("http1", MODES)
def test_a_chunk_size_past_any_body_is_413_without_a_body_limit(http1: str) -> None:
    # Unlimited bodies (the default) still end below 2**63: h11 alone would wait for the data.
    with serve(Recorder(), http1=http1) as server:
        answer = exchange(server.port, CHUNKED_HEAD + b"ffffffffffffffff\r\n")
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]


def absolute_form(target_host: bytes) -> bytes:
    return b"GET http://" + target_host + b"/abs?q=1 HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n"


def body_of(answer: bytes) -> bytes:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer[:300]
    return body


async def asgi_hosts(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    hosts = [value.decode() for name, value in scope["headers"] if name == b"host"]
    body = json.dumps({"hosts": hosts, "path": scope["path"], "server": scope["server"]}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def wsgi_hosts(environ, start_response):
    body = json.dumps({key: environ.get(key) for key in ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "PATH_INFO")})
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body.encode()]


class RSGIHosts:
    async def __rsgi__(self, scope, proto) -> None:
        body = json.dumps({"hosts": scope.headers.get_all("host"), "authority": scope.authority, "path": scope.path})
        proto.response_str(200, [("content-length", str(len(body)))], body)


@pytest.mark.parametrize("http1", MODES)
def test_absolute_form_authority_replaces_host_for_asgi(http1: str) -> None:
    with serve(asgi_hosts, http1=http1) as server:
        seen = json.loads(body_of(exchange(server.port, absolute_form(b"good.example:81"))))
    assert seen["hosts"] == ["good.example:81"] and seen["path"] == "/abs"
    # ``server`` is the socket's address (ASGI), not the requested authority.
    assert seen["server"] == ["127.0.0.1", server.port]


@pytest.mark.parametrize("http1", MODES)
def test_absolute_form_authority_replaces_host_for_wsgi(http1: str, tmp_path) -> None:
    with serve(wsgi_hosts, interface="wsgi", http1=http1) as server:
        seen = json.loads(body_of(exchange(server.port, absolute_form(b"good.example"))))
    assert seen["HTTP_HOST"] == "good.example" and seen["PATH_INFO"] == "/abs"
    assert seen["SERVER_NAME"] == "127.0.0.1"  # the socket's, as ASGI's ``server``
    # On a Unix socket the server's name comes from the host the request names.
    path = str(tmp_path / "s.sock")
    with serve(wsgi_hosts, interface="wsgi", http1=http1, uds=path, accept="queue") as server:
        seen = json.loads(body_of(exchange(path, absolute_form(b"good.example:81"))))
    assert (seen["HTTP_HOST"], seen["SERVER_NAME"], seen["SERVER_PORT"]) == ("good.example:81", "good.example", "81")


@pytest.mark.parametrize("http1", MODES)
def test_absolute_form_authority_replaces_host_for_rsgi(http1: str) -> None:
    with serve(RSGIHosts(), interface="rsgi", http1=http1) as server:
        seen = json.loads(body_of(exchange(server.port, absolute_form(b"good.example"))))
    # RSGI's ``authority`` is None on HTTP/1 (as Granian): the Host field carries it.
    assert seen == {"hosts": ["good.example"], "authority": None, "path": "/abs"}


@pytest.mark.parametrize("http1", MODES)
def test_valid_hosts_are_served(http1: str) -> None:
    app = Recorder()
    hosts = [b"example.com", b"EXAMPLE.com:8080", b"127.0.0.1:1", b"[::1]:8000", b"", b"a%2Db", b"xn--nxasmq6b"]
    with serve(app, http1=http1) as server:
        for host in hosts:
            raw = b"GET /ok HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
            assert body_of(exchange(server.port, raw)) == b"ok", host
