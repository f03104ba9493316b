"""Listening sockets: TCP (optionally one per worker with SO_REUSEPORT) and Unix sockets."""

from __future__ import annotations

import os
import socket
import stat


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
