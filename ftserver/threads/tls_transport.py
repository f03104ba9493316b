"""TLS on the worker's own socket transport: ``TLSTransport``, a ``SocketTransport`` whose
bytes go through an ``ssl.SSLObject`` over two ``MemoryBIO``s (docs/tls.md, "Handshakes").

Driven straight from ``WorkerLoop`` like a plain connection: no asyncio ``Handle``, no
``SSLProtocol`` buffers in between; the handshake runs on the same events, bounded by a timer.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ftserver.threads.sockets import READ_SIZE, SocketTransport

if TYPE_CHECKING:
    import asyncio
    import socket

    from ftserver.threads.sockets import WorkerLoop

logger = logging.getLogger("ftserver.error")

#: What ``SSLObject.read`` raises when the records received so far hold no more plaintext.
_WANT = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
#: The most plaintext one TLS record holds: ``SSLObject.read`` returns one record at a time.
RECORD_SIZE = 16384


class TLSTransport(SocketTransport):
    """A server-side TLS connection on ``WorkerLoop``, with ``SocketTransport``'s contract.

    ``start()`` begins the handshake; once it is done, ``make_protocol(alpn)`` gives the
    protocol (the driver ALPN's answer calls for), which then gets ``connection_made``. A
    handshake that fails, or is not done within ``timeout`` seconds, closes the socket, is
    logged at debug; either way ``on_handshake_done(self)`` is called once it is over.
    No ``sendfile`` (the bytes must be encrypted) and no half-close (``can_write_eof``).
    """

    __slots__ = ("_ssl", "_incoming", "_outgoing", "_handshaking", "_timer", "_make_protocol", "_on_handshake_done")

    def __init__(
        self,
        loop: WorkerLoop,
        sock: socket.socket,
        context: ssl.SSLContext,
        make_protocol: Callable[[str | None], asyncio.Protocol],
        timeout: float,
        on_handshake_done: Callable[[TLSTransport], None],
    ) -> None:
        super().__init__(loop, sock, None)  # type: ignore[arg-type]  # the protocol comes after the handshake
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._extra["sslcontext"] = context
        self._extra["ssl_object"] = self._ssl
        self._handshaking = True
        self._make_protocol = make_protocol
        self._on_handshake_done = on_handshake_done
        self._timer: asyncio.TimerHandle | None = loop.call_later(timeout, self._handshake_timeout, timeout)

    def start(self) -> None:
        """Wait for the client's hello (the protocol is made once the handshake is done)."""
        self._update()

    # -- events from WorkerLoop ----------------------------------------------------

    def _read_ready(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if self._handshaking:
                self._fail(exc)
            else:
                self._force_close(exc)
            return
        if not data:
            if self._handshaking:
                self._fail(ConnectionResetError("the client closed the connection"))
            else:
                self._eof()
            return
        self._incoming.write(data)
        if self._handshaking:
            self._handshake()
            if self._handshaking or self._lost:
                return
        self._deliver()

    def _deliver(self) -> None:
        """Decrypt every record received whole and hand the plaintext to the protocol (what
        stays in the BIO is the start of a record: only more bytes from the socket complete it,
        so pausing and resuming reading needs nothing more than a plain connection does)."""
        read = self._ssl.read
        try:
            data = read(RECORD_SIZE)
            if not data:  # the client's close_notify
                self._eof()
                return
            more = b""
            if self._incoming.pending or self._ssl.pending():  # (else nothing more to decrypt)
                try:
                    more = read(RECORD_SIZE)  # (one record at a time: a large read holds several)
                except (ssl.SSLZeroReturnError, *_WANT):
                    pass  # (a close_notify after data: the next read event sees the EOF)
            if more:
                chunks = [data, more]
                try:
                    while more := read(RECORD_SIZE):
                        chunks.append(more)
                except _WANT:
                    pass
                data = b"".join(chunks)
        except _WANT:
            data = b""
        except ssl.SSLZeroReturnError:
            self._eof()
            return
        except ssl.SSLError as exc:
            self._force_close(exc)
            return
        if self._outgoing.pending:  # post-handshake messages (a key update...)
            self._send_records()
        if data:
            self._protocol.data_received(data)

    def _eof(self) -> None:
        self._read_eof = True
        self._update()
        if not self._protocol.eof_received():
            self.close()

    # -- the handshake ---------------------------------------------------------------

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except _WANT:
            self._send_records()
            return
        except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
            self._send_records()  # the alert, if it can go
            self._fail(exc)
            return
        self._handshaking = False
        self._cancel_timer()
        self._send_records()  # the server's last flight, session tickets
        self._protocol = self._make_protocol(self._ssl.selected_alpn_protocol())
        self._on_handshake_done(self)
        self._protocol.connection_made(self)
        if self._incoming.pending and not self._lost:  # the first request came with the Finished
            self._deliver()

    def _handshake_timeout(self, timeout: float) -> None:
        self._timer = None
        if self._handshaking and not self._lost:
            self._fail(TimeoutError(f"no TLS handshake within {timeout:g} s"))

    def _fail(self, exc: BaseException) -> None:
        peer = self._extra.get("peername")
        logger.debug("TLS handshake with %s failed: %r", peer, exc)
        self._cancel_timer()
        self._force_close(exc if isinstance(exc, (ConnectionError, TimeoutError)) else ConnectionError(str(exc)))

    def _cancel_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    # -- asyncio.WriteTransport ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._closing:
            return
        try:
            self._ssl.write(data)
        except ssl.SSLError as exc:
            self._force_close(exc)
            return
        self._send_records()

    def _send_records(self) -> None:
        """What the SSL object produced, to the socket (``SocketTransport.write``: sent at once,
        or buffered with its write-buffer limits)."""
        records = self._outgoing.read()
        if records:
            SocketTransport.write(self, records)

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("a TLS connection cannot be half-closed")

    async def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        raise NotImplementedError("no sendfile over TLS: the bytes must be encrypted")

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Send our ``close_notify`` (not waiting for the client's), then close as a plain
        connection does: once what is buffered has been sent."""
        if self._closing:
            return
        if not self._handshaking and not self._lost:
            try:
                self._ssl.unwrap()
            except (ssl.SSLError, OSError):  # SSLWantReadError: the client's reply is not awaited
                pass
            self._send_records()
        super().close()

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timer()
        if self._protocol is None:  # the handshake never completed: no protocol was made
            self._on_handshake_done(self)
            self._sock.close()
            return
        super()._call_connection_lost(exc)
