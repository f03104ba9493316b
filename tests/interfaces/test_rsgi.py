"""RSGI (Granian's interface, spec 1.6) through real sockets: scope, body, every response
method, streaming with backpressure, files, client_disconnect, errors, worker hooks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading
import time

import httpx
import pytest

from ftserver.config import Config
from ftserver.interfaces import detect_interface
from ftserver.interfaces.rsgi import RSGIProtocolClosed, RSGIProtocolError
from ftserver.server import StartupError
from ftserver.testing import serve

BIG = 64 * 1024 * 1024  # streamed by the backpressure test, never held in memory at once


class Events:
    """What the apps observed, for the test thread to check (appended from worker threads)."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.changed = threading.Condition()

    def add(self, *item: object) -> None:
        with self.changed:
            self.items.append(item)
            self.changed.notify_all()

    def wait_for(self, name: str, timeout: float = 5.0) -> tuple:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for item in self.items:
                    if item[0] == name:
                        return item
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {name!r} event; got {self.items!r}")
                self.changed.wait(remaining)

    def named(self, name: str) -> list[tuple]:
        with self.changed:
            return [item for item in self.items if item[0] == name]


class App:
    """One RSGI app, routed by path, recording what it saw in ``events``."""

    def __init__(self, files: dict[str, str] | None = None) -> None:
        self.events = Events()
        self.files = files or {}

    async def __rsgi__(self, scope, proto) -> None:
        route = getattr(self, "r_" + scope.path.strip("/").split("/")[0].replace("-", "_"), None)
        if route is None:
            proto.response_str(404, [("content-type", "text/plain")], f"no route {scope.path}")
            return
        await route(scope, proto)

    async def r_scope(self, scope, proto):
        h = scope.headers
        info = {
            "proto": scope.proto,
            "rsgi_version": scope.rsgi_version,
            "http_version": scope.http_version,
            "server": scope.server,
            "client": scope.client,
            "scheme": scope.scheme,
            "method": scope.method,
            "path": scope.path,
            "query_string": scope.query_string,
            "authority": scope.authority,
            "get": h.get("X-Multi"),
            "get_missing": h.get("x-none", "dflt"),
            "get_all": h.get_all("x-multi"),
            "getitem": h["x-multi"],
            "contains": ["X-MULTI" in h, "x-none" in h],
            "keys": h.keys(),
            "values": h.values(),
            "items": h.items(),
            "len": len(h),
            "iter": list(h),
        }
        try:
            h["x-none"]
        except KeyError:
            info["keyerror"] = True
        proto.response_str(200, [("content-type", "application/json")], json.dumps(info))

    async def r_empty(self, scope, proto):
        status = int(scope.query_string or "200")
        proto.response_empty(status, [("x-empty", "yes")])

    async def r_str(self, scope, proto):
        proto.response_str(201, [("content-type", "text/plain; charset=utf-8"), ("set-cookie", "a=1"), ("set-cookie", "b=2")], "héllo")

    async def r_bytes(self, scope, proto):
        kind = scope.query_string
        body = {"bytes": b"raw", "bytearray": bytearray(b"raw"), "memoryview": memoryview(b"raw")}[kind]
        proto.response_bytes(200, [("x-value", "café")], body)

    async def r_read(self, scope, proto):
        body = await proto()
        try:
            await proto()
        except RSGIProtocolError:
            self.events.add("second-read-refused")
        proto.response_bytes(200, [], body)

    async def r_read_slow(self, scope, proto):
        await asyncio.sleep(0.2)  # the body arrives meanwhile, beyond the read high-water mark
        body = await proto()
        proto.response_str(200, [], str(len(body)))

    async def r_iter(self, scope, proto):
        delay = float(scope.query_string or "0")
        sizes = []
        async for chunk in proto:
            sizes.append(len(chunk))
            if delay:
                await asyncio.sleep(delay)
        proto.response_str(200, [], json.dumps({"count": len(sizes), "total": sum(sizes), "max": max(sizes, default=0)}))

    async def r_read_disconnect(self, scope, proto):
        try:
            await proto()
        except RSGIProtocolClosed:
            self.events.add("read-closed")
        else:
            self.events.add("read-complete")

    async def r_iter_disconnect(self, scope, proto):
        try:
            async for _ in proto:
                pass
        except RSGIProtocolClosed:
            self.events.add("iter-closed")
        else:
            self.events.add("iter-complete")

    async def r_stream(self, scope, proto):
        transport = proto.response_stream(200, [("content-type", "text/plain")])
        await transport.send_bytes(b"one,")
        await transport.send_str("two,")
        await transport.send_bytes(b"")
        await transport.send_str("three")

    async def r_stream_length(self, scope, proto):
        transport = proto.response_stream(200, [("content-length", "6")])
        await transport.send_bytes(b"abc")
        await transport.send_bytes(b"def")

    async def r_stream_big(self, scope, proto):
        chunk = b"z" * 65536
        transport = proto.response_stream(200, [("content-type", "application/octet-stream")])
        sent = 0
        try:
            while sent < BIG:
                await transport.send_bytes(chunk)
                sent += len(chunk)
                self.events.add("progress", sent)
        except RSGIProtocolClosed:
            self.events.add("stream-closed", sent)
            return
        self.events.add("stream-done", sent)

    async def r_stream_raise(self, scope, proto):
        transport = proto.response_stream(200, [])
        await transport.send_bytes(b"partial")
        raise ValueError("failed mid-stream")

    async def r_stream_after_return(self, scope, proto):
        transport = proto.response_stream(200, [])
        await transport.send_bytes(b"x")

        async def late():
            await asyncio.sleep(0.05)
            try:
                await transport.send_bytes(b"too late")
            except RSGIProtocolClosed:
                self.events.add("late-send-refused")

        asyncio.get_running_loop().create_task(late())

    async def r_file(self, scope, proto):
        proto.response_file(200, [("content-type", "application/octet-stream")], self.files[scope.query_string])

    async def r_range(self, scope, proto):
        name, start, end = scope.query_string.split(",")
        path = self.files[name]
        try:
            proto.response_file_range(206, [("content-range", f"bytes {start}-{end}")], path, int(start), int(end))
        except ValueError as exc:
            self.events.add("range-error", str(exc))
            raise

    async def r_disconnect(self, scope, proto):
        await proto.client_disconnect()
        self.events.add("client-gone")

    async def r_watch_after(self, scope, proto):
        async def watch():
            await proto.client_disconnect()
            self.events.add("watcher-released")

        asyncio.get_running_loop().create_task(watch())
        await asyncio.sleep(0)
        proto.response_str(200, [], "ok")

    async def r_raise(self, scope, proto):
        raise RuntimeError("app failure")

    async def r_nothing(self, scope, proto):
        return None

    async def r_twice(self, scope, proto):
        proto.response_str(200, [], "first")
        try:
            proto.response_str(500, [], "second")
        except RSGIProtocolError:
            self.events.add("second-response-refused")

    async def r_bad_status(self, scope, proto):
        proto.response_str(99, [], "x")

    async def r_bad_header(self, scope, proto):
        proto.response_str(200, [("x-evil", "a\r\nset-cookie: stolen")], "x")

    async def r_bytes_headers(self, scope, proto):
        proto.response_str(200, [(b"x", b"y")], "x")

    async def r_str_body_bytes(self, scope, proto):
        proto.response_str(200, [], b"not str")

    async def r_sleep(self, scope, proto):
        await asyncio.sleep(0.01)  # really suspends: finished by the host task
        proto.response_str(200, [], f"slept {asyncio.current_task() is not None}")


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send ``data`` and read until the server closes (``Connection: close`` requests)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def close_with_reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("rsgi-files")
    small = root / "small.txt"
    small.write_bytes(b"0123456789" * 100)
    big = root / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    (root / "dir").mkdir()
    return {"small": str(small), "big": str(big), "dir": str(root / "dir"), "missing": str(root / "missing")}


