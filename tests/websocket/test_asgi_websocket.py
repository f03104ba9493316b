"""ASGI WebSocket over HTTP/1.1 with real clients: the ``websockets`` library and raw sockets."""

from __future__ import annotations

import asyncio
import os
import socket
import zlib

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ftserver.testing import serve
from tests.websocket.apps import RawWebSocket, Recorder, frame, handshake_request, make_app


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def ws_url(server, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def test_echo_text_and_binary_and_the_scope(rec):
    with serve(make_app(rec), root_path="/api") as server:
        with connect(ws_url(server, "/echo?a=1&b=%20"), subprotocols=["other", "chat"]) as ws:
            assert ws.subprotocol == "chat"
            assert ws.response.headers["x-extra"] == "yes"
            ws.send("hello ☃")
            assert ws.recv(timeout=10) == "hello ☃"
            ws.send(b"\x00\x01\x02")
            assert ws.recv(timeout=10) == b"\x00\x01\x02"
            big = os.urandom(1_000_000)
            ws.send(big)
            assert ws.recv(timeout=10) == big
            # A message sent in fragments is delivered whole.
            ws.send(["frag", "mented ", "text"])
            assert ws.recv(timeout=10) == "fragmented text"
            ws.ping(b"are you there").wait(10)
    scope = rec.scopes[0]
    assert scope["type"] == "websocket" and scope["scheme"] == "ws" and scope["http_version"] == "1.1"
    assert scope["path"] == "/api/echo" and scope["raw_path"] == b"/api/echo" and scope["root_path"] == "/api"
    assert scope["query_string"] == b"a=1&b=%20"
    assert scope["subprotocols"] == ["other", "chat"]
    assert "websocket.http.response" in scope["extensions"]
    assert scope["asgi"]["version"] == "3.0"
    assert "method" not in scope
    assert dict(scope["headers"])[b"upgrade"] == b"websocket"
    assert scope["client"][0] == "127.0.0.1" and scope["server"][1] == server.port
    assert rec.events[0] == {"type": "websocket.connect"}
    assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect")
    assert rec.events[-1]["code"] == 1000


def test_no_subprotocol_when_none_matches(rec):
    with serve(make_app(rec)) as server:
        with connect(ws_url(server, "/echo"), subprotocols=["other"]) as ws:
            assert ws.subprotocol is None
            ws.send("x")
            assert ws.recv(timeout=10) == "x"


def test_close_before_accept_is_403(rec):
    with serve(make_app(rec)) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(server, "/deny"))
        assert info.value.response.status_code == 403
        # The connection stays usable for HTTP afterwards.
        raw = RawWebSocket(server.port, handshake_request("/deny") + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.status == 403
        assert raw.body() == b"Forbidden"
        assert raw.read_response()[::2] == (200, b"plain http")
        raw.close()


def test_denial_with_a_websocket_http_response(rec):
    with serve(make_app(rec)) as server:
        with pytest.raises(InvalidStatus) as info:
            connect(ws_url(server, "/deny-response"))
        response = info.value.response
        assert response.status_code == 401
        assert response.headers["x-why"] == "token"
        assert response.body == b"no entry"


def test_app_errors_before_accept_are_500_and_after_accept_close_1011(rec):
    with serve(make_app(rec)) as server:
        for path in ("/crash-before", "/return-before"):
            with pytest.raises(InvalidStatus) as info:
                connect(ws_url(server, path))
            assert info.value.response.status_code == 500
        with connect(ws_url(server, "/crash-after")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1011


def test_server_close_with_code_and_reason(rec):
    with serve(make_app(rec)) as server:
        with connect(ws_url(server, "/close")) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "custom reason")
        # The app hears the end of the close handshake.
        assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect")
        assert rec.events[-1]["code"] == 4000


def test_client_close_code_and_reason_reach_the_app(rec):
    with serve(make_app(rec)) as server:
        with connect(ws_url(server, "/echo")) as ws:
            ws.close(4001, "bye now")
        assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect")
        assert rec.events[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}


def test_a_client_vanishing_mid_message_is_1006(rec):
    with serve(make_app(rec)) as server:
        raw = RawWebSocket(server.port, handshake_request("/echo"))
        assert raw.status == 101
        raw.sock.sendall(frame(1, b"partial", fin=False)[:5])
        raw.sock.close()
        assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect")
        assert rec.events[-1]["code"] == 1006


def test_message_too_big_is_1009(rec):
    with serve(make_app(rec), ws_max_size=1000) as server:
        with connect(ws_url(server, "/echo"), compression=None) as ws:
            ws.send("a" * 1000)
            assert ws.recv(timeout=10) == "a" * 1000
            ws.send("a" * 1001)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1009
        # Fragments count together (the close may reach the client while it sends the second).
        with connect(ws_url(server, "/echo"), compression=None) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                ws.send([b"b" * 600, b"b" * 600])
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1009


def test_a_deflate_bomb_is_1009_without_inflating_it(rec):
    """A 100 MiB message of zeros compresses to ~100 KiB: it must fail at --ws-max-size."""
    with serve(make_app(rec), ws_max_size=1 << 20) as server:
        raw = RawWebSocket(server.port, handshake_request("/echo", extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n"))
        assert raw.status == 101 and raw.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = compressor.compress(b"\x00" * (100 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
        payload = payload[:-4]
        data = bytearray(frame(2, payload))
        data[0] |= 0x40  # RSV1: compressed
        raw.sock.sendall(data)
        opcode, body = raw.read_frame()
        assert opcode == 8 and int.from_bytes(body[:2], "big") == 1009
        raw.close()


def test_permessage_deflate_is_negotiated_or_refused(rec):
    with serve(make_app(rec)) as server:
        with connect(ws_url(server, "/echo")) as ws:  # websockets offers deflate by default
            assert "permessage-deflate" in ws.response.headers.get("sec-websocket-extensions", "")
            text = "compress me " * 10000
            ws.send(text)
            assert ws.recv(timeout=10) == text
    with serve(make_app(rec), ws_per_message_deflate=False) as server:
        with connect(ws_url(server, "/echo")) as ws:
            assert "sec-websocket-extensions" not in ws.response.headers
            ws.send("plain")
            assert ws.recv(timeout=10) == "plain"


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (handshake_request("/echo", key=b"tooshort"), 400),
        (handshake_request("/echo", key=b"!!!!!!!!!!!!!!!!!!!!!!!!"), 400),
        (handshake_request("/echo", version=b"8"), 426),
        (handshake_request("/echo", extra=b"Content-Length: 3\r\n") + b"abc", 400),
        (handshake_request("/echo").replace(b"Connection: Upgrade", b"Connection: keep-alive"), 400),
        (handshake_request("/echo").replace(b"GET", b"POST"), 400),
        (handshake_request("/echo").replace(b"Sec-WebSocket-Key", b"X-Nothing"), 400),
        (handshake_request("/echo").replace(b"Sec-WebSocket-Version: 13\r\n", b""), 426),
    ],
    ids=["short-key", "bad-base64", "version-8", "body", "no-connection-upgrade", "post", "no-key", "no-version"],
)
def test_invalid_handshakes_never_reach_the_app(rec, request_bytes, status):
    with serve(make_app(rec)) as server:
        raw = RawWebSocket(server.port, request_bytes)
        assert raw.status == status
        assert raw.headers["sec-websocket-version"] == "13"
        assert raw.headers["connection"] == "close"
        raw.close()
    assert rec.scopes == []


def test_ws_none_serves_the_upgrade_as_plain_http(rec):
    with serve(make_app(rec), ws="none") as server:
        raw = RawWebSocket(server.port, handshake_request("/echo"))
        assert raw.status == 200 and raw.body() == b"plain http"
        raw.close()


def test_ping_timeout_closes_a_silent_client(rec):
    with serve(make_app(rec), ws_ping_interval=0.5, ws_ping_timeout=1.0) as server:
        raw = RawWebSocket(server.port, handshake_request("/hold"))
        assert raw.status == 101
        opcode, _ = raw.read_frame()  # a ping, which we leave unanswered
        assert opcode == 9
        raw.read_until_closed(20)
        assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect", 20)
        assert rec.events[-1]["code"] == 1006
        raw.close()


def test_pings_answered_keep_the_connection(rec):
    with serve(make_app(rec), ws_ping_interval=0.2, ws_ping_timeout=1.0) as server:
        with connect(ws_url(server, "/echo")) as ws:  # the client answers pings
            for i in range(3):
                asyncio.run(asyncio.sleep(0.5))
                ws.send(str(i))
                assert ws.recv(timeout=10) == str(i)


def test_a_client_that_stops_reading_holds_the_app(rec):
    """The app tries to send 100 MiB to a client that reads nothing: its send() waits, so
    what the server holds stays bounded (socket buffers + the transport's high-water mark)."""
    with serve(make_app(rec), timeout_io=60) as server:
        raw = RawWebSocket(server.port, handshake_request("/flood"))
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        assert raw.status == 101

        def settled() -> bool:
            before = rec.sent
            asyncio.run(asyncio.sleep(0.3))
            return rec.sent == before and rec.sent > 0

        assert rec.wait_for(settled, 20)
        print("messages of 64 KiB sent before the app was held:", rec.sent)
        assert rec.sent < 200  # < 12.5 MiB of 100 MiB left the app
        raw.close()
        assert rec.wait_for(lambda: rec.events and rec.events[-1]["type"] == "send failed")


def test_many_concurrent_connections_on_one_thread(rec):
    async def main(url: str) -> None:
        from websockets.asyncio.client import connect as aconnect

        sockets = [await aconnect(url, compression=None, ping_interval=None) for _ in range(300)]
        try:
            for i, ws in enumerate(sockets):
                await ws.send(f"m{i}")
            for i, ws in enumerate(sockets):
                assert await asyncio.wait_for(ws.recv(), 10) == f"m{i}"
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets))

    with serve(make_app(rec), threads=1) as server:
        asyncio.run(main(ws_url(server, "/echo")))
    assert sum(1 for e in rec.events if e["type"] == "websocket.disconnect") == 300


def test_shutdown_closes_open_websockets_with_1001(rec):
    async def main() -> None:
        from websockets.asyncio.client import connect as aconnect

        with serve(make_app(rec), timeout_graceful_shutdown=10) as server:
            ws = await aconnect(ws_url(server, "/echo"))
            await ws.send("before")
            assert await ws.recv() == "before"
            stopping = asyncio.get_running_loop().run_in_executor(None, server.server.stop)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd.code == 1001
            await asyncio.wait_for(stopping, 10)

    asyncio.run(main())
    assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect")
    assert rec.events[-1]["code"] == 1001


def test_a_websocket_accepted_during_the_stop_is_closed_1001_too(rec):
    """The app is still in its connect handler when the stop begins (it accepts 1 s
    later): the WebSocket it opens is closed with 1001 well within the graceful timeout."""
    async def main() -> None:
        from websockets.asyncio.client import connect as aconnect

        with serve(make_app(rec), timeout_graceful_shutdown=30) as server:
            loop = asyncio.get_running_loop()
            opening = asyncio.ensure_future(aconnect(ws_url(server, "/late")))
            assert await loop.run_in_executor(None, rec.wait_for, lambda: rec.events)  # in its connect handler
            stopping = loop.run_in_executor(None, server.server.stop)
            ws = await asyncio.wait_for(opening, 10)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)  # (far below the 30 s graceful timeout)
            assert closed.value.rcvd.code == 1001
            await asyncio.wait_for(stopping, 10)

    asyncio.run(main())
    assert rec.wait_for(lambda: rec.events[-1]["type"] == "websocket.disconnect")
    assert rec.events[-1]["code"] == 1001


