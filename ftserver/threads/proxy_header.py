"""``--proxy-protocol``: a new connection's PROXY protocol header, read before anything else.

``ProxyProtocol`` (one per worker thread) decides whether a connection owes a header (its
peer is in ``--proxy-protocol-allow-ips``); ``ProxyHeaderReader`` then reads it on the
worker's loop, before the TLS handshake and before HTTP/1.1 or HTTP/2 is chosen, within
``--timeout-header-read``, and hands the socket on with the addresses the header gave. A bad,
missing or late header closes that connection only (logged at debug).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ftserver.net import TrustedPeers, parse_trusted
from ftserver.protocols.proxy_protocol import (
    V1_MAX_LENGTH,
    V2_FIXED_LENGTH,
    V2_MAX_PAYLOAD,
    ProxyHeader,
    ProxyProtocolError,
    ProxyProtocolMode,
    detect,
    read_header,
)

if TYPE_CHECKING:
    import asyncio

    from ftserver.config import Config

logger = logging.getLogger("ftserver.error")

#: The most bytes a header can take: nothing beyond it is ever looked at here.
MAX_HEADER = max(V1_MAX_LENGTH, V2_FIXED_LENGTH + V2_MAX_PAYLOAD)
#: In auto mode, how soon to look again at first bytes too few to tell a header from a request.
UNDECIDED_RETRY = 0.01


class ProxiedSocket(socket.socket):
    """A connection whose ends are those its PROXY header named: ``getpeername()`` and
    ``getsockname()`` answer them, so every transport, driver and interface sees the client
    (ASGI/RSGI ``client``/``server``, WSGI ``REMOTE_ADDR``, the access log, the peer that
    ``--forwarded-allow-ips`` is checked against)."""

    __slots__ = ("proxied_peer", "proxied_name")

    def getpeername(self) -> Any:
        return self.proxied_peer

    def getsockname(self) -> Any:
        return self.proxied_name


class ProxyProtocol:
    """``--proxy-protocol`` and its allow list, for one worker thread (built per thread: its
    ``TrustedPeers`` and its memory of the last peer are touched by that thread only)."""

    __slots__ = ("mode", "trusted", "timeout", "last_peer", "last_trusted")

    def __init__(self, mode: ProxyProtocolMode, allow_ips: str | tuple[str, ...], timeout: float) -> None:
        self.mode = mode
        self.trusted: TrustedPeers = parse_trusted(allow_ips)
        self.timeout = timeout
        self.last_peer: str | None = ""  # (behind a proxy, connection after connection is its)
        self.last_trusted = False

    @classmethod
    def from_config(cls, config: Config) -> ProxyProtocol | None:
        """The worker's settings, or ``None`` with ``--proxy-protocol off``."""
        if config.proxy_protocol == "off":
            return None
        return cls(config.proxy_protocol, config.proxy_protocol_allow_ips, config.timeout_header_read)

    def expects_header(self, sock: socket.socket) -> bool:
        """Whether ``sock``'s peer is trusted to send a header (an untrusted peer's bytes are
        served as they come: a header from it is not honoured)."""
        try:
            peer = sock.getpeername()
        except OSError:
            return False
        host = peer[0] if isinstance(peer, tuple) else None
        if host != self.last_peer:
            self.last_peer, self.last_trusted = host, host in self.trusted
        return self.last_trusted

    def read(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        then: Callable[[socket.socket], None],
        pending: set[Any],
        on_dropped: Callable[[], None] | None = None,
    ) -> None:
        """Read ``sock``'s header, then call ``then`` with the socket to serve; ``pending``
        holds the reader meanwhile (a stopping worker aborts what it holds). A connection
        closed for its header (or on a stop) is never served: ``on_dropped`` is called then,
        for the worker's count of the connections it was handed."""
        reader = ProxyHeaderReader(loop, sock, self.mode, self.timeout, then, pending.discard, on_dropped)
        pending.add(reader)
        reader.start()


