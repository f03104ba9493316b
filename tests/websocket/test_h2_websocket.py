"""WebSocket over HTTP/2 (RFC 8441, extended CONNECT) with a client made of h2 and wsproto
(``tests/websocket/h2ws.py``), over cleartext (prior knowledge) and TLS (ALPN ``h2``)."""

from __future__ import annotations

import os
import struct
import threading

import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import DataFrame, GoAwayFrame, PingFrame
from wsproto.events import CloseConnection, Ping

from ftserver.testing import serve
from tests.websocket.apps import Recorder, make_app
from tests.websocket.h2ws import H2WebSocketClient
from tests.websocket.test_rsgi_websocket import make_rsgi_app


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def disconnected(rec: Recorder) -> dict:
    assert rec.wait_for(lambda: rec.events and rec.events[-1]["type"] == "websocket.disconnect")
    return rec.events[-1]


def test_echo_over_h2c_and_the_scope(rec):
    with serve(make_app(rec), root_path="/api") as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, headers = client.connect("/echo?a=1", subprotocols=["other", "chat"])
            assert status == 200
            assert headers[b"sec-websocket-protocol"] == b"chat" and headers[b"x-extra"] == b"yes"
            assert b"sec-websocket-accept" not in headers and b"upgrade" not in headers  # (RFC 8441 §5)
            client.send(stream_id, "hello ☃")
            assert client.recv(stream_id) == "hello ☃"
            client.send(stream_id, b"\x00\x01\x02")
            assert client.recv(stream_id) == b"\x00\x01\x02"
            close = client.close_ws(stream_id, 1000)
            assert isinstance(close, CloseConnection) and close.code == 1000
            assert isinstance(client.ended(stream_id), h2.events.StreamEnded)  # END_STREAM after the Close
        finally:
            client.close()
        assert disconnected(rec)["code"] == 1000
    scope = rec.scopes[0]
    assert scope["type"] == "websocket" and scope["http_version"] == "2" and scope["scheme"] == "ws"
    assert scope["path"] == "/api/echo" and scope["query_string"] == b"a=1" and "method" not in scope
    assert scope["subprotocols"] == ["other", "chat"]
    assert dict(scope["headers"])[b"host"] == b"localhost"
    assert dict(scope["headers"])[b"sec-websocket-version"] == b"13"


def test_echo_over_tls(rec, certs):
    context = certs.client_context()
    context.set_alpn_protocols(["h2"])
    with serve(make_app(rec), ssl_certfile=certs.server, ssl_keyfile=certs.server_key) as server:
        client = H2WebSocketClient(server.port, context)
        try:
            stream_id, status, _ = client.connect("/echo")
            assert status == 200
            client.send(stream_id, "secure")
            assert client.recv(stream_id) == "secure"
            client.close_ws(stream_id)
        finally:
            client.close()
    assert rec.scopes[0]["scheme"] == "wss" and rec.scopes[0]["http_version"] == "2"


