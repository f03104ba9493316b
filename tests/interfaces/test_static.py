"""Static files served without the application (``--static-path-*``) and the ASGI
``http.response.pathsend`` extension, with httpx, curl and raw sockets."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import httpx
import pytest

from ftserver.config import Config, ConfigError
from ftserver.interfaces.static import parse_range
from ftserver.testing import serve

CALLS: list[str] = []


async def counting_app(scope, receive, send):
    if scope["type"] != "http":
        return
    CALLS.append(scope["path"])
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"from the app"})


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "css" / "main.css").write_text("body { color: red }\n")
    (root / "hello.txt").write_bytes(b"0123456789")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    os.symlink(root / "hello.txt", root / "alias.txt")
    return root


def raw_get(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_files_are_served_with_validators_and_without_the_app(site):
    CALLS.clear()
    with serve(counting_app, static_path_mount=[str(site)], threads=1) as server:
        response = httpx.get(server.url + "/static/css/main.css")
        assert response.status_code == 200
        assert response.text == "body { color: red }\n"
        assert response.headers["content-type"] == "text/css; charset=utf-8"
        assert response.headers["content-length"] == "20"
        assert response.headers["cache-control"] == "max-age=86400"
        assert response.headers["accept-ranges"] == "bytes"
        etag, modified = response.headers["etag"], response.headers["last-modified"]
        head = httpx.head(server.url + "/static/css/main.css")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == "20"
        assert httpx.get(server.url + "/static/css/main.css", headers={"if-none-match": etag}).status_code == 304
        assert httpx.get(server.url + "/static/css/main.css", headers={"if-none-match": f'"x", W/{etag}'}).status_code == 304
        assert httpx.get(server.url + "/static/css/main.css", headers={"if-none-match": '"other"'}).status_code == 200
        not_modified = httpx.get(server.url + "/static/css/main.css", headers={"if-modified-since": modified})
        assert not_modified.status_code == 304 and not_modified.content == b"" and not_modified.headers["etag"] == etag
        old = "Mon, 01 Jan 2001 00:00:00 GMT"
        assert httpx.get(server.url + "/static/css/main.css", headers={"if-modified-since": old}).status_code == 200
        assert httpx.get(server.url + "/static/alias.txt").content == b"0123456789"  # a symlink inside the mount
        assert httpx.get(server.url + "/elsewhere").text == "from the app"
        assert httpx.get(server.url + "/staticfile").text == "from the app"  # not under the route
    assert CALLS == ["/elsewhere", "/staticfile"]


def test_ranges(site):
    with serve(counting_app, static_path_mount=[str(site)], threads=1) as server:
        url = server.url + "/static/hello.txt"
        part = httpx.get(url, headers={"range": "bytes=2-5"})
        assert (part.status_code, part.content, part.headers["content-range"]) == (206, b"2345", "bytes 2-5/10")
        assert httpx.get(url, headers={"range": "bytes=-3"}).content == b"789"
        assert httpx.get(url, headers={"range": "bytes=7-"}).content == b"789"
        assert httpx.get(url, headers={"range": "bytes=8-100"}).content == b"89"
        bad = httpx.get(url, headers={"range": "bytes=10-"})
        assert (bad.status_code, bad.headers["content-range"]) == (416, "bytes */10")
        whole = httpx.get(url, headers={"range": "bytes=0-1,4-5"})  # several ranges: the whole file
        assert (whole.status_code, whole.content) == (200, b"0123456789")
        assert httpx.get(url, headers={"range": "bytes=2-5", "if-range": '"stale"'}).status_code == 200
        etag = whole.headers["etag"]
        assert httpx.get(url, headers={"range": "bytes=2-5", "if-range": etag}).status_code == 206
        big = httpx.get(server.url + "/static/big.bin", headers={"range": "bytes=1000000-"})
        assert big.status_code == 206 and big.content == (site / "big.bin").read_bytes()[1000000:]


def test_a_large_file_goes_out_whole(site):
    with serve(counting_app, static_path_mount=[str(site)], threads=1) as server:
        assert httpx.get(server.url + "/static/big.bin").content == (site / "big.bin").read_bytes()
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-s", "-o", "-", server.url + "/static/big.bin"], capture_output=True, timeout=60)
            assert out.stdout == (site / "big.bin").read_bytes()


@pytest.mark.parametrize(
    "target",
    [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/css/..%2f..%2fsecret.txt",
        "/static/..\\secret.txt",
        "/static/%5c..%5csecret.txt",
        "/static/hello.txt%00.css",
        "/static/leak.txt",  # a symlink pointing out of the mount
        "/static/missing.txt",
        "/static/css",  # a directory, no index file configured
        "/static/docs",  # one with index.html, no index file configured: no redirect either
        "/static/",
    ],
)
def test_nothing_outside_the_mount_is_reachable(site, target):
    with serve(counting_app, static_path_mount=[str(site)], threads=1) as server:
        response = raw_get(server.port, target)
    assert response.startswith(b"HTTP/1.1 404 "), response[:200]
    assert b"secret" not in response


def test_index_files_several_mounts_and_other_methods(site, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.json").write_text("{}")
    with serve(
        counting_app,
        static_path_route=["/assets", "/assets/deep", "/"],
        static_path_mount=[str(site), str(other), str(site / "docs")],
        static_path_dir_to_file="index.html",
        static_path_expires=0,
        threads=1,
    ) as server:
        docs = httpx.get(server.url + "/assets/docs/")
        assert docs.text == "<h1>docs</h1>" and docs.headers["content-type"] == "text/html; charset=utf-8"
        assert "cache-control" not in docs.headers
        assert httpx.get(server.url + "/assets/docs", follow_redirects=True).text == "<h1>docs</h1>"
        assert httpx.get(server.url + "/assets/deep/a.json").headers["content-type"] == "application/json; charset=utf-8"
        assert httpx.get(server.url + "/index.html?x=1").text == "<h1>docs</h1>"
        post = httpx.post(server.url + "/assets/hello.txt", content=b"x")
        assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")


def test_a_directory_without_its_trailing_slash_is_redirected(site, tmp_path):
    (site / "my dir").mkdir()
    (site / "my dir" / "index.html").write_text("<h1>spaced</h1>")
    (site / "docs" / "sub").mkdir()  # a directory without the index file
    (site / "docs" / "inner").mkdir()
    (site / "docs" / "inner" / "index.html").write_text("<h1>inner</h1>")
    with serve(
        counting_app,
        static_path_route=["/assets", "/"],
        static_path_mount=[str(site), str(site / "docs")],
        static_path_dir_to_file="index.html",
        threads=1,
    ) as server:
        for target, location in [
            ("/assets/docs", b"/assets/docs/"),
            ("/assets/docs?a=1&b=%20", b"/assets/docs/?a=1&b=%20"),  # the query kept
            ("/assets/my%20dir", b"/assets/my%20dir/"),  # the path as received
            ("/assets//docs", b"/assets//docs/"),
            ("/inner", b"/inner/"),
            ("//inner", b"/inner/"),  # not //inner/: another host's URL
            ("///inner?x", b"/inner/?x"),
            ("http://x/assets/docs?q", b"/assets/docs/?q"),  # absolute form: its path
        ]:
            response = raw_get(server.port, target)
            assert response.startswith(b"HTTP/1.1 301 "), (target, response[:200])
            assert b"\r\nlocation: " + location + b"\r\n" in response.lower(), (target, response[:300])
        assert raw_get(server.port, "http://x/assets/hello.txt?v=1").endswith(b"\r\n\r\n0123456789")  # (was /hello.txtv=1)
        head = httpx.head(server.url + "/assets/docs")
        assert (head.status_code, head.headers["location"], head.content) == (301, "/assets/docs/", b"")
        assert httpx.get(server.url + "/assets/my%20dir", follow_redirects=True).text == "<h1>spaced</h1>"
        # The route itself (its mount's root has no index file) and a directory without one: 404.
        for target in ("/assets", "/assets/css", "/sub", "/assets/docs%2f", "/assets/docs/..", "/assets/%2e%2e"):
            assert raw_get(server.port, target).startswith(b"HTTP/1.1 404 "), target
        with httpx.Client(base_url=server.url, http1=False, http2=True) as h2:  # HTTP/2: the :path
            response = h2.get("/assets/my%20dir?q=%2F")
            assert (response.http_version, response.status_code) == ("HTTP/2", 301)
            assert response.headers["location"] == "/assets/my%20dir/?q=%2F"
        if shutil.which("curl"):
            out = subprocess.run(["curl", "-sSL", server.url + "/assets/docs?x=1"], capture_output=True, timeout=30, check=True)
            assert out.stdout == b"<h1>docs</h1>"
    with serve(counting_app, static_path_mount=[str(site / "docs")], static_path_dir_to_file="index.html", threads=1) as server:
        response = raw_get(server.port, "/static?v=2")  # the route itself names its mount's root
        assert response.startswith(b"HTTP/1.1 301 ") and b"\r\nlocation: /static/?v=2\r\n" in response.lower()
        assert httpx.get(server.url + "/static", follow_redirects=True).text == "<h1>docs</h1>"


def test_parse_range():
    assert parse_range(b"bytes=0-0", 10) == (0, 1)
    assert parse_range(b"bytes=-20", 10) == (0, 10)
    assert parse_range(b"bytes=5-2", 10) is None
    assert parse_range(b"items=0-1", 10) is None
    assert parse_range(b"bytes=x-1", 10) is None
    assert parse_range(b"bytes=-0", 10) is False
    assert parse_range(b"bytes=0-", 0) is False


def test_static_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="not a directory"):
        Config(app="a:b", static_path_mount=[str(tmp_path / "none")])
    with pytest.raises(ConfigError, match="one --static-path-route per --static-path-mount"):
        Config(app="a:b", static_path_mount=[str(tmp_path), str(tmp_path)])
    with pytest.raises(ConfigError, match="needs a --static-path-mount"):
        Config(app="a:b", static_path_route=["/s"])
    with pytest.raises(ConfigError, match="must be a path"):
        Config(app="a:b", static_path_route=["s"], static_path_mount=[str(tmp_path)])
    assert Config(app="a:b", static_path_mount=[str(tmp_path)]).static_routes == (("/static", str(tmp_path)),)


def pathsend_app(path):
    async def app(scope, receive, send):
        assert scope["extensions"]["http.response.pathsend"] == {}
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


@pytest.mark.parametrize("name", ["hello.txt", "big.bin"])
def test_asgi_pathsend(site, name):
    with serve(pathsend_app(site / name), threads=1) as server:
        response = httpx.get(server.url + "/")
        assert response.content == (site / name).read_bytes()
        assert response.headers["content-length"] == str((site / name).stat().st_size)
        head = httpx.head(server.url + "/")
        assert head.content == b"" and head.headers["content-length"] == str((site / name).stat().st_size)


def test_starlette_file_response_uses_pathsend(site):
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    sent: list[str] = []

    async def download(request):
        return FileResponse(site / "big.bin")

    inner = Starlette(routes=[Route("/f", download)])

    async def app(scope, receive, send):
        async def spy(message):
            sent.append(message["type"])
            await send(message)

        await inner(scope, receive, spy)

    with serve(app, threads=1, lifespan="off") as server:
        assert httpx.get(server.url + "/f").content == (site / "big.bin").read_bytes()
    assert "http.response.pathsend" in sent
