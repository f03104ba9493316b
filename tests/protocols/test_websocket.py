"""The sans-I/O WebSocket pieces (ftserver.protocols.websocket): bytes in, events out."""

from __future__ import annotations

import base64
import zlib

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from ftserver.protocols.websocket import (
    Closed,
    HandshakeRefused,
    WebSocketSession,
    accept_fields,
    accept_key,
    check_handshake,
    is_websocket_handshake,
    negotiate_extensions,
)

KEY = base64.b64encode(b"0123456789abcdef")
HEADERS = [
    (b"host", b"x"),
    (b"upgrade", b"websocket"),
    (b"connection", b"keep-alive, Upgrade"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-protocol", b"a, b"),
    (b"sec-websocket-protocol", b"c"),
    (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits, x-other"),
]


def client() -> Connection:
    return Connection(ConnectionType.CLIENT)


def test_the_rfc_6455_example_key():
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_valid_handshake_and_its_answer():
    offer = check_handshake("GET", "1.1", HEADERS, False)
    assert offer.subprotocols == ["a", "b", "c"]
    assert offer.extensions == ["permessage-deflate; client_max_window_bits", "x-other"]
    extensions, agreed = negotiate_extensions(offer, True, 1000)
    assert agreed is not None and agreed.startswith(b"permessage-deflate")
    fields = dict(accept_fields(offer, "b", agreed, [(b"X-Extra", b"1")]))
    assert fields[b"sec-websocket-accept"] == accept_key(KEY)
    assert fields[b"sec-websocket-protocol"] == b"b" and fields[b"x-extra"] == b"1"
    with pytest.raises(ValueError):
        accept_fields(offer, "z", None, [])  # not offered
    with pytest.raises(ValueError):
        accept_fields(offer, None, None, [(b"Sec-WebSocket-Accept", b"x")])
    assert negotiate_extensions(offer, False, 1000) == ([], None)


def test_an_http2_handshake_needs_no_key():
    headers = [(b"sec-websocket-version", b"13")]
    offer = check_handshake("CONNECT", "2", headers, False)
    assert offer.key is None
    assert b"sec-websocket-accept" not in dict(accept_fields(offer, None, None, []))
    with pytest.raises(HandshakeRefused):
        check_handshake("GET", "2", headers, False)


@pytest.mark.parametrize(
    "change, status",
    [
        (lambda h: [(n, b"12" if n == b"sec-websocket-version" else v) for n, v in h], 426),
        (lambda h: [(n, b"abc" if n == b"sec-websocket-key" else v) for n, v in h], 400),
        (lambda h: [(n, v) for n, v in h if n != b"connection"], 400),
        (lambda h: h + [(b"sec-websocket-key", KEY)], 400),
    ],
)
def test_invalid_handshakes(change, status):
    with pytest.raises(HandshakeRefused) as info:
        check_handshake("GET", "1.1", change(HEADERS), False)
    assert info.value.status_code == status
    assert (b"sec-websocket-version", b"13") in info.value.headers


def test_which_upgrades_are_handshakes():
    assert is_websocket_handshake(b"WebSocket", HEADERS)
    assert is_websocket_handshake(b"h2c, websocket", HEADERS)
    assert not is_websocket_handshake(b"h2c", HEADERS)
    assert not is_websocket_handshake(b"websocket", [(b"host", b"x")])  # a stray Upgrade: plain HTTP
    with pytest.raises(HandshakeRefused):
        check_handshake("GET", "1.1", HEADERS, True)  # a body
    with pytest.raises(HandshakeRefused):
        check_handshake("GET", "1.0", HEADERS, False)


def test_messages_are_reassembled_and_pings_answered():
    peer = client()
    session = WebSocketSession(100, [], now=0.0)
    data = peer.send(TextMessage(data="hel", message_finished=False)) + peer.send(Ping(b"p"))
    data += peer.send(TextMessage(data="lo")) + peer.send(BytesMessage(data=b"\x01\x02"))
    # One byte at a time: the frame parser and the reassembly keep their state.
    events = [event for i in range(len(data)) for event in session.receive_data(data[i : i + 1])]
    assert events == ["hello", b"\x01\x02"]
    peer.receive_data(session.data_to_send())
    assert [type(e) for e in peer.events()] == [Pong]


def test_a_message_over_max_size_fails_with_1009():
    peer = client()
    session = WebSocketSession(10, [], now=0.0)
    events = session.receive_data(peer.send(BytesMessage(data=b"x" * 6, message_finished=False)) + peer.send(BytesMessage(data=b"y" * 6)))
    assert len(events) == 1 and isinstance(events[0], Closed) and events[0].code == 1009 and events[0].failed
    assert not session.finished  # our Close waits for fail_now()
    assert session.send_message("answer to an earlier message")
    peer.receive_data(session.fail_now())
    assert session.finished and session.fail_now() == b"" and session.close() == b""
    (close,) = list(peer.events())
    assert isinstance(close, CloseConnection) and close.code == 1009


def test_the_close_handshake_either_way():
    peer = client()
    session = WebSocketSession(100, [], now=0.0)
    (closed,) = session.receive_data(peer.send(CloseConnection(code=4001, reason="bye")))
    assert (closed.code, closed.reason, closed.failed) == (4001, "bye", False)
    assert session.finished  # our echo went into data_to_send
    peer.receive_data(session.data_to_send())
    assert [e.code for e in peer.events()] == [4001]

    peer = client()
    session = WebSocketSession(100, [], now=0.0)
    peer.receive_data(session.close(1001, "going"))
    assert not session.finished
    assert session.send_message("late") == b""
    (echo,) = list(peer.events())
    (closed,) = session.receive_data(peer.send(echo.response()))
    assert closed.code == 1001 and session.finished
    assert session.receive_data(None) == []

    session = WebSocketSession(100, [], now=0.0)
    (lost,) = session.receive_data(None)
    assert lost.code == 1006 and session.finished


def test_keepalive_pings_and_their_timeout():
    peer = client()
    session = WebSocketSession(100, [], now=0.0)
    assert session.keepalive(5.0, 20.0, 20.0) == b""
    ping = session.keepalive(21.0, 20.0, 20.0)
    assert ping
    assert session.keepalive(30.0, 20.0, 20.0) == b""  # waiting for the pong
    peer.receive_data(ping)
    (event,) = list(peer.events())
    session.receive_data(peer.send(event.response()))
    assert session.keepalive(35.0, 20.0, 20.0) == b""  # answered: the next one after the interval
    assert session.keepalive(42.0, 20.0, 20.0)
    assert session.keepalive(63.0, 20.0, 20.0) is None  # no pong for 21 s: the peer is gone
    assert WebSocketSession(100, [], now=0.0).keepalive(1000.0, None, 20.0) == b""


def test_deflated_messages_are_bounded_by_max_size():
    offer = check_handshake("GET", "1.1", HEADERS, False)
    extensions, _ = negotiate_extensions(offer, True, 1000)
    session = WebSocketSession(1000, extensions, now=0.0)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = (compressor.compress(b"a" * 1000) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    frame = bytes([0xC2, 0x80 | len(payload)]) + b"\0\0\0\0" + payload  # RSV1, binary, masked with 0
    assert session.receive_data(frame) == [b"a" * 1000]
    payload = (compressor.compress(b"b" * 100_000) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert len(payload) < 126
    frame = bytes([0xC2, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
    (closed,) = session.receive_data(frame)
    assert closed.code == 1009 and closed.failed
    assert session.close() != b""  # the failure's Close, whoever asks
