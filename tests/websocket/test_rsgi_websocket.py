"""RSGI WebSocket (``proto="ws"``) as Granian serves it, with the ``websockets`` client."""

from __future__ import annotations

import asyncio
import threading

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ftserver.interfaces.rsgi import RSGIProtocolClosed
from ftserver.testing import serve
from tests.websocket.apps import Recorder


def make_rsgi_app(rec: Recorder):
    class App:
        async def __rsgi__(self, scope, protocol):
            if scope.proto == "http":
                protocol.response_str(200, [("content-type", "text/plain")], "plain http")
                return
            rec.scopes.append(scope)
            if scope.path == "/deny":
                protocol.close(401)
                return
            if scope.path == "/deny-default":
                protocol.close()
                return
            if scope.path == "/late":  # accepts after a while (a graceful stop may have begun)
                await asyncio.sleep(1.0)
            transport = await protocol.accept()
            if scope.path == "/close":
                await transport.send_str("bye")
                protocol.close(4002)
                return
            while True:
                try:
                    message = await transport.receive()
                except RSGIProtocolClosed:
                    rec.events.append({"type": "closed-error"})
                    return
                if message.kind == 0:
                    rec.events.append({"type": "close", "data": message.data})
                    return
                if message.kind == 1:
                    await transport.send_bytes(message.data)
                else:
                    await transport.send_str(message.data)

    return App()


def test_rsgi_echo_and_scope():
    rec = Recorder()
    with serve(make_rsgi_app(rec)) as server:
        base = server.url.replace("http://", "ws://")
        with connect(base + "/echo?x=%41") as ws:
            ws.send("text ☃")
            assert ws.recv(timeout=10) == "text ☃"
            ws.send(b"\x00\xff")
            assert ws.recv(timeout=10) == b"\x00\xff"
        assert rec.wait_for(lambda: rec.events and rec.events[-1]["type"] == "close")
        assert rec.events[-1]["data"] is None
    scope = rec.scopes[0]
    assert scope.proto == "ws" and scope.method == "GET" and scope.scheme == "http"
    assert scope.path == "/echo" and scope.query_string == "x=%41"
    assert scope.headers.get("upgrade") == "websocket"
    assert scope.http_version == "1.1"


def test_rsgi_close_before_accept_answers_with_its_status():
    rec = Recorder()
    with serve(make_rsgi_app(rec)) as server:
        base = server.url.replace("http://", "ws://")
        with pytest.raises(InvalidStatus) as info:
            connect(base + "/deny")
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as info:
            connect(base + "/deny-default")
        assert info.value.response.status_code == 403


def test_rsgi_close_after_accept():
    rec = Recorder()
    with serve(make_rsgi_app(rec)) as server:
        with connect(server.url.replace("http://", "ws://") + "/close") as ws:
            assert ws.recv(timeout=10) == "bye"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 4002


def test_rsgi_a_websocket_accepted_during_the_stop_is_closed_1001():
    rec = Recorder()
    with serve(make_rsgi_app(rec), interface="rsgi", timeout_graceful_shutdown=30) as server:
        url = server.url.replace("http://", "ws://") + "/late"
        stopper = threading.Thread(target=lambda: rec.wait_for(lambda: rec.scopes) and server.server.stop())
        stopper.start()  # (the stop begins while the app waits to accept)
        with connect(url, open_timeout=10) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)  # (far below the 30 s graceful timeout)
        assert closed.value.rcvd.code == 1001
        stopper.join(10)
    assert rec.wait_for(lambda: rec.events and rec.events[-1]["type"] in ("close", "closed-error"))
