"""``--proxy-headers``: the client, scheme and host forwarded by trusted proxies reach ASGI,
WSGI and RSGI apps and the access log; untrusted peers and malformed values change nothing.
Also behind a real nginx."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

import httpx
import pytest

from ftserver.config import Config, ConfigError
from ftserver.net import parse_trusted
from ftserver.testing import serve
from tests.apps.basic import scope_json


def wsgi_environ(environ, start_response):
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME", "SERVER_PORT")
    body = json.dumps({key: environ.get(key) for key in keys}).encode()
    start_response("200 OK", [("content-type", "application/json")])
    return [body]


class RSGIScope:
    async def __rsgi__(self, scope, protocol):
        body = json.dumps({"client": scope.client, "scheme": scope.scheme, "host": scope.headers.get("host")})
        protocol.response_str(200, [("content-type", "application/json")], body)


def get(server, headers):
    response = httpx.get(server.url + "/p", headers=headers)
    assert response.status_code == 200
    return response.json()


def test_x_forwarded_headers_from_a_trusted_chain():
    with serve(scope_json, proxy_headers=True, forwarded_allow_ips="127.0.0.1, 10.0.0.0/8", threads=1) as server:
        scope = get(server, {"x-forwarded-for": "203.0.113.7, 10.1.2.3", "x-forwarded-proto": "https", "x-forwarded-host": "example.com"})
        assert scope["client"] == ["203.0.113.7", 0]
        assert scope["scheme"] == "https"
        assert ["host", "example.com"] in scope["headers"]
        assert scope["server"] == ["example.com", server.port]
        # The rightmost untrusted address wins, not the leftmost (which the client may forge).
        scope = get(server, {"x-forwarded-for": "1.1.1.1, 198.51.100.2, 10.1.2.3"})
        assert scope["client"] == ["198.51.100.2", 0] and scope["scheme"] == "http"
        scope = get(server, {"x-forwarded-for": "10.9.9.9", "x-forwarded-port": "8443", "x-forwarded-host": "h.example:9000"})
        assert scope["client"] == ["10.9.9.9", 0]  # every hop trusted: the leftmost
        assert scope["server"] == ["h.example", 8443]


def test_each_request_of_a_keep_alive_connection_gets_its_own_forwarded_values():
    # The scope of a connection's requests starts from a per-connection base: a request with
    # forwarded values after one without (on the same connection) must not see the first's.
    with serve(scope_json, proxy_headers=True, threads=1) as server, httpx.Client() as client:
        first = client.get(server.url + "/p").json()
        second = client.get(server.url + "/p", headers={"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}).json()
        third = client.get(server.url + "/p").json()
    assert first["client"][0] == "127.0.0.1" and first["scheme"] == "http"
    assert second["client"] == ["203.0.113.7", 0] and second["scheme"] == "https"
    assert third["client"] == first["client"] and third["scheme"] == "http"


def test_rfc7239_forwarded_wins():
    with serve(scope_json, proxy_headers=True, threads=1) as server:
        scope = get(server, {
            "forwarded": 'for="[2001:db8::1]:4711";proto=https;host="api.example", for=127.0.0.1',
            "x-forwarded-for": "192.0.2.99",
        })
        assert scope["client"] == ["2001:db8::1", 0]
        assert scope["scheme"] == "https"
        assert ["host", "api.example"] in scope["headers"]


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-for": "not-an-address", "x-forwarded-proto": "gopher"},
        {"forwarded": 'for=";;;'},
        {"forwarded": "for=_hidden;proto=ftp"},
        {"x-forwarded-host": "bad host/with space", "x-forwarded-port": "http"},
        {"x-forwarded-for": ""},
    ],
)
def test_malformed_values_are_ignored(headers):
    with serve(scope_json, proxy_headers=True, threads=1) as server:
        scope = get(server, headers)
    assert scope["client"][0] == "127.0.0.1" and scope["client"][1] != 0
    assert scope["scheme"] == "http"
    assert ["host", f"127.0.0.1:{server.port}"] in scope["headers"]


def test_untrusted_peers_and_the_option_off_change_nothing():
    forged = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https"}
    with serve(scope_json, proxy_headers=True, forwarded_allow_ips="10.0.0.1", threads=1) as server:
        scope = get(server, forged)
        assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"
    with serve(scope_json, threads=1) as server:
        scope = get(server, forged)
        assert scope["client"][0] == "127.0.0.1" and scope["scheme"] == "http"


def test_wsgi_and_rsgi_see_the_forwarded_values():
    forwarded = {"x-forwarded-for": "203.0.113.7", "x-forwarded-proto": "https", "x-forwarded-host": "shop.example"}
    with serve(wsgi_environ, proxy_headers=True, threads=1) as server:
        environ = get(server, forwarded)
    assert environ["REMOTE_ADDR"] == "203.0.113.7"
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == "shop.example"
    with serve(RSGIScope(), proxy_headers=True, threads=1) as server:
        scope = get(server, forwarded)
    assert scope["client"].startswith("203.0.113.7")
    assert scope["scheme"] == "https"
    assert scope["host"] == "shop.example"


def test_the_access_log_shows_the_forwarded_client(tmp_path):
    from tests.test_cli import start, stop

    log = tmp_path / "access.log"
    proc, url = start("--no-supervisor", "--proxy-headers", "--access-log-file", str(log), "tests.apps.basic:hello")
    try:
        assert httpx.get(url + "/x", headers={"x-forwarded-for": "203.0.113.9"}).status_code == 200
    finally:
        stop(proc)
    assert ' 203.0.113.9:0 - "GET /x HTTP/1.1" 200 ' in log.read_text()


def test_trusted_peers():
    peers = parse_trusted("127.0.0.1,10.0.0.0/8, ::1")
    assert "10.200.1.1" in peers and "127.0.0.1" in peers and "::1" in peers and "[::1]" in peers
    assert "11.0.0.1" not in peers and None not in peers and "junk" not in peers
    assert None in parse_trusted("unix") and "8.8.8.8" in parse_trusted("*")
    with pytest.raises(ConfigError, match="forwarded_allow_ips: 'nope' is not an IP address"):
        Config(app="a:b", forwarded_allow_ips="127.0.0.1,nope")


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $host:$server_port;
        }}
    }}
}}
"""


