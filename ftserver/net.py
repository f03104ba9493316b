"""Listening sockets: TCP (optionally one per worker with SO_REUSEPORT) and Unix sockets,
``AcceptBackoff`` (what an accept loop does when accept() fails for want of descriptors) and
``TrustedPeers`` (the peers trusted with proxy headers).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import stat
import time
from collections.abc import Iterable
from typing import Any

logger = logging.getLogger("ftserver.error")

#: How long accepting pauses after accept() failed for want of descriptors or memory.
RETRY_AFTER = 0.25
#: While accept() keeps failing, one log line per this many seconds counts the attempts.
REPORT_EVERY = 5.0
#: accept() errors about the one connection taken (Linux passes its pending network
#: errors on, see accept(2)), not about the listener: the next one is accepted at once.
CONNECTION_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class AcceptBackoff:
    """Pauses accepting while accept() fails for a reason that does not go away by retrying.

    EMFILE (or ENFILE, ENOBUFS, ENOMEM) leaves the connection queued and the listener
    readable, so an accept loop that retries at once spins and logs without end. Instead
    the caller stops watching the listener for ``RETRY_AFTER`` seconds (asyncio waits 1 s,
    nginx 0.5 s), keeps serving the connections already open, and accepts the queued ones
    once descriptors are free. The first failure is logged at once, then one line per
    ``REPORT_EVERY`` seconds counts the refused attempts, and one says when it recovered.
    Used by one thread only.
    """

    __slots__ = ("since", "reported", "refused")

    def __init__(self) -> None:
        self.since = 0.0  # when accept() began failing (0.0: it works)
        self.reported = 0.0
        self.refused = 0  # failed attempts since the last report

    def failed(self, exc: OSError) -> float:
        """Count a failed accept(); the seconds to leave the listener alone."""
        now = time.monotonic()
        if not self.since:
            self.since = self.reported = now
            logger.error("accept() failed: %s; retrying every %g s, the connections wait in the listen backlog meanwhile", exc, RETRY_AFTER)
        else:
            self.refused += 1
            if now - self.reported >= REPORT_EVERY:
                logger.error("accept() still failing: %s (%d refused attempts in the last %.0f s)", exc, self.refused, now - self.reported)
                self.reported = now
                self.refused = 0
        return RETRY_AFTER

    def recovered(self) -> None:
        """accept() worked again (call only while ``since`` is set)."""
        logger.warning("accepting again after %.1f s of failed accept() calls", time.monotonic() - self.since)
        self.since = 0.0
        self.refused = 0


class BindError(OSError):
    """The listening address could not be bound; the message says which and why."""


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_tcp(host: str, port: int, backlog: int, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on ``host:port`` (non-blocking)."""
    sock = _bound_tcp(host, port, reuse_port)
    _listen(sock, backlog, f"{format_host(host)}:{port}")
    return sock


def bind_tcp_group(host: str, port: int, backlog: int, count: int) -> list[socket.socket]:
    """``count`` sockets sharing one address through SO_REUSEPORT (port 0: the first picks)."""
    first = bind_tcp(host, port, backlog, reuse_port=True)
    real_port = first.getsockname()[1]
    socks = [first]
    try:
        for _ in range(count - 1):
            socks.append(bind_tcp(host, real_port, backlog, reuse_port=True))
    except OSError:
        for s in socks:
            s.close()
        raise
    return socks


def reserve_port(host: str, port: int) -> socket.socket:
    """Hold ``host:port`` for processes that will each bind it with ``SO_REUSEPORT``.

    The socket is bound but never listens, so the kernel routes no connection to it, and
    a program without ``SO_REUSEPORT`` (or of another user) cannot take the port meanwhile.
    Port 0 picks a free port: read it from ``getsockname()``.
    """
    return _bound_tcp(host, port, reuse_port=True)


def bind_unix(path: str, backlog: int) -> socket.socket:
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise BindError(17, f"cannot listen on {path}: exists and is not a socket")
        os.unlink(path)  # a stale socket from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on {path}: {exc.strerror}") from None
    _listen(sock, backlog, path)
    return sock


def _bound_tcp(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = _family(host)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on {format_host(host)}:{port}: {exc.strerror}") from None
    return sock


def _listen(sock: socket.socket, backlog: int, where: str) -> None:
    try:
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on {where}: {exc.strerror}") from None
    sock.setblocking(False)


def listener_from_fd(fd: int) -> socket.socket:
    """The listening socket open on descriptor ``fd`` (inherited from a reloader, systemd, ...)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(exc.errno, f"cannot listen on fd {fd}: {exc.strerror}") from None
    try:
        listening = sock.type == socket.SOCK_STREAM and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
    except OSError:
        listening = False
    if not listening:
        sock.detach()  # not ours to close
        raise BindError(22, f"cannot listen on fd {fd}: not a listening stream socket")
    sock.setblocking(False)
    return sock


def close_listeners(listeners: list[socket.socket], uds: str | None = None) -> None:
    """Close ``listeners``, and remove the file of the Unix socket ``uds`` once bound.

    ``listeners`` is empty when ``bind_unix`` refused the path (or was never reached): the
    file there is not ours to remove then.
    """
    for sock in listeners:
        sock.close()
    if uds and listeners:
        try:
            os.unlink(uds)
        except OSError:
            pass


def format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def listen_url(host: str, port: int, uds: str | None = None) -> str:
    """How the log and the Python API name a listening address."""
    if uds:
        return f"unix:{uds}"
    return f"http://{format_host(host)}:{port}"


class TrustedPeers:
    """``--forwarded-allow-ips``: addresses, networks (CIDR), ``*`` (everyone) and ``unix``
    (peers on a Unix domain socket)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        self.unix = False
        self.networks: list[Any] = []
        for entry in entries:
            entry = entry.strip()
            if entry == "*":
                self.everyone = True
            elif entry == "unix":
                self.unix = True
            elif entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))  # ValueError: not an address

    def __contains__(self, host: str | None) -> bool:
        if self.everyone:
            return True
        if host is None:
            return self.unix
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return False
        return any(address in network for network in self.networks)


def parse_trusted(value: str | Iterable[str]) -> TrustedPeers:
    """``TrustedPeers`` from a comma-separated string or a sequence (``ValueError`` names a bad entry)."""
    entries = value.split(",") if isinstance(value, str) else [part for item in value for part in item.split(",")]
    for entry in entries:
        entry = entry.strip()
        if entry and entry not in ("*", "unix"):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address, a network, '*' or 'unix'") from None
    return TrustedPeers(entries)
