"""``--proxy-headers``: the client, scheme and host a trusted proxy forwarded.

``ProxyHeaders`` wraps a worker thread's adapter. For a request from a peer in
``--forwarded-allow-ips`` it reads RFC 7239 ``Forwarded`` or, without it, ``X-Forwarded-For``
/ ``-Proto`` / ``-Host`` / ``-Port``, and gives the exchange a per-request
``ConnectionInfo`` (client, scheme, server) and ``Host``; the access log shows the forwarded
client. The rightmost untrusted address is the client; malformed values are ignored.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from ftserver.interfaces.stream import AdapterWrapper, ConnectionInfo
from ftserver.net import TrustedPeers
from ftserver.protocols.http1.common import HOST_RE

if TYPE_CHECKING:

    from ftserver.interfaces.stream import (
        AppHost,
        Exchange,
        HTTPStream,
        InterfaceAdapter,
    )
    from ftserver.protocols.events import Request

_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_FORWARDED_PAIR = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,"\s]*)\s*')
_FIELDS = (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port")


class ProxyHeaders(AdapterWrapper):
    """A worker thread's adapter that applies forwarded headers from trusted peers first."""

    def __init__(self, inner: InterfaceAdapter, host: AppHost, trusted: TrustedPeers) -> None:
        super().__init__(inner, host)
        self.start = inner.start  # type: ignore[method-assign]
        self.trusted = trusted

    def open(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> Exchange:
        peer = info.client[0] if info.client else None
        if peer in self.trusted:
            info = forwarded(request, info, self.trusted)
        return self.inner_open(stream, request, info, body_done)

    def open_websocket(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Any) -> Exchange:
        peer = info.client[0] if info.client else None
        if peer in self.trusted:
            info = forwarded(request, info, self.trusted)
        return self.inner.open_websocket(stream, request, info, offer)


def forwarded(request: Request, info: ConnectionInfo, trusted: TrustedPeers) -> ConnectionInfo:
    """The connection facts of ``request`` as its proxy forwarded them (``info`` itself when
    it forwarded nothing usable); a forwarded host replaces the request's ``Host``."""
    fields: dict[bytes, list[str]] = {}
    for name, value in request.headers:
        if name in _FIELDS:
            fields.setdefault(name, []).append(value.decode("latin-1"))
    if not fields:
        return info
    if b"forwarded" in fields:
        hops = _forwarded_elements(",".join(fields[b"forwarded"]))
    else:
        hops = _x_forwarded(fields)
    if not hops:
        return info
    chosen, address = hops[0], None
    for hop in reversed(hops):  # from the nearest proxy outwards: the first untrusted one
        chosen = hop
        address = _node_address(hop["for"]) if "for" in hop else None
        if address is None or address not in trusted:
            break
    client, scheme, server = info.client, info.scheme, info.server
    if address is not None:
        client = (address, 0)
        request.client = client
    proto = chosen.get("proto", "").lower()
    if proto in _SCHEMES:
        scheme = _SCHEMES[proto]
    host = chosen.get("host")
    port = chosen.get("port")
    if host is not None and HOST_RE.fullmatch(host.encode("latin-1")):
        encoded = host.encode("latin-1")
        request.authority = encoded
        request.headers = [(name, encoded if name == b"host" else value) for name, value in request.headers]
        name, _, host_port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if name and host_port.isdigit():
            server = (name.strip("[]"), int(host_port))
        else:
            server = (host.strip("[]"), server[1] if server else None)
    if port is not None and port.isdigit() and server is not None:
        server = (server[0], int(port))
    new = info.copy()
    new.client, new.scheme, new.server = client, scheme, server
    return new


def _x_forwarded(fields: dict[bytes, list[str]]) -> list[dict[str, str]]:
    """``X-Forwarded-For`` hops, each with the proto/host/port that go with it (the same
    position when the lists are as long, else the last value, the nearest proxy's, for all)."""
    addresses = [part.strip() for value in fields.get(b"x-forwarded-for", ()) for part in value.split(",")]
    hops = [{"for": address} for address in addresses if address]
    if not hops:
        hops = [{}]
    for field, key in ((b"x-forwarded-proto", "proto"), (b"x-forwarded-host", "host"), (b"x-forwarded-port", "port")):
        values = [part.strip() for value in fields.get(field, ()) for part in value.split(",")]
        if not values:
            continue
        if len(values) == len(hops):
            for hop, value in zip(hops, values):
                hop[key] = value
        else:  # one value (most proxies set, not append): it goes with every hop
            for hop in hops:
                hop[key] = values[-1]
    return hops


def _forwarded_elements(value: str) -> list[dict[str, str]]:
    """RFC 7239 §4: ``for=...;proto=...;host=...`` elements; a malformed element is skipped."""
    elements = []
    for element in _split_outside_quotes(value, ","):
        pairs: dict[str, str] = {}
        for pair in _split_outside_quotes(element, ";"):
            if not pair.strip():
                continue
            match = _FORWARDED_PAIR.fullmatch(pair)
            if match is None:
                pairs = {}
                break
            token = match[2]
            if token.startswith('"'):
                token = re.sub(r"\\(.)", r"\1", token[1:-1])
            pairs[match[1].lower()] = token
        if pairs:
            elements.append(pairs)
    return elements


def _split_outside_quotes(value: str, separator: str) -> list[str]:
    parts, current, quoted, escaped = [], [], False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _node_address(node: str) -> str | None:
    """The IP address of a forwarded node (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``,
    ``::1``); ``None`` for obfuscated or ``unknown`` nodes and garbage."""
    node = node.strip()
    if node.startswith("["):
        node = node[1 : node.find("]")] if "]" in node else ""
    elif node.count(":") == 1:
        node = node.partition(":")[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return None
