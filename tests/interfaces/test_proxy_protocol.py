"""``--proxy-protocol``: raw PROXY v1/v2 headers on real sockets reach ASGI, WSGI and RSGI apps
(over HTTP/1.1, h2c, TLS with HTTP/2, WebSocket); a bad, missing or late header from a trusted
peer closes that connection only; untrusted peers are served as they come."""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time

import h2.config
import h2.connection
import h2.events
import pytest

from ftserver.config import Config, ConfigError
from ftserver.protocols.proxy_protocol import V2_SIGNATURE
from ftserver.testing import serve
from tests.apps.basic import scope_json

REQUEST = b"GET /p HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"
V1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"


def v2(command: int = 1, family: int = 1, addresses: bytes = b"", tlvs: bytes = b"") -> bytes:
    payload = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family << 4 | 1]) + struct.pack("!H", len(payload)) + payload


def inet4(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport)


V2 = v2(addresses=inet4("198.51.100.9", "10.0.0.1", 40000, 8000))


def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection; everything the server sent until it closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def scope_of(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), response[:200]
    return json.loads(body)


@pytest.mark.parametrize(
    ("header", "client", "server"),
    [
        (V1, ["203.0.113.7", 56324], ["192.0.2.1", 443]),
        (b"PROXY TCP6 2001:db8::7 2001:db8::1 1234 8443\r\n", ["2001:db8::7", 1234], ["2001:db8::1", 8443]),
        (V2, ["198.51.100.9", 40000], ["10.0.0.1", 8000]),
        (v2(family=2, addresses=inet6("2001:db8::9", "::1", 7, 8), tlvs=b"\x01\x00\x02h2\x05\x00\x04abcd"), ["2001:db8::9", 7], ["::1", 8]),
        (v2(family=3, addresses=b"/run/c.sock".ljust(108, b"\0") + b"/run/s.sock".ljust(108, b"\0")), None, ["/run/s.sock", None]),
    ],
)
@pytest.mark.parametrize("mode", ["auto", "exact"])
def test_the_header_gives_the_client_and_server(header, client, server, mode):
    if mode == "exact":
        mode = "v2" if header.startswith(V2_SIGNATURE) else "v1"
    with serve(scope_json, proxy_protocol=mode) as running:
        scope = scope_of(exchange(running.port, header + REQUEST))
    assert scope["client"] == client
    assert scope["server"] == server


@pytest.mark.parametrize(
    "header",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        v2(command=0, addresses=inet4("1.2.3.4", "5.6.7.8", 1, 2)),  # LOCAL: the proxy's health check
        v2(family=0),  # UNSPEC
    ],
)
def test_headers_without_addresses_keep_the_connection_s_own(header):
    with serve(scope_json, proxy_protocol="auto") as running:
        scope = scope_of(exchange(running.port, header + REQUEST))
        assert scope["client"][0] == "127.0.0.1" and scope["client"][1] > 0
        assert scope["server"] == ["127.0.0.1", running.port]


def test_a_header_sent_piecemeal():
    with serve(scope_json, proxy_protocol="auto") as running:
        for header in (V1, V2):
            with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
                for offset in range(len(header)):
                    sock.sendall(header[offset : offset + 1])
                    time.sleep(0.002)
                sock.sendall(REQUEST)
                assert scope_of(read_all(sock))["client"][0] in ("203.0.113.7", "198.51.100.9")


