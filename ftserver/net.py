"""Listening sockets: TCP (optionally one per worker with SO_REUSEPORT) and Unix sockets,
``AcceptBackoff`` (what an accept loop does when accept() fails for want of descriptors),
``refuse_new_connections`` (the first step of closing a listener without a reset) and
``TrustedPeers`` (the peers trusted with proxy headers).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import logging
import os
import socket
import stat
import struct
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
#: How long a listener that refuses new connections is still accepted from before it is
#: closed: connections whose handshake was under way complete within a round trip.
SETTLE = 0.05

# A classic BPF socket filter that drops TCP segments with SYN set and lets the rest in.
# A socket filter on a TCP socket sees the segment from its TCP header on; byte 13 holds
# the flags. (ldb [13]; jset #SYN, drop, keep; drop: ret #0; keep: ret #-1)
_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
_DROP_SYN = ((0x30, 0, 0, 13), (0x45, 0, 1, 0x02), (0x06, 0, 0, 0), (0x06, 0, 0, 0xFFFFFFFF))


@functools.cache
def _drop_syn_program() -> tuple[object, bytes]:
    """``struct sock_fprog`` for ``_DROP_SYN``, and the buffer it points to (kept alive)."""
    import ctypes  # only a stopping server needs it

    code = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_SYN)
    buffer = ctypes.create_string_buffer(code, len(code))
    return buffer, struct.pack("HL", len(_DROP_SYN), ctypes.addressof(buffer))


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


def parse_permissions(value: int | str) -> int:
    """A file mode for ``--uds-permissions``: an int, or octal text (``660``, ``0660``,
    ``0o660``); ``ValueError`` names a bad one."""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = str(value).strip().lower().removeprefix("0o")
        if not text or any(char not in "01234567" for char in text):
            raise ValueError(f"must be an octal file mode such as 660 or 0o660, got {value!r}")
        mode = int(text, 8)
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"must be an octal file mode between 0 and 0o7777, got {value!r}")
    return mode


def bind_unix(path: str, backlog: int, mode: int | None = None) -> socket.socket:
    """A listening Unix socket at ``path``, its file's permissions ``mode`` (``--uds-permissions``;
    default 0o666: who may connect is left to the directory), set before it listens."""
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise BindError(17, f"cannot listen on {path}: exists and is not a socket")
        os.unlink(path)  # a stale socket from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666 if mode is None else mode)
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


def refuse_new_connections(sock: socket.socket) -> bool:
    """Let no new connection into the listener ``sock``; those already queued stay, to be
    accepted before it is closed (closing a listener resets the connections still queued).

    TCP: a socket filter drops the SYNs that reach it, while the last ACK of a handshake
    under way still gets through (so accept for ``SETTLE`` seconds more). A client whose
    SYN was dropped sends it again a second later, to find the port closed (refused at
    once) or, in a ``SO_REUSEPORT`` group, another listener. A Unix socket: its file is
    removed, so connect() fails at once (ENOENT). False if neither applies (not Linux).
    """
    if sock.family == socket.AF_UNIX:
        path = sock.getsockname()
        if not isinstance(path, str) or not path or path.startswith("\0"):
            return False  # unnamed or abstract: no file to remove
        try:
            os.unlink(path)
        except OSError:
            return False
        return True
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, _drop_syn_program()[1])
    except OSError as exc:
        logger.debug("cannot filter SYNs on the listener: %s", exc)
        return False
    return True


def stop_listening(listeners: list[socket.socket], settle: bool) -> None:
    """Close this process's copies of ``listeners`` shared with other processes, which
    accept the connections queued there: first they refuse new connections, then (with
    ``settle``) those others get ``SETTLE`` seconds to take the handshakes under way."""
    if any([refuse_new_connections(sock) for sock in listeners]) and settle:
        time.sleep(SETTLE)
    for sock in listeners:
        sock.close()


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


def listen_url(host: str, port: int, uds: str | None = None, scheme: str = "http") -> str:
    """How the log and the Python API name a listening address (``scheme``: ``https`` over TLS)."""
    if uds:
        return f"unix:{uds}"
    return f"{scheme}://{format_host(host)}:{port}"


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
