"""HAProxy's PROXY protocol (versions 1 and 2), sans-I/O: bytes in, a ``ProxyHeader`` out.

A proxy that passes TCP through (HAProxy ``send-proxy``, nginx's stream ``proxy_protocol on``,
AWS NLB...) sends one header before the connection's own bytes, naming the client's and the
server's addresses. ``read_header(data, mode)`` reads it from the start of ``data``: it returns
the header (``length`` says how many bytes it took), ``None`` while more bytes are needed,
``NO_HEADER`` when ``mode`` is ``"auto"`` and the bytes start none, or raises
``ProxyProtocolError`` naming the rule broken. Reference: haproxy.org/download/2.9/doc/proxy-protocol.txt.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Literal

ProxyProtocolMode = Literal["off", "v1", "v2", "auto"]
PROXY_PROTOCOL_MODES = ("off", "v1", "v2", "auto")

#: §2.1: a version 1 line, "PROXY" to CRLF included, is at most 107 bytes.
V1_MAX_LENGTH = 107
V1_SIGNATURE = b"PROXY "
#: §2.2: the 12 bytes a version 2 header starts with.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = 16
#: The most address and TLV bytes accepted after a version 2 header's fixed 16 (the protocol
#: allows 65535; senders put addresses and a few small TLVs there, 536 bytes in all at most
#: without TLVs): a bound on what a connection may make the server buffer before it is known.
V2_MAX_PAYLOAD = 4096
#: §2.2: address block sizes by family (UNSPEC, AF_INET, AF_INET6, AF_UNIX).
_V2_ADDRESS_LENGTH = (0, 12, 36, 216)

Address = tuple[str, int] | str


class ProxyProtocolError(ValueError):
    """A PROXY protocol header broke a rule of the specification (the message names it)."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A PROXY protocol header read from a connection's first bytes.

    ``client`` and ``server`` are ``(host, port)`` (a path for AF_UNIX), or ``None`` when the
    header gives no address to use: a version 2 ``LOCAL`` command (the proxy's own health
    check), a version 1 ``UNKNOWN`` or a version 2 ``UNSPEC`` family; the connection's own
    addresses stand then. ``tlvs``: version 2's type-length-value pairs (none is acted on).
    """

    version: int  # 1 or 2; 0 for NO_HEADER
    length: int  # bytes of the connection taken by the header
    command: Literal["PROXY", "LOCAL"] = "PROXY"
    client: Address | None = None
    server: Address | None = None
    tlvs: tuple[tuple[int, bytes], ...] = ()


#: ``read_header``'s answer in auto mode to a connection that starts with no header.
NO_HEADER = ProxyHeader(version=0, length=0)


def detect(data: bytes) -> int | None:
    """The version of the header ``data`` starts with: 1, 2, 0 (none), or ``None`` while
    ``data`` is a prefix of a signature and too short to tell."""
    for version, signature in ((2, V2_SIGNATURE), (1, V1_SIGNATURE)):
        size = min(len(data), len(signature))
        if data[:size] == signature[:size]:
            return version if size == len(signature) else None
    return 0


def read_header(data: bytes, mode: ProxyProtocolMode) -> ProxyHeader | None:
    """The header at the start of ``data`` under ``mode`` (``"v1"``/``"v2"``: that version is
    required; ``"auto"``: either, or none); ``None``: more bytes are needed."""
    version = detect(data)
    if version is None:
        if mode == "auto":
            return None
        signature = V1_SIGNATURE if mode == "v1" else V2_SIGNATURE
        if signature.startswith(data):
            return None
        version = 0
    if version == 0:
        if mode == "auto":
            return NO_HEADER
        raise ProxyProtocolError(f"the connection must start with a PROXY protocol {mode} header")
    if mode != "auto" and mode != f"v{version}":
        raise ProxyProtocolError(f"a PROXY protocol v{version} header where {mode} is expected")
    return _read_v1(data) if version == 1 else _read_v2(data)


def _read_v1(data: bytes) -> ProxyHeader | None:
    """§2.1: ``PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\\r\\n`` or ``PROXY UNKNOWN ...\\r\\n``."""
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"a PROXY protocol v1 line longer than {V1_MAX_LENGTH} bytes")
        if b"\n" in data:
            raise ProxyProtocolError("a PROXY protocol v1 line must end with CRLF")
        return None
    line = data[:end]
    length = end + 2
    parts = line.split(b" ")
    if len(parts) < 2:
        raise ProxyProtocolError("a PROXY protocol v1 line names no protocol")
    family = parts[1]
    if family == b"UNKNOWN":  # the receiver ignores the rest of the line (§2.1)
        return ProxyHeader(1, length)
    if family == b"TCP4":
        address_family = socket.AF_INET
    elif family == b"TCP6":
        address_family = socket.AF_INET6
    else:
        raise ProxyProtocolError(f"PROXY protocol v1: unknown protocol {family[:16]!r} (TCP4, TCP6 or UNKNOWN)")
    if len(parts) != 6:
        raise ProxyProtocolError("PROXY protocol v1: a line must hold 2 addresses and 2 ports, separated by single spaces")
    try:  # (inet_pton checks the form, C-fast; inet_ntop gives IPv6 its canonical text)
        source = socket.inet_ntop(address_family, socket.inet_pton(address_family, parts[2].decode("ascii")))
        destination = socket.inet_ntop(address_family, socket.inet_pton(address_family, parts[3].decode("ascii")))
    except (OSError, ValueError):  # (UnicodeDecodeError is a ValueError)
        raise ProxyProtocolError(f"PROXY protocol v1: an address that is not {family.decode()}") from None
    return ProxyHeader(1, length, client=(source, _v1_port(parts[4])), server=(destination, _v1_port(parts[5])))


def _v1_port(text: bytes) -> int:
    if not (1 <= len(text) <= 5 and text.isdigit()) or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY protocol v1: a port must be a number 0..65535, got {text[:8]!r}")
    return int(text)


def _read_v2(data: bytes) -> ProxyHeader | None:
    """§2.2: signature, version and command, family and transport, a 16-bit length, then the
    addresses and TLVs."""
    if len(data) < V2_FIXED_LENGTH:
        return None
    version_command, family_transport = data[12], data[13]
    if version_command >> 4 != 2:
        raise ProxyProtocolError(f"PROXY protocol v2: version {version_command >> 4} in the header (must be 2)")
    command = version_command & 0x0F
    if command > 1:
        raise ProxyProtocolError(f"PROXY protocol v2: unknown command {command} (0 LOCAL, 1 PROXY)")
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family > 3 or transport > 2:
        raise ProxyProtocolError(f"PROXY protocol v2: unknown address family or transport 0x{family_transport:02x}")
    size = int.from_bytes(data[14:16], "big")
    if size > V2_MAX_PAYLOAD:
        raise ProxyProtocolError(f"PROXY protocol v2: {size} bytes of addresses and TLVs (at most {V2_MAX_PAYLOAD} accepted)")
    length = V2_FIXED_LENGTH + size
    if len(data) < length:
        return None
    payload = data[V2_FIXED_LENGTH:length]
    address_length = _V2_ADDRESS_LENGTH[family]
    if size < address_length:
        raise ProxyProtocolError(f"PROXY protocol v2: {size} bytes cannot hold the addresses of family {family}")
    tlvs = _tlvs(payload[address_length:])
    if command == 0 or family == 0:  # LOCAL, or an address family the sender could not name
        return ProxyHeader(2, length, "LOCAL" if command == 0 else "PROXY", tlvs=tlvs)
    if family == 3:
        client: Address = _unix_path(payload[:108])
        server: Address = _unix_path(payload[108:216])
    else:
        half = (address_length - 4) // 2
        address_family = socket.AF_INET if family == 1 else socket.AF_INET6
        ports = payload[2 * half : address_length]
        client = (socket.inet_ntop(address_family, payload[:half]), int.from_bytes(ports[:2], "big"))
        server = (socket.inet_ntop(address_family, payload[half : 2 * half]), int.from_bytes(ports[2:], "big"))
    return ProxyHeader(2, length, "PROXY", client, server, tlvs)


def _unix_path(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _tlvs(data: bytes) -> tuple[tuple[int, bytes], ...]:
    """§2.2.7: type (1 byte), length (2 bytes), value. Receivers ignore the TLVs they do not
    know; a truncated last TLV is ignored too (the addresses are what is used)."""
    tlvs = []
    offset = 0
    while offset + 3 <= len(data):
        size = int.from_bytes(data[offset + 1 : offset + 3], "big")
        if offset + 3 + size > len(data):
            break
        tlvs.append((data[offset], data[offset + 3 : offset + 3 + size]))
        offset += 3 + size
    return tuple(tlvs)