def test_auto_mode_serves_connections_without_a_header():
    with serve(scope_json, proxy_protocol="auto") as running:
        scope = scope_of(exchange(running.port, REQUEST))
        assert scope["client"][0] == "127.0.0.1"
        # First bytes too few to tell from a header ("P", "PR"...) are looked at again.
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            sock.sendall(b"P")
            time.sleep(0.05)
            sock.sendall(b"OST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            scope = scope_of(read_all(sock))
        assert scope["method"] == "POST" and scope["client"][0] == "127.0.0.1"


@pytest.mark.parametrize(
    ("mode", "data"),
    [
        ("v1", REQUEST),  # missing
        ("v2", V1 + REQUEST),  # the other version
        ("v1", b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + REQUEST),  # garbage
        ("v1", b"PROXY TCP4 " + b"1" * 200 + b"\r\n" + REQUEST),  # oversized
        ("v2", V2_SIGNATURE + b"\x21\x11\xff\xff" + b"\0" * 100),  # oversized length
        ("auto", V2_SIGNATURE + b"\x21\x71\x00\x0c" + b"\0" * 12 + REQUEST),  # unknown family
        ("auto", V1[:20]),  # truncated, then the client closes
    ],
)
def test_a_bad_header_closes_that_connection_only(mode, data):
    with serve(scope_json, proxy_protocol=mode) as running:
        good = V1 if mode != "v2" else V2
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as bad:
            bad.sendall(data)
            if data == V1[:20]:
                bad.shutdown(socket.SHUT_WR)
            # Another client is served meanwhile; the bad one gets no response, just the close.
            assert scope_of(exchange(running.port, good + REQUEST))["client"][0] in ("203.0.113.7", "198.51.100.9")
            assert read_all(bad) == b""


def test_a_late_header_is_cut_at_the_header_read_deadline():
    with serve(scope_json, proxy_protocol="v1", timeout_header_read=1.0) as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as slow:
            slow.sendall(V1[:10])  # and nothing more
            started = time.monotonic()
            assert scope_of(exchange(running.port, V1 + REQUEST))["client"][0] == "203.0.113.7"
            assert read_all(slow) == b""
            assert time.monotonic() - started < 8  # cut by the deadline, not by the client's own timeout
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as idle:  # sends nothing at all
            assert read_all(idle) == b""


def test_untrusted_peers_are_served_as_they_come():
    with serve(scope_json, proxy_protocol="v1", proxy_protocol_allow_ips="10.0.0.0/8") as running:
        scope = scope_of(exchange(running.port, REQUEST))
        assert scope["client"][0] == "127.0.0.1"
        # A header from an untrusted peer is not honoured: it is a bad request line.
        assert exchange(running.port, V1 + REQUEST).startswith(b"HTTP/1.1 400 ")
    with serve(scope_json) as running:  # off: the same
        assert exchange(running.port, V1 + REQUEST).startswith(b"HTTP/1.1 400 ")


def test_with_proxy_headers_the_proxied_peer_is_the_one_checked():
    forwarded = b"GET /p HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.50\r\nConnection: close\r\n\r\n"
    options = {"proxy_protocol": "v1", "proxy_headers": True, "forwarded_allow_ips": "10.0.0.0/8"}
    with serve(scope_json, **options) as running:
        trusted = b"PROXY TCP4 10.1.2.3 10.0.0.1 5000 80\r\n"
        assert scope_of(exchange(running.port, trusted + forwarded))["client"] == ["203.0.113.50", 0]
        untrusted = b"PROXY TCP4 198.51.100.1 10.0.0.1 5000 80\r\n"
        assert scope_of(exchange(running.port, untrusted + forwarded))["client"] == ["198.51.100.1", 5000]


def wsgi_environ(environ, start_response):
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT")
    start_response("200 OK", [("content-type", "application/json")])
    return [json.dumps({key: environ.get(key) for key in keys}).encode()]


class RSGIScope:
    async def __rsgi__(self, scope, protocol):
        body = json.dumps({"client": scope.client, "server": scope.server})
        protocol.response_str(200, [("content-type", "application/json")], body)


def test_wsgi_and_rsgi_see_the_proxied_addresses():
    with serve(wsgi_environ, proxy_protocol="v2") as running:
        environ = scope_of(exchange(running.port, V2 + REQUEST))
    assert environ["REMOTE_ADDR"] == "198.51.100.9" and environ["REMOTE_PORT"] == "40000"
    assert environ["SERVER_PORT"] == "8000"
    with serve(RSGIScope(), proxy_protocol="v1") as running:
        scope = scope_of(exchange(running.port, V1 + REQUEST))
    assert scope["client"] == "203.0.113.7:56324" and scope["server"] == "192.0.2.1:443"


def h2_get(sock: socket.socket) -> dict:
    """One HTTP/2 GET on ``sock`` (prior knowledge, or after ALPN): the JSON body."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/h2")], end_stream=True)
    sock.sendall(conn.data_to_send())
    body = b""
    while True:
        data = sock.recv(65536)
        assert data, "the server closed the connection"
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                return json.loads(body)
        sock.sendall(conn.data_to_send())


def test_h2c_prior_knowledge_after_the_header():
    with serve(scope_json, proxy_protocol="auto") as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            sock.sendall(V2)
            scope = h2_get(sock)
        assert scope["http_version"] == "2" and scope["client"] == ["198.51.100.9", 40000]
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as sock:
            scope = h2_get(sock)  # no header: "PRI * HTTP/2.0" is not one
        assert scope["http_version"] == "2" and scope["client"][0] == "127.0.0.1"


def test_over_tls_the_header_comes_before_the_client_hello(certs):
    tls = {"ssl_certfile": certs.server, "ssl_keyfile": certs.server_key}
    with serve(scope_json, proxy_protocol="v2", **tls) as running:
        context = certs.client_context()
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
            raw.sendall(V2)
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                assert sock.selected_alpn_protocol() == "h2"
                scope = h2_get(sock)
        assert scope["scheme"] == "https" and scope["client"] == ["198.51.100.9", 40000]
        context = certs.client_context()
        with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
            raw.sendall(V1)  # v1 where v2 is required: closed before any TLS
            with pytest.raises((ssl.SSLError, OSError)):
                context.wrap_socket(raw, server_hostname="localhost")


async def websocket_client(scope, receive, send):
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(scope["client"])})
    await send({"type": "websocket.close"})


def test_websocket_scope_client():
    from websockets.sync.client import connect

    with serve(websocket_client, proxy_protocol="v1") as running:
        sock = socket.create_connection(("127.0.0.1", running.port), timeout=10)
        sock.sendall(V1)
        with connect(f"ws://127.0.0.1:{running.port}/ws", sock=sock) as ws:
            assert json.loads(ws.recv(timeout=10)) == ["203.0.113.7", 56324]


@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_many_connections_at_once(accept):
    """Headers from several client threads, on several worker threads, in both accept modes."""
    failures = []

    def client(index: int) -> None:
        try:
            for round_ in range(5):
                header = f"PROXY TCP4 10.9.{index}.{round_} 10.0.0.1 {1000 + round_} 80\r\n".encode()
                scope = scope_of(exchange(running.port, header + REQUEST))
                assert scope["client"] == [f"10.9.{index}.{round_}", 1000 + round_]
        except Exception as exc:  # noqa: BLE001
            failures.append(exc)

    with serve(scope_json, proxy_protocol="auto", threads=2, accept=accept) as running:
        threads = [threading.Thread(target=client, args=(index,)) for index in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not failures, failures


def test_config_errors():
    with pytest.raises(ConfigError, match="proxy_protocol: must be one of off, v1, v2, auto; got 'v3'"):
        Config(app="a:b", proxy_protocol="v3")
    with pytest.raises(ConfigError, match="proxy_protocol_allow_ips: 'nope' is not an IP address"):
        Config(app="a:b", proxy_protocol="v1", proxy_protocol_allow_ips="127.0.0.1, nope")
    assert Config(app="a:b", proxy_protocol="auto", proxy_protocol_allow_ips="unix,10.0.0.0/8,*").proxy_protocol == "auto"


def test_the_reason_is_logged_at_debug():
    import logging

    records: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("ftserver.error")
    with serve(scope_json, proxy_protocol="v1", log_level="debug") as running:
        logger.addHandler(handler)
        try:
            assert exchange(running.port, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + REQUEST) == b""
            deadline = time.monotonic() + 5
            while not records and time.monotonic() < deadline:
                time.sleep(0.02)
        finally:
            logger.removeHandler(handler)
    message = next(line for line in records if line.startswith("closing the connection"))
    assert message.startswith("closing the connection from ('127.0.0.1', ")
    assert message.endswith("): PROXY protocol v1: a port must be a number 0..65535, got b'99999'")


def test_the_reader_reports_each_connection_it_drops():
    """``ProxyProtocol.read`` on a real loop and socket pair: a served connection is handed on,
    a rejected one reported through ``on_dropped`` (the worker's count of its connections)."""
    import asyncio

    from ftserver.threads.proxy_header import ProxiedSocket, ProxyProtocol

    proxy = ProxyProtocol("v1", "unix", 5.0)
    loop = asyncio.new_event_loop()
    try:
        for data, served_ok in ((V1 + REQUEST, True), (REQUEST, False), (b"", False)):
            ours, theirs = socket.socketpair()
            ours.setblocking(False)
            assert proxy.expects_header(ours)
            served: list[socket.socket] = []
            dropped: list[int] = []
            pending: set = set()
            if data:
                theirs.sendall(data)
            else:
                theirs.close()
            proxy.read(loop, ours, served.append, pending, lambda: dropped.append(1))
            loop.run_until_complete(asyncio.sleep(0.05))
            assert not pending
            if served_ok:
                assert dropped == [] and isinstance(served[0], ProxiedSocket)
                assert served[0].getpeername() == ("203.0.113.7", 56324)
                assert served[0].recv(100) == REQUEST  # the header taken, nothing more
                served[0].close()
            else:
                assert served == [] and dropped == [1]
            theirs.close()
    finally:
        loop.close()
