"""``--header NAME:VALUE`` through real sockets: every kind of response gets the default
fields (ASGI, WSGI, RSGI, static files, the server's own error answers, a WebSocket's 101,
HTTP/1.1 and HTTP/2), none twice, and a field the app sets itself wins."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest
from websockets.sync.client import connect

from ftserver.testing import serve
from tests.apps import basic
from tests.ftserve_process import ROOT, ftserve  # noqa: F401 - the fixture

HEADERS = ("X-Frame-Options: DENY", "strict-transport-security:max-age=63072000; includeSubDomains")
HSTS = "max-age=63072000; includeSubDomains"


async def asgi_app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
        return
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/own":
        headers.append((b"X-Frame-Options", b"SAMEORIGIN"))
    if scope["path"] == "/crash":
        raise RuntimeError("boom (expected by the test)")
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hi"})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"hi"]


class RSGIApp:
    async def __rsgi__(self, scope, proto):
        proto.response_str(200, [("content-type", "text/plain"), ("x-frame-options", "rsgi")], "hi")


def check(headers: httpx.Headers, frame: str = "DENY") -> None:
    assert headers.get_list("x-frame-options") == [frame]
    assert headers.get_list("strict-transport-security") == [HSTS]
    assert headers.get_list("server") == ["ftserver"]


def raw_head(port: int, request: bytes) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_asgi_http1_and_http2(http1):
    with serve(asgi_app, headers=HEADERS, http1=http1) as server:
        with httpx.Client(base_url=server.url) as client:
            check(client.get("/").headers)
            own = client.get("/own").headers
            check(own, frame="SAMEORIGIN")
            crashed = client.get("/crash")  # the server's 500
            assert crashed.status_code == 500
            check(crashed.headers)
        with httpx.Client(base_url=server.url, http1=False, http2=True) as client:
            response = client.get("/")
            assert response.http_version == "HTTP/2"
            check(response.headers)
            check(client.get("/own").headers, frame="SAMEORIGIN")
            check(client.get("/crash").headers)


def test_server_error_answers():
    with serve(basic.hello, headers=HEADERS, timeout_header_read=1.0) as server:
        lines = raw_head(server.port, b"NOT A REQUEST\r\n\r\n")
        assert lines[0].startswith("HTTP/1.1 400")
        assert "x-frame-options: DENY" in lines and f"strict-transport-security: {HSTS}" in lines
        lines = raw_head(server.port, b"GET / HTTP/1.1\r\nHost: a\r\nX: ")  # a head that never ends: 408
        assert lines[0].startswith("HTTP/1.1 408")
        assert "x-frame-options: DENY" in lines


def test_wsgi_rsgi_and_static_files(tmp_path):
    (tmp_path / "a.txt").write_text("static")
    with serve(wsgi_app, headers=HEADERS, static_path_mount=(str(tmp_path),)) as server:
        check(httpx.get(server.url + "/").headers)
        static = httpx.get(server.url + "/static/a.txt")
        assert static.text == "static"
        check(static.headers)
        missing = httpx.get(server.url + "/static/none.txt")
        assert missing.status_code == 404
        check(missing.headers)
    with serve(RSGIApp(), headers=HEADERS) as server:
        check(httpx.get(server.url + "/").headers, frame="rsgi")


def test_websocket_handshake():
    with serve(asgi_app, headers=HEADERS) as server:
        with connect(f"ws://127.0.0.1:{server.port}/") as ws:
            headers = ws.response.headers
            assert ws.response.status_code == 101
            assert headers.get_all("x-frame-options") == ["DENY"]
            assert headers.get_all("strict-transport-security") == [HSTS]


def test_server_header_is_replaced_by_a_header_option():
    with serve(basic.hello, headers=("server: edge",), server_header=False) as server:
        assert httpx.get(server.url + "/").headers.get_list("server") == ["edge"]


def test_cli_env_variable_and_worker_processes(ftserve):  # noqa: F811
    env = {"FTSERVE_HEADER": "X-Frame-Options: DENY\nstrict-transport-security: " + HSTS + "\n"}
    served = ftserve("--workers", "2", env=env, app="tests.apps.basic:hello")
    served.wait_workers(2)
    for _ in range(4):
        with httpx.Client() as client:  # a connection each: both processes answer some
            check(client.get(served.url + "/").headers)


@pytest.mark.parametrize("value, why", [("X-A", "is not NAME:VALUE"), ("Content-Length: 1", "set by the server"), ("bad name: x", "not a header name")])
def test_cli_refuses_a_bad_header_in_one_line(value, why):
    result = subprocess.run(
        [sys.executable, "-m", "ftserver", "--header", value, "tests.apps.basic:hello"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error) == 1 and why in error[0] and "--header" in error[0]