class ProxyHeaderReader:
    """Reads one connection's PROXY header without taking a byte past it.

    The bytes are peeked (``MSG_PEEK``) and only the header's are taken from the socket, so
    what follows (a TLS ClientHello, an HTTP/2 preface, a request) stays queued for the
    transport, as if the header had never been there. A proxy sends the header at once, so
    it is usually there already when the connection is handed over: it is read then, with no
    selector registration and no timer. Otherwise the reader waits for it until ``timeout``;
    bytes known to be the header's (its signature has been seen) are taken as they come, so
    a header sent piecemeal does not keep the socket readable; in auto mode, first bytes too
    few to tell (``PR`` may begin an HTTP/2 preface) are looked at again ``UNDECIDED_RETRY``
    seconds later.
    """

    __slots__ = ("loop", "sock", "fd", "mode", "timeout", "then", "on_over", "on_dropped", "taken", "timer", "retry", "watching", "done")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        mode: ProxyProtocolMode,
        timeout: float,
        then: Callable[[socket.socket], None],
        on_over: Callable[[ProxyHeaderReader], None],
        on_dropped: Callable[[], None] | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.mode = mode
        self.timeout = timeout
        self.then = then
        self.on_over = on_over
        self.on_dropped = on_dropped
        self.taken = b""  # the header's bytes taken from the socket so far
        self.timer: asyncio.TimerHandle | None = None
        self.retry: asyncio.TimerHandle | None = None
        self.watching = False  # a reader is registered with the loop
        self.done = False

    def start(self) -> None:
        self._read()
        if not self.done:
            self.timer = self.loop.call_later(self.timeout, self._timed_out)
            if self.retry is None:
                self._watch()

    def abort(self) -> None:
        """Close the connection (the worker is stopping)."""
        self._fail(None)

    def _read(self) -> None:
        sock = self.sock
        taken = self.taken
        try:
            peeked = sock.recv((V1_MAX_LENGTH if self.mode == "v1" else MAX_HEADER) - len(taken), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(f"{exc!r}")
            return
        if not peeked:
            self._fail("the connection closed before its PROXY protocol header")
            return
        data = taken + peeked
        try:
            header = read_header(data, self.mode)
        except ProxyProtocolError as exc:
            self._fail(str(exc))
            return
        try:
            if header is None:
                if detect(data) is None and self.mode == "auto":
                    self._unwatch()  # (still readable: look again soon)
                    self.retry = self.loop.call_later(UNDECIDED_RETRY, self._look_again)
                    return
                self.taken = data
                sock.recv(len(peeked))  # all the header's: take them, wait for the rest
                return
            if header.length > len(taken):
                sock.recv(header.length - len(taken))  # (peeked: there, and taken whole)
        except OSError as exc:
            self._fail(f"{exc!r}")
            return
        self._finish(header)

    def _look_again(self) -> None:
        self.retry = None
        self._read()
        if not self.done and self.retry is None:
            self._watch()

    def _watch(self) -> None:
        if not self.watching:
            self.loop.add_reader(self.fd, self._read)
            self.watching = True

    def _unwatch(self) -> None:
        if self.watching:
            self.loop.remove_reader(self.fd)
            self.watching = False

    def _finish(self, header: ProxyHeader) -> None:
        self._over()
        sock = self.sock
        if header.client is not None:
            # (SOCK_NONBLOCK: the descriptor is non-blocking; the new object knows it without a syscall)
            proxied = ProxiedSocket(sock.family, sock.type | socket.SOCK_NONBLOCK, sock.proto, fileno=sock.detach())
            client, server = header.client, header.server
            if isinstance(client, tuple) and ":" in client[0]:
                client, server = (*client, 0, 0), (*server, 0, 0)  # type: ignore[misc]  # as getpeername() gives IPv6
            proxied.proxied_peer, proxied.proxied_name = client, server
            sock = proxied
        self.then(sock)

    def _timed_out(self) -> None:
        self.timer = None
        self._fail(f"no PROXY protocol header within {self.timeout:g} s")

    def _fail(self, why: str | None) -> None:
        if self.done:
            return
        if why is not None:
            try:
                peer = self.sock.getpeername()
            except OSError:
                peer = None
            logger.debug("closing the connection from %s: %s", peer, why)
        self._over()
        self.sock.close()
        if self.on_dropped is not None:
            self.on_dropped()

    def _over(self) -> None:
        self.done = True
        self._unwatch()
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.on_over(self)