def test_http_on_the_same_server_still_works(rec):
    with serve(make_app(rec)) as server:
        assert httpx.get(server.url + "/").text == "plain http"
        with connect(ws_url(server, "/echo")) as ws:
            ws.send("x")
            assert ws.recv(timeout=10) == "x"
        assert httpx.get(server.url + "/").text == "plain http"


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_frames_sent_with_the_handshake_are_not_lost(rec, http1):
    with serve(make_app(rec), http1=http1) as server:
        raw = RawWebSocket(server.port, handshake_request("/echo") + frame(1, b"early") + frame(2, b"bird"))
        assert raw.status == 101
        assert raw.read_frame() == (1, b"early")
        assert raw.read_frame() == (2, b"bird")
        raw.sock.sendall(frame(8, b"\x03\xe8"))
        assert raw.read_frame() == (8, b"\x03\xe8")  # the close handshake, then the server closes
        assert raw.read_until_closed(10) == b""
        raw.close()


def test_the_access_log_shows_the_upgrade(rec):
    import logging

    from tests.threads.test_access_log import Records

    access = logging.getLogger("ftserver.access")
    records = Records()
    saved = access.handlers[:], access.propagate
    access.handlers[:] = [records]
    access.propagate = False
    try:
        with serve(make_app(rec), access_log=True) as server:
            with connect(ws_url(server, "/echo?q=1")) as ws:
                ws.send("x")
                assert ws.recv(timeout=10) == "x"
            assert rec.wait_for(lambda: records.records)
    finally:
        access.handlers[:], access.propagate = saved
    line = records.records[0].getMessage()
    assert '"GET /echo?q=1 HTTP/1.1" 101' in line
