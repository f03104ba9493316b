"""The file body of an HTTP/1.1 response (``HTTP1Driver.send_file``): ``sendfile`` on a
plain socket, a paced copy where the bytes must pass through Python (TLS)."""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from ftserver.threads.sockets import SocketTransport

if TYPE_CHECKING:
    from ftserver.interfaces.stream import Exchange
    from ftserver.threads.host import WorkerHost

#: Bytes of a file read and written at a time where ``sendfile`` cannot be used (TLS).
FILE_PIECE = 64 * 1024


class FileBody:
    """Mixin of ``HTTP1Driver``: its ``send_file`` (the stream interface). The driver owns
    the state read and written here."""

    __slots__ = ()

    w: WorkerHost
    conn: Any
    transport: asyncio.Transport | None
    closed: bool
    head_pending: bool
    write_paused: bool
    pending: list[bytes]

    def _flush(self) -> None: ...
    async def drain(self) -> None: ...

    async def send_file(self, cycle: Exchange, file: Any, offset: int, count: int) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` as the response body with
        ``loop.sendfile`` (``os.sendfile`` on a plain socket: the bytes never enter Python).

        The head goes first if it has not (declaring ``content-length: count`` unless the
        app set its own); the body is not ended (``send_body(cycle, b"", False)`` does
        that). Returns the bytes sent: fewer than ``count`` for a bodiless response or a
        shorter Content-Length. Not for a response the app declared chunked
        (``Transfer-Encoding``): ``count_body`` raises ``LocalProtocolError`` then.
        """
        if self.closed:
            return 0
        conn = self.conn
        if self.head_pending:
            self.pending.append(conn.send_response(cycle.status, cycle.headers, self.w.date, count, cycle.reason))
            self.head_pending = False
        count = conn.count_body(count)
        self._flush()
        if not count or self.closed:
            return 0
        transport = self.transport
        if type(transport) is SocketTransport:  # (not TLS: the bytes must be encrypted)
            return await transport.sendfile(file, offset, count)
        return await self._copy_file(file, offset, count)

    async def _copy_file(self, file: Any, offset: int, count: int) -> int:
        """``send_file`` on a transport without ``sendfile`` (TLS: the bytes must be
        encrypted): read and write ``FILE_PIECE`` bytes at a time, waiting for the transport
        to drain whenever it is paused, so a slow client holds one piece, not the file;
        asyncio's own fallback would swap the driver out of the transport meanwhile."""
        sent = 0
        fd = file.fileno()
        transport = self.transport
        paused = False
        while sent < count and not self.closed:
            data = os.pread(fd, min(FILE_PIECE, count - sent), offset + sent)
            if not data:
                break  # the file is shorter than it was
            transport.write(data)  # type: ignore[union-attr]
            sent += len(data)
            if self.write_paused:
                paused = True
                await self.drain()
        if not paused:
            await asyncio.sleep(0)  # a client that takes everything at once: let the others in
        return sent