@pytest.mark.skipif(shutil.which("nginx") is None and not __import__("os").path.exists("/usr/sbin/nginx"), reason="nginx is not installed")
def test_behind_nginx(tmp_path):
    import socket

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with serve(scope_json, proxy_headers=True, threads=1) as server:
        (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp_path, port=port, upstream=server.port))
        proc = subprocess.Popen([nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/via", headers={"x-forwarded-for": "6.6.6.6"})
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise AssertionError(f"nginx did not start: {(tmp_path / 'error.log').read_text() if (tmp_path / 'error.log').exists() else ''}") from None
                    time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(10)
    scope = response.json()
    # nginx appended the peer it saw (127.0.0.1, trusted) to the client's (forged, untrusted) value.
    assert scope["client"] == ["6.6.6.6", 0]
    assert scope["scheme"] == "https"
    assert ["host", f"127.0.0.1:{port}"] in scope["headers"]
    assert scope["path"] == "/via"


async def websocket_client(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": f"{scope['client'][0]} {scope['scheme']}"})
        await send({"type": "websocket.close"})
    else:
        await scope_json(scope, receive, send)


def test_websockets_get_forwarded_values_and_still_work_behind_the_wrappers(tmp_path):
    """--proxy-headers and static files wrap the app's adapter: WebSocket handshakes still
    reach it, with the forwarded client."""
    from websockets.sync.client import connect

    with serve(websocket_client, proxy_headers=True, static_path_mount=[str(tmp_path)], threads=1) as server:
        url = server.url.replace("http://", "ws://")
        with connect(url + "/ws", additional_headers={"x-forwarded-for": "203.0.113.5", "x-forwarded-proto": "https"}) as ws:
            assert ws.recv(timeout=10) == "203.0.113.5 wss"