@pytest.fixture(scope="module")
def server(files):
    app = App(files)
    with serve(app, interface="rsgi", threads=1) as running:
        running.app = app
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


# -- scope ------------------------------------------------------------------------------


def test_scope_fields(server, client):
    r = client.get("/scope/a%20b/%C3%A9?x=%20&y=1", headers=[("X-Multi", "one"), ("x-multi", "two")])
    info = r.json()
    port = server.port
    assert info["proto"] == "http"
    assert info["rsgi_version"] == "1.6"
    assert info["http_version"] == "1.1"
    assert info["server"] == f"127.0.0.1:{port}"
    host, client_port = info["client"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(client_port) > 0
    assert info["scheme"] == "http"
    assert info["method"] == "GET"
    assert info["path"] == "/scope/a b/é"  # percent-decoded, as Granian does
    assert info["query_string"] == "x=%20&y=1"  # raw
    assert info["authority"] is None
    assert info["get"] == "one" and info["getitem"] == "one"
    assert info["get_missing"] == "dflt" and info["keyerror"]
    assert info["get_all"] == ["one", "two"]
    assert info["contains"] == [True, False]
    assert info["keys"] == list(dict.fromkeys(info["keys"])) and "x-multi" in info["keys"]
    assert info["len"] == len(info["keys"]) and info["iter"] == info["keys"]
    assert ["x-multi", "one"] in info["items"] and ["x-multi", "two"] in info["items"]
    assert info["values"] == [value for _, value in info["items"]]


def test_scope_http10_absolute_form_and_latin1_header(server):
    data = raw_request(
        server.port, b"GET http://example.com/scope/p?q=1 HTTP/1.0\r\nX-Multi: caf\xe9\r\n\r\n"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    info = json.loads(body)
    assert info["http_version"] == "1"  # spec: one of "1", "1.1" or "2"
    assert info["path"] == "/scope/p" and info["query_string"] == "q=1"
    assert info["get"] == "café"  # ISO-8859-1: every byte survives


# -- responses ----------------------------------------------------------------------------


def test_response_empty(client):
    r = client.get("/empty")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "0"
    assert r.headers["x-empty"] == "yes"
    r = client.get("/empty?204")
    assert r.status_code == 204 and "content-length" not in r.headers


def test_response_str_is_utf8_with_length_and_repeated_headers(client):
    r = client.get("/str")
    assert r.status_code == 201
    assert r.content == "héllo".encode()
    assert r.headers["content-length"] == str(len("héllo".encode()))
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert "transfer-encoding" not in r.headers


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview"])
def test_response_bytes(client, kind):
    r = client.get(f"/bytes?{kind}")
    assert r.status_code == 200 and r.content == b"raw"
    assert dict(r.headers.raw)[b"x-value"] == "café".encode()  # values go out as UTF-8, as in Granian


def test_head_gets_no_body(client):
    r = client.head("/str")
    assert r.status_code == 201 and r.content == b""


# -- request body -------------------------------------------------------------------------


def test_body_read_whole(server, client):
    r = client.post("/read", content=b"hello")
    assert r.content == b"hello"
    server.app.events.wait_for("second-read-refused")


def test_body_read_whole_large_and_chunked(client):
    payload = os.urandom(3 * 1024 * 1024)
    assert client.post("/read", content=payload).content == payload
    parts = [payload[i : i + 100_000] for i in range(0, len(payload), 100_000)]
    r = client.post("/read", content=iter(parts))  # chunked transfer coding
    assert r.content == payload


def test_body_read_whole_after_it_arrived_beyond_high_water(client):
    payload = b"q" * (2 * 1024 * 1024)
    assert client.post("/read-slow", content=payload).text == str(len(payload))


def test_body_empty(client):
    assert client.post("/read").content == b""
    assert client.get("/iter").json() == {"count": 0, "total": 0, "max": 0}


def test_body_streamed_chunked_request(client):
    parts = [bytes([i]) * 1000 for i in range(50)]
    info = client.post("/iter", content=iter(parts)).json()
    assert info["total"] == 50_000 and info["count"] >= 1


def test_body_streamed_with_flow_control(client):
    # The app takes a chunk every 5 ms while the client sends 16 MiB as fast as it can:
    # reading stops at 256 KiB not yet taken, so no chunk can be much larger than that
    # plus one socket read (without flow control the app would get megabytes at once).
    payload = b"f" * (16 * 1024 * 1024)
    info = client.post("/iter?0.005", content=payload).json()
    assert info["total"] == len(payload)
    assert info["max"] <= 768 * 1024, info


def test_expect_continue_is_sent_when_the_body_is_read(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(b"hello")
        data = b""
        while not data.endswith(b"hello"):
            data += sock.recv(1000)
        assert data.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("route,event", [("/read-disconnect", "read-closed"), ("/iter-disconnect", "iter-closed")])
def test_body_truncated_by_disconnect_raises(server, route, event):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(f"POST {route} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n".encode() + b"x" * 1000)
    time.sleep(0.1)
    close_with_reset(sock)
    server.app.events.wait_for(event)


# -- streamed responses ----------------------------------------------------------------


def test_response_stream_is_chunked(server):
    data = raw_request(server.port, b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.endswith(b"0\r\n\r\n")
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/stream").content == b"one,two,three"


def test_response_stream_with_content_length(client):
    r = client.get("/stream-length")
    assert r.content == b"abcdef" and r.headers["content-length"] == "6"
    assert "transfer-encoding" not in r.headers


def test_response_stream_backpressure(server):
    # The client reads nothing at first, with a small receive buffer: the app must stall at
    # what the socket buffers hold instead of pushing all 64 MiB into memory.
    events = server.app.events
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /stream-big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        events.wait_for("progress")
        time.sleep(0.5)
        stalled_at = max(sent for _, sent in events.named("progress"))
        assert stalled_at < 24 * 1024 * 1024, stalled_at
        received = 0
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
    assert received > BIG  # the whole body plus heads and chunk framing
    assert events.wait_for("stream-done")[1] == BIG


def test_response_stream_send_after_disconnect_raises(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /stream-big HTTP/1.1\r\nHost: x\r\n\r\n")
    server.app.events.wait_for("progress")
    close_with_reset(sock)
    server.app.events.wait_for("stream-closed")


def test_response_stream_exception_closes_without_ending_the_body(server):
    data = raw_request(server.port, b"GET /stream-raise HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200")
    assert b"partial" in data
    assert not data.endswith(b"0\r\n\r\n")  # a truncated body must not look complete


def test_response_stream_ends_when_the_app_returns(server, client):
    assert client.get("/stream-after-return").content == b"x"
    server.app.events.wait_for("late-send-refused")


# -- files ----------------------------------------------------------------------------


def test_response_file_small_and_large(client, files):
    for name in ("small", "big"):
        r = client.get(f"/file?{name}")
        expected = open(files[name], "rb").read()
        assert r.status_code == 200
        assert r.content == expected
        assert r.headers["content-length"] == str(len(expected))
        assert r.headers["content-type"] == "application/octet-stream"


def test_response_file_large_to_a_slow_reader(server, files):
    expected = open(files["big"], "rb").read()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /file?big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)
        data = b""
        while chunk := sock.recv(1 << 16):
            data += chunk
    assert data.partition(b"\r\n\r\n")[2] == expected


def test_response_file_client_gone_midway(server, client):
    for _ in range(3):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.settimeout(5)
            sock.connect(("127.0.0.1", server.port))
            sock.sendall(b"GET /file?big HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            close_with_reset(sock)
    assert client.get("/file?small").status_code == 200  # the worker goes on


def test_response_file_head(client, files):
    r = client.head("/file?big")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(os.path.getsize(files["big"]))


@pytest.mark.parametrize("name", ["missing", "dir"])
def test_response_file_not_found(client, name):
    r = client.get(f"/file?{name}")
    assert r.status_code == 404 and r.text == "Not found"  # Granian's answer


@pytest.mark.parametrize(
    "name,start,end",
    [("small", 10, 20), ("small", 0, 1000), ("small", 990, 5000), ("small", 2000, 3000), ("big", 1000, 3_000_000)],
)
def test_response_file_range(client, files, name, start, end):
    data = open(files[name], "rb").read()
    r = client.get(f"/range?{name},{start},{end}")
    assert r.status_code == 206
    assert r.content == data[start:end]  # end exclusive, cut at the end of the file
    assert r.headers["content-length"] == str(len(data[start:end]))


def test_response_file_range_invalid(server, client):
    r = client.get("/range?small,20,20")
    assert r.status_code == 500
    assert server.app.events.wait_for("range-error")[1] == "Invalid range"


# -- client_disconnect ------------------------------------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_client_disconnect_fires(server, how):
    events = server.app.events
    before = len(events.named("client-gone"))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(b"GET /disconnect HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    assert len(events.named("client-gone")) == before  # still waiting while the client is there
    if how == "reset":
        close_with_reset(sock)
    else:
        sock.close()
    deadline = time.monotonic() + 5
    while len(events.named("client-gone")) == before:
        assert time.monotonic() < deadline, "client_disconnect() did not resolve"
        time.sleep(0.01)


def test_client_disconnect_watcher_released_with_its_request(server, client):
    # A keep-alive connection stays open: the watcher is released when the request ends.
    assert client.get("/watch-after").text == "ok"
    server.app.events.wait_for("watcher-released")
    assert client.get("/str").status_code == 201


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route", ["/raise", "/nothing", "/bad-status", "/bad-header", "/bytes-headers", "/str-body-bytes"]
)
def test_app_errors_are_500_and_the_connection_lives_on(server, route):
    with httpx.Client(base_url=server.url) as c:
        r = c.get(route)
        assert r.status_code == 500 and r.text == "Internal Server Error"
        assert "set-cookie" not in r.headers
        assert c.get("/str").status_code == 201  # same connection, same worker


def test_second_response_is_refused_and_the_first_stands(server, client):
    r = client.get("/twice")
    assert r.status_code == 200 and r.text == "first"
    server.app.events.wait_for("second-response-refused")


def test_app_that_suspends_is_finished_by_its_host_task(client):
    assert client.get("/sleep").text == "slept True"


def test_pipelined_requests(server):
    data = raw_request(
        server.port,
        b"GET /str HTTP/1.1\r\nHost: x\r\n\r\nPOST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /empty HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    assert data.count(b"HTTP/1.1 ") == 3
    assert b"h\xc3\xa9llo" in data and b"abc" in data


# -- lifecycle hooks, detection, configuration ---------------------------------------------


class HookedApp:
    def __init__(self) -> None:
        self.inits: list[tuple[str, int, bool, str]] = []
        self.dels: list[tuple[str, int, bool]] = []
        self.seen: set[tuple[str, int]] = set()
        self.lock = threading.Lock()

    def __rsgi_init__(self, loop):
        # Granian's contract: the loop is not running yet, so run_until_complete works.
        async def setup():
            return f"ready on {threading.current_thread().name}"

        state = loop.run_until_complete(setup())
        with self.lock:
            self.inits.append((threading.current_thread().name, id(loop), loop.is_running(), state))

    def __rsgi_del__(self, loop):
        async def teardown():
            await asyncio.sleep(0)

        loop.run_until_complete(teardown())
        with self.lock:
            self.dels.append((threading.current_thread().name, id(loop), loop.is_running()))

    async def __rsgi__(self, scope, proto):
        with self.lock:
            self.seen.add((threading.current_thread().name, id(asyncio.get_running_loop())))
        proto.response_str(200, [], "hooked")


def test_init_and_del_hooks_once_per_worker_thread():
    app = HookedApp()
    with serve(app, threads=2, accept="reuseport") as server:
        assert len(app.inits) == 2 and not app.dels
        for _ in range(20):
            with httpx.Client(base_url=server.url) as c:
                assert c.get("/").text == "hooked"
    threads = {name for name, _, _, _ in app.inits}
    assert len(threads) == 2
    assert all(not running for _, _, running, _ in app.inits)
    assert all(state == f"ready on {name}" for name, _, _, state in app.inits)
    assert {(name, loop) for name, loop, _ in app.dels} == {(name, loop) for name, loop, _, _ in app.inits}
    assert all(not running for _, _, running in app.dels)
    # every request ran on the loop that its thread's __rsgi_init__ was given
    assert app.seen <= {(name, loop) for name, loop, _, _ in app.inits}


def test_init_hook_failure_stops_start_up():
    class Broken:
        def __rsgi_init__(self, loop):
            raise RuntimeError("no database")

        async def __rsgi__(self, scope, proto):
            proto.response_empty(200, [])

    with pytest.raises(StartupError, match="__rsgi_init__ raised RuntimeError: no database"):
        with serve(Broken()):
            pass


def test_auto_detection_prefers_rsgi():
    class Both:
        async def __call__(self, scope, receive, send):
            raise AssertionError("the ASGI entry point must not be used")

        async def __rsgi__(self, scope, proto):
            proto.response_str(200, [], "rsgi")

    app = Both()
    assert detect_interface(app, "auto") == "rsgi"
    with serve(app) as server:
        assert httpx.get(server.url).text == "rsgi"


def test_plain_coroutine_function_with_interface_rsgi():
    async def app(scope, proto):
        proto.response_str(200, [], scope.method)

    with serve(app, interface="rsgi") as server:
        assert httpx.get(server.url).text == "GET"


def test_config_accepts_an_rsgi_object_and_refuses_others():
    class OnlyRSGI:
        async def __rsgi__(self, scope, proto): ...

    assert Config(app=OnlyRSGI(), interface="rsgi").interface == "rsgi"
    with pytest.raises(ValueError, match="must be a callable"):
        Config(app=object())


def test_ftserve_command_serves_an_rsgi_module(tmp_path):
    from tests.test_cli import start, stop

    (tmp_path / "rsgiapp.py").write_text(
        "class App:\n"
        "    async def __rsgi__(self, scope, proto):\n"
        "        proto.response_str(200, [('content-type', 'text/plain')], 'hi ' + scope.path)\n"
        "app = App()\n"
    )
    proc, url = start("--app-dir", str(tmp_path), "rsgiapp:app")
    try:
        assert httpx.get(url + "/there").text == "hi /there"
    finally:
        assert stop(proc) == 0


def test_address_formats():
    from ftserver.interfaces.rsgi_scope import format_address

    assert format_address(("127.0.0.1", 8000)) == "127.0.0.1:8000"
    assert format_address(("::1", 8000, 0, 0)) == "[::1]:8000"  # as Rust's SocketAddr writes it
    assert format_address(("/run/app.sock", None)) == "/run/app.sock"
    assert format_address(None) == ""
