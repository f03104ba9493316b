"""The PROXY protocol parser (sans-I/O): versions 1 and 2, need-more, the rules it enforces."""

from __future__ import annotations

import socket
import struct

import pytest

from ftserver.protocols.proxy_protocol import (
    NO_HEADER,
    V2_SIGNATURE,
    ProxyProtocolError,
    detect,
    read_header,
)


def v2(command: int = 1, family: int = 1, transport: int = 1, addresses: bytes = b"", tlvs: bytes = b"") -> bytes:
    payload = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family << 4 | transport]) + struct.pack("!H", len(payload)) + payload


def inet4(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + struct.pack("!HH", sport, dport)


def test_v1_tcp4_tcp6_unknown():
    line = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"
    header = read_header(line + b"GET / HTTP/1.1\r\n", "v1")
    assert (header.version, header.length, header.command) == (1, len(line), "PROXY")
    assert header.client == ("203.0.113.7", 56324) and header.server == ("192.0.2.1", 443)
    header = read_header(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n", "auto")
    assert header.client == ("2001:db8::1", 1) and header.server == ("::1", 65535)
    assert read_header(b"PROXY TCP6 2001:DB8:0::1 ::1 1 2\r\n", "v1").client == ("2001:db8::1", 1)  # canonical text
    header = read_header(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\nrest", "v1")
    assert header.client is None and header.length == len(b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n")
    assert read_header(b"PROXY UNKNOWN\r\n", "v1").client is None


def test_v2_inet_inet6_unix_local_unspec_and_tlvs():
    header = read_header(v2(addresses=inet4("198.51.100.9", "10.0.0.1", 40000, 8000)) + b"PRI *", "v2")
    assert (header.version, header.length) == (2, 16 + 12)
    assert header.client == ("198.51.100.9", 40000) and header.server == ("10.0.0.1", 8000)
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x00"  # ALPN "h2", then NOOP of length 0
    header = read_header(v2(family=2, addresses=inet6("2001:db8::7", "2001:db8::1", 5, 6), tlvs=tlvs), "auto")
    assert header.client == ("2001:db8::7", 5) and header.tlvs == ((1, b"h2"), (4, b""))
    unix = b"/run/client.sock".ljust(108, b"\0") + b"/run/ftserve.sock".ljust(108, b"\0")
    header = read_header(v2(family=3, addresses=unix), "v2")
    assert header.client == "/run/client.sock" and header.server == "/run/ftserve.sock"
    local = read_header(v2(command=0, addresses=inet4("1.2.3.4", "5.6.7.8", 1, 2)), "v2")
    assert local.command == "LOCAL" and local.client is None and local.length == 28
    assert read_header(v2(family=0, transport=0), "v2").client is None  # UNSPEC: the real addresses stand
    header = read_header(v2(addresses=inet4("1.2.3.4", "5.6.7.8", 1, 2), tlvs=b"\x20\x00\x09abc"), "v2")
    assert header.client == ("1.2.3.4", 1) and header.tlvs == ()  # a truncated TLV is ignored


def test_need_more_bytes():
    line = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"
    for size in range(len(line)):
        assert read_header(line[:size], "v1") is None
    full = v2(addresses=inet4("1.2.3.4", "5.6.7.8", 1, 2))
    for size in range(len(full)):
        assert read_header(full[:size], "v2") is None
    # In auto mode too few first bytes cannot be told from a request (PRI * is HTTP/2's preface).
    assert read_header(b"PR", "auto") is None and detect(b"PR") is None and detect(b"\r\n\r\n") is None


def test_auto_mode_without_a_header():
    for start in (b"GET / HTTP/1.1\r\n", b"PRI * HTTP/2.0\r\n", b"\x16\x03\x01\x02\x00", b"PROXY\r\n", b"\r\n\r\nX"):
        assert read_header(start, "auto") is NO_HEADER, start
    assert detect(b"GET /") == 0 and detect(b"PROXY ") == 1 and detect(V2_SIGNATURE) == 2


@pytest.mark.parametrize(
    ("data", "mode", "rule"),
    [
        (b"GET / HTTP/1.1\r\n", "v1", "must start with a PROXY protocol v1 header"),
        (b"\x16\x03\x01", "v2", "must start with a PROXY protocol v2 header"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "v2", "v1 header where v2 is expected"),
        (V2_SIGNATURE + b"\x21\x11\x00\x0c", "v1", "v2 header where v1 is expected"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2" + b" " * 80, "v1", "longer than 107 bytes"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "v1", "must end with CRLF"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "v1", "unknown protocol"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "v1", "2 addresses and 2 ports"),
        (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "v1", "2 addresses and 2 ports"),
        (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "v1", "not TCP4"),
        (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "v1", "not TCP6"),
        (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "v1", "not TCP4"),  # (leading zeros: octal to some parsers)
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "v1", "0..65535"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "v1", "0..65535"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "v1", None),
        (V2_SIGNATURE + b"\x11\x11\x00\x0c", "v2", "version 1 in the header"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c", "v2", "unknown command 2"),
        (V2_SIGNATURE + b"\x21\x41\x00\x0c", "v2", "unknown address family"),
        (V2_SIGNATURE + b"\x21\x13\x00\x0c", "v2", "unknown address family or transport"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", "v2", "65535 bytes of addresses and TLVs"),
        (V2_SIGNATURE + b"\x21\x21\x00\x0c" + b"\0" * 12, "v2", "cannot hold the addresses of family 2"),
    ],
)
def test_rules(data, mode, rule):
    if rule is None:
        assert read_header(data, mode).client == ("1.2.3.4", 1)
        return
    with pytest.raises(ProxyProtocolError, match=rule):
        read_header(data, mode)
