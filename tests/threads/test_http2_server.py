"""HTTP/2 through real sockets and real clients: httpx, curl, nghttp, h2load, and h2's own
client object; ASGI, WSGI and RSGI apps served through the same exchanges as HTTP/1.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

import h2.events
import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic
from tests.threads.h2client import H2Client


def h2_client(**kwargs) -> httpx.Client:
    """httpx speaking HTTP/2 with prior knowledge on http:// URLs."""
    return httpx.Client(http1=False, http2=True, timeout=10, **kwargs)


async def headers_app(scope, receive, send):
    """Answers with the scope as JSON (http_version, headers, path...)."""
    while (await receive()).get("more_body"):
        pass
    data = {
        "http_version": scope["http_version"],
        "method": scope["method"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode(),
        "scheme": scope["scheme"],
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
    }
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def status_app(scope, receive, send):
    """``/<status>``: that status, with a body the server must drop for 204/304/HEAD."""
    status = int(scope["path"][1:] or 200)
    await send({"type": "http.response.start", "status": status, "headers": [(b"x-status", str(status).encode())]})
    await send({"type": "http.response.body", "body": b"some body"})


async def trailers_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
    await send({"type": "http.response.body", "body": b"data", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})


def test_httpx_prior_knowledge_get_post_stream():
    with serve(basic.echo) as server:
        with h2_client() as client:
            for _ in range(3):
                r = client.post(server.url + "/", content=b"hello")
                assert r.http_version == "HTTP/2"
                assert r.content == b"hello"
            body = bytes(range(256)) * 8192  # 2 MiB: many times the 64 KiB windows
            r = client.post(server.url + "/", content=body)
            assert r.content == body
    with serve(basic.stream) as server:
        with h2_client() as client:
            r = client.get(server.url + "/")
            assert r.http_version == "HTTP/2"
            assert r.text == "".join(f"chunk {i}\n" for i in range(5))
    assert server.stats()["requests"] == 1


def test_scope_over_h2_authority_cookies():
    with serve(headers_app) as server:
        with h2_client() as client:
            r = client.get(server.url + "/p%20q?x=1", headers=[("cookie", "a=1"), ("cookie", "b=2")])
    data = r.json()
    assert data["http_version"] == "2"
    assert data["path"] == "/p q" and data["query_string"] == "x=1"
    headers = data["headers"]
    # :authority becomes the host field, first (ASGI); no pseudo-header reaches the app
    assert headers[0] == ["host", server.url.split("//")[1]]
    assert not any(name.startswith(":") for name, _ in headers)
    assert ["cookie", "a=1; b=2"] in headers


def test_head_204_304_have_no_data():
    with serve(status_app) as server:
        client = H2Client(server.port)
        try:
            for method, path, length in (("HEAD", "/200", b"9"), ("GET", "/204", None), ("GET", "/304", None)):
                stream_id = client.request(path, method)
                headers, body, last = client.response(stream_id)
                assert isinstance(last, h2.events.StreamEnded)
                assert body == b""
                assert headers.get(b"content-length") == length
                # the stream ended with its HEADERS frame: no DATA frame at all
                assert not any(isinstance(e, h2.events.DataReceived) and e.stream_id == stream_id for e in client.events)
        finally:
            client.close()


def test_trailers_only_for_te_trailers():
    with serve(trailers_app) as server:
        client = H2Client(server.port)
        try:
            with_te = client.request("/", headers=[(b"te", b"trailers")])
            _, body, last = client.response(with_te)
            assert body == b"data"
            trailers = [e for e in client.events if isinstance(e, h2.events.TrailersReceived) and e.stream_id == with_te]
            assert trailers and dict(trailers[0].headers)[b"x-checksum"] == b"abc"
            without = client.request("/")
            _, body, last = client.response(without)
            assert body == b"data" and isinstance(last, h2.events.StreamEnded)
            assert not [e for e in client.events if isinstance(e, h2.events.TrailersReceived) and e.stream_id == without]
        finally:
            client.close()


def test_app_crash_is_500_and_connection_lives_on():
    with serve(basic.crash) as server:
        with h2_client() as client:
            for _ in range(2):
                r = client.get(server.url + "/")
                assert r.status_code == 500 and r.text == "Internal Server Error"


def test_wsgi_over_h2():
    def app(environ, start_response):
        body = json.dumps({"protocol": environ["SERVER_PROTOCOL"], "host": environ.get("HTTP_HOST"), "input": environ["wsgi.input"].read().decode()}).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Connection", "close")])
        return [body]

    with serve(app, interface="wsgi") as server:
        with h2_client() as client:
            r = client.post(server.url + "/w", content=b"posted")
    assert r.http_version == "HTTP/2"
    assert r.json() == {"protocol": "HTTP/2", "host": server.url.split("//")[1], "input": "posted"}
    assert "connection" not in r.headers  # connection-specific: dropped on HTTP/2


def test_rsgi_over_h2():
    class App:
        async def __rsgi__(self, scope, proto):
            body = await proto()
            info = {"version": scope.http_version, "authority": scope.authority, "body": body.decode()}
            proto.response_bytes(200, [("content-type", "application/json")], json.dumps(info).encode())

    with serve(App(), interface="rsgi") as server:
        with h2_client() as client:
            r = client.post(server.url + "/r", content=b"xyz")
    assert r.json() == {"version": "2", "authority": server.url.split("//")[1], "body": "xyz"}


def test_wsgi_file_wrapper_over_h2(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 1024)  # 256 KiB: more than a window

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    with serve(app, interface="wsgi") as server:
        with h2_client() as client:
            r = client.get(server.url + "/")
    assert r.content == path.read_bytes()
    assert r.headers["content-length"] == str(256 * 1024)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_prior_knowledge_and_upgrade():
    with serve(basic.echo) as server:
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-d", "prior", "-w", " %{http_version}", server.url + "/"], capture_output=True, timeout=30)
        assert out.stdout == b"prior 2", out
        # Upgrade: h2c, with a request body: the upgraded request is stream 1
        out = subprocess.run(["curl", "-sS", "--http2", "-d", "upgraded", "-w", " %{http_version}", server.url + "/"], capture_output=True, timeout=30)
        assert out.stdout == b"upgraded 2", out
        out = subprocess.run(["curl", "-sS", "--http2", "-w", " %{http_version}", server.url + "/"], capture_output=True, timeout=30)
        assert out.stdout == b" 2", out


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp not installed")
def test_nghttp_frame_trace():
    with serve(basic.hello) as server:
        out = subprocess.run(["nghttp", "-nv", server.url + "/"], capture_output=True, timeout=30, text=True)
    assert out.returncode == 0, out.stderr
    assert "recv SETTINGS frame" in out.stdout
    assert ":status: 200" in out.stdout
    assert "recv DATA frame <length=13, flags=0x01" in out.stdout  # END_STREAM on the data


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
def test_h2load_many_streams_per_connection():
    with serve(basic.hello) as server:
        out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", server.url + "/"], capture_output=True, timeout=60, text=True)
    assert "2000 succeeded, 0 failed, 0 errored, 0 timeout" in out.stdout, out.stdout
    assert "2000 2xx" in out.stdout


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
def test_h2load_upgrade_and_bodies():
    with serve(basic.echo) as server:
        out = subprocess.run(
            ["h2load", "-n", "200", "-c", "2", "-m", "5", "-d", __file__, server.url + "/"], capture_output=True, timeout=60, text=True
        )
        assert "200 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout
        out = subprocess.run(["h2load", "-n", "50", "-c", "2", "--h1", server.url + "/"], capture_output=True, timeout=60, text=True)
        assert "50 succeeded" in out.stdout, out.stdout


def test_http1_still_served_and_http_1_mode_refuses_h2():
    with serve(basic.hello) as server:
        assert httpx.get(server.url + "/").http_version == "HTTP/1.1"
    with serve(basic.hello, http="1") as server:
        # Refused: the 400 is read, or the close resets the connection first (the client's
        # SETTINGS frame is left unread), depending on timing.
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            with h2_client() as client:
                client.get(server.url + "/")
        assert httpx.get(server.url + "/").status_code == 200


def test_http_2_mode_answers_http1_clients_505():
    with serve(basic.hello, http="2") as server:
        r = httpx.get(server.url + "/")
        assert r.status_code == 505
        with h2_client() as client:
            assert client.get(server.url + "/").text == "Hello, world!"


def test_streams_interleave_on_one_connection():
    """Two slow responses on one connection progress together."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await asyncio.sleep(0.05)
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as server:
        client = H2Client(server.port)
        try:
            first, second = client.request("/a"), client.request("/b")
            assert client.response(first)[1] == b"xxx"
            assert client.response(second)[1] == b"xxx"
        finally:
            client.close()