def test_large_fragmented_messages_both_ways_through_the_windows(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, _ = client.connect("/echo")
            assert status == 200
            big = os.urandom(1_000_000)  # 15 times the stream's window, both ways
            client.send(stream_id, big, fragments=7)
            assert client.recv(stream_id) == big
            client.send(stream_id, "fragmented text " * 1000, fragments=3)
            assert client.recv(stream_id) == "fragmented text " * 1000
        finally:
            client.close()


def test_a_client_that_opens_no_window_holds_the_app(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        client.auto_ack = False  # the stream's 64 KiB window is never given back
        try:
            stream_id, status, _ = client.connect("/flood")
            assert status == 200
            client.until(lambda: False, limit=1.5)
            assert rec.sent <= 4  # (100 MiB are never buffered: the app's send waits)
            other = client.get("/")  # the connection's other streams are unaffected
            assert client.response(other)[0] == 200
        finally:
            client.close()
        assert rec.wait_for(lambda: rec.events and rec.events[-1]["type"] != "websocket.connect")


def test_a_ping_flood_without_a_window_is_bounded(rec):
    """A client that sends pings and opens no window for the pongs: past a few dozen queued
    pongs its own window is no longer given back, so it cannot make them pile up."""
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        client.auto_ack = False
        try:
            stream_id, _, _ = client.connect("/hold")
            ping = client.ws[stream_id].send(Ping(payload=b"p" * 125))
            sent = 0
            while sent < 2_000_000:
                if client.conn.local_flow_control_window(stream_id) < len(ping):
                    client.until(lambda: client.conn.local_flow_control_window(stream_id) >= len(ping), limit=1.0)
                    if client.conn.local_flow_control_window(stream_id) < len(ping):
                        break
                client.conn.send_data(stream_id, ping)
                client.flush()
                sent += len(ping)
            assert sent < 200_000  # (the window, 64 KiB, and what the pongs that fit it cost)
        finally:
            client.close()


def test_permessage_deflate_is_negotiated(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, headers = client.connect("/echo", deflate=True)
            assert status == 200 and headers[b"sec-websocket-extensions"].startswith(b"permessage-deflate")
            client.send(stream_id, "squeeze " * 10000)
            assert client.recv(stream_id) == "squeeze " * 10000
        finally:
            client.close()
    with serve(make_app(rec), ws_per_message_deflate=False) as server:
        client = H2WebSocketClient(server.port)
        try:
            assert b"sec-websocket-extensions" not in client.connect("/echo", deflate=True)[2]
        finally:
            client.close()


def test_denials_are_http2_responses(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, _ = client.connect("/deny")
            assert status == 403
            assert client.response(stream_id)[2] == b"Forbidden"
            stream_id, status, headers = client.connect("/deny-response")
            assert status == 401 and headers[b"x-why"] == b"token"
            assert client.response(stream_id)[2] == b"no entry"
            stream_id, status, _ = client.connect("/crash-before")
            assert status == 500
            assert client.response(client.get("/"))[2] == b"plain http"  # the connection goes on
        finally:
            client.close()


def test_app_crash_after_accept_is_1011(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, _ = client.connect("/crash-after")
            assert status == 200
            close = client.recv(stream_id)
            assert isinstance(close, CloseConnection) and close.code == 1011
        finally:
            client.close()


def test_server_close_code_and_reason(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, _, _ = client.connect("/close")
            close = client.recv(stream_id)
            assert (close.code, close.reason) == (4000, "custom reason")
        finally:
            client.close()


def test_a_reset_stream_is_a_1006_disconnect_and_the_connection_goes_on(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, _ = client.connect("/echo")
            assert status == 200
            client.send(stream_id, "one")
            assert client.recv(stream_id) == "one"
            client.reset(stream_id)
            assert disconnected(rec)["code"] == 1006
            assert client.response(client.get("/"))[2] == b"plain http"
        finally:
            client.close()


def test_losing_the_connection_is_1006(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        stream_id, status, _ = client.connect("/echo")
        assert status == 200
        client.close()
        assert disconnected(rec)["code"] == 1006


def test_message_too_big_is_1009(rec):
    with serve(make_app(rec), ws_max_size=1000) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, _, _ = client.connect("/echo")
            client.send(stream_id, b"x" * 1000)
            assert client.recv(stream_id) == b"x" * 1000
            client.send(stream_id, b"x" * 1001, fragments=2)
            close = client.recv(stream_id)
            assert isinstance(close, CloseConnection) and close.code == 1009
            assert client.ended(stream_id) is not None
        finally:
            client.close()
        assert disconnected(rec)["code"] == 1009


def test_other_streams_work_while_websockets_are_open(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            first = client.connect("/echo")[0]
            second = client.connect("/echo")[0]
            gets = [client.get("/") for _ in range(5)]
            client.send(first, "to first")
            client.send(second, "to second")
            assert [client.response(stream_id)[2] for stream_id in gets] == [b"plain http"] * 5
            assert client.recv(second) == "to second" and client.recv(first) == "to first"
        finally:
            client.close()


def test_handshake_rules(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, headers = client.connect("/echo", version=b"8")
            assert status == 426 and headers[b"sec-websocket-version"] == b"13"
            stream_id, status, _ = client.connect("/echo", protocol=b"connect-udp")
            assert status == 501
            # :protocol on another method is malformed: a stream error
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.config.validate_outbound_headers = False
            client.conn.send_headers(stream_id, [(b":method", b"GET"), (b":protocol", b"websocket"), (b":scheme", b"http"),
                                                 (b":path", b"/"), (b":authority", b"x")], end_stream=True)
            client.flush()
            assert client.ended(stream_id).error_code == ErrorCodes.PROTOCOL_ERROR
            assert client.response(client.get("/"))[0] == 200
        finally:
            client.close()
    assert not rec.scopes  # the app saw none of them


def test_settings_advertise_extended_connect_unless_ws_is_off(rec):
    with serve(make_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            assert client.settings()[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1
        finally:
            client.close()
    with serve(make_app(rec), ws="off") as server:
        client = H2WebSocketClient(server.port)
        try:
            assert client.settings().get(SettingCodes.ENABLE_CONNECT_PROTOCOL, 0) == 0
            # a :protocol we did not allow is malformed (RFC 8441 §3): a stream error
            client.conn.remote_settings.acknowledge()  # (h2's client would refuse to send it)
            client.conn.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
            client.conn.remote_settings.acknowledge()
            stream_id, status, headers = client.connect("/echo")
            assert status == 0 and int(headers[b"reset"]) == ErrorCodes.PROTOCOL_ERROR
        finally:
            client.close()


def test_pings_over_h2_are_answered(rec):
    with serve(make_app(rec), ws_ping_interval=1.0, ws_ping_timeout=2.0) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, _, _ = client.connect("/echo")
            client.until(lambda: False, limit=3.5)  # (the helper answers the server's pings)
            client.send(stream_id, "still here")
            assert client.recv(stream_id) == "still here"
        finally:
            client.close()


def test_a_client_that_leaves_pings_unanswered_is_1006(rec):
    with serve(make_app(rec), ws_ping_interval=1.0, ws_ping_timeout=1.0) as server:
        client = H2WebSocketClient(server.port)
        client.answer_pings = False
        try:
            stream_id, _, _ = client.connect("/echo")
            assert client.ended(stream_id, limit=8) is not None
            assert not client.messages[stream_id]  # (ended without a Close: the peer is gone)
            assert disconnected(rec)["code"] == 1006
            assert client.response(client.get("/"))[0] == 200  # (the stream, not the connection)
        finally:
            client.close()


def test_an_open_websocket_is_not_an_idle_connection(rec):
    with serve(make_app(rec), timeout_keep_alive=1, timeout_io=1, ws_ping_interval=0) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, _, _ = client.connect("/echo")
            client.until(lambda: False, limit=3.5)  # (no keep-alive, body or window timeout on it)
            assert not client.closed
            client.send(stream_id, "quiet but open")
            assert client.recv(stream_id) == "quiet but open"
        finally:
            client.close()


def close_code(frames: list, stream_id: int) -> int | None:
    """The status code of the server's Close frame in the stream's DATA (frames unmasked)."""
    payload = b"".join(f.data for f in frames if isinstance(f, DataFrame) and f.stream_id == stream_id)
    while len(payload) >= 2:
        opcode, size = payload[0] & 0x0F, payload[1] & 0x7F
        if opcode == 8:
            return struct.unpack("!H", payload[2:4])[0]
        payload = payload[2 + size :]
    return None


def test_shutdown_two_goaways_and_1001(rec):
    with serve(make_app(rec), timeout_graceful_shutdown=10) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, _ = client.connect("/echo")
            assert status == 200
            stopper = threading.Thread(target=server.server.stop)
            stopper.start()
            ended = lambda frames: any(isinstance(f, DataFrame) and "END_STREAM" in f.flags for f in frames)  # noqa: E731
            frames = client_frames(client, ended)
            goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
            assert goaways[0].last_stream_id == 2**31 - 1 and goaways[0].error_code == 0
            assert any(isinstance(f, PingFrame) and "ACK" not in f.flags for f in frames)
            assert close_code(frames, stream_id) == 1001
            frames += client_frames(client, lambda more: any(isinstance(f, GoAwayFrame) for f in more), limit=5)
            goaways = [f for f in frames if isinstance(f, GoAwayFrame)]
            assert len(goaways) >= 2 and goaways[1].last_stream_id == stream_id  # (after the PING wait)
            stopper.join(10)
        finally:
            client.close()


def test_a_websocket_accepted_during_the_stop_is_closed_1001_too(rec):
    with serve(make_app(rec), timeout_graceful_shutdown=10) as server:
        client = H2WebSocketClient(server.port)
        try:
            client.settings()
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream_id, [
                (b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"http"), (b":path", b"/late"),
                (b":authority", b"localhost"), (b"sec-websocket-version", b"13")])
            client.flush()
            assert rec.wait_for(lambda: rec.events)  # (the app got websocket.connect, accepts in 1 s)
            stopper = threading.Thread(target=server.server.stop)
            stopper.start()
            frames = client_frames(client, lambda frames: close_code(frames, stream_id) is not None)
            assert close_code(frames, stream_id) == 1001
            stopper.join(10)
        finally:
            client.close()


def client_frames(client: H2WebSocketClient, done, limit: float = 10.0) -> list:
    """The server's frames read raw (h2's client takes no frame after a GOAWAY)."""
    from tests.threads.h2client import H2Client

    raw = H2Client.__new__(H2Client)
    raw.sock = client.sock
    return raw.raw_frames(done, limit)


def test_rsgi_websocket_over_h2():
    rec = Recorder()
    with serve(make_rsgi_app(rec)) as server:
        client = H2WebSocketClient(server.port)
        try:
            stream_id, status, _ = client.connect("/echo?x=1")
            assert status == 200
            client.send(stream_id, "text ☃")
            assert client.recv(stream_id) == "text ☃"
            client.send(stream_id, b"\x00\xff" * 50000, fragments=4)
            assert client.recv(stream_id) == b"\x00\xff" * 50000
            client.close_ws(stream_id)
            assert rec.wait_for(lambda: rec.events and rec.events[-1]["type"] == "close")
            stream_id, status, _ = client.connect("/deny")
            assert status == 401
            stream_id, _, _ = client.connect("/close")
            assert client.recv(stream_id) == "bye"
            assert client.recv(stream_id).code == 4002
        finally:
            client.close()
    scope = rec.scopes[0]
    assert scope.proto == "ws" and scope.http_version == "2" and scope.path == "/echo" and scope.query_string == "x=1"
    assert scope.method == "CONNECT" and scope.authority == "localhost" and scope.scheme == "http"


# -- the request rules (sans-I/O) --------------------------------------------------------------


def test_extended_connect_request_rules():
    from ftserver.protocols.http2 import ExtendedConnect, MalformedRequest, request_from_fields

    fields = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b":scheme", b"https"), (b":path", b"/chat?x=1"),
              (b":authority", b"example.com"), (b"sec-websocket-version", b"13")]
    request = request_from_fields(1, fields, False, extended_connect=True)
    assert type(request) is ExtendedConnect and request.protocol == "websocket"
    assert (request.method, request.target, request.scheme, request.authority) == ("CONNECT", b"/chat?x=1", "https", b"example.com")
    assert request.has_body and (b"host", b"example.com") in request.headers
    with pytest.raises(MalformedRequest):  # not advertised (RFC 8441 §3)
        request_from_fields(1, fields, False)
    for drop in (b":path", b":scheme", b":authority"):
        with pytest.raises(MalformedRequest):  # (RFC 8441 §4)
            request_from_fields(1, [f for f in fields if f[0] != drop], False, extended_connect=True)
    with pytest.raises(MalformedRequest):  # :protocol on another method
        request_from_fields(1, [(b":method", b"GET"), *fields[1:]], False, extended_connect=True)
    plain = request_from_fields(3, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")], False, extended_connect=True)
    assert type(plain) is not ExtendedConnect and plain.target == b"example.com:443"  # (ordinary CONNECT)
