"""The deadlines of an HTTP/1.1 connection, checked by the worker's tick (once a second, more
often with a sub-second keep-alive timeout; no timer per request): the keep-alive and
request-head timeouts, the request-body timeout and the send timeout (docs/architecture.md, "The per-request path"); and the lingering close
after an error answer (``Lingering``)."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from ftserver.protocols.errors import ProtocolError
from ftserver.threads.sockets import SocketTransport

if TYPE_CHECKING:
    from ftserver.interfaces.stream import ConnectionInfo, Exchange
    from ftserver.protocols.http1 import H1Request
    from ftserver.threads.host import WorkerHost

logger = logging.getLogger("ftserver.error")

#: Lingering close: after an error answer the client's input is read and dropped for at
#: most LINGER_SECONDS (LINGER_IDLE without a byte) and LINGER_BYTES, then the socket closes.
LINGER_SECONDS = 5.0
LINGER_IDLE = 2.0
LINGER_BYTES = 16 * 1024 * 1024


class Deadlines:
    """Mixin of ``HTTP1Driver`` (its timeouts) and ``HTTP2Driver`` (its send timeout, its
    close). The driver owns the state they read and write."""

    __slots__ = ()

    w: WorkerHost
    conn: Any
    transport: asyncio.Transport | None
    info: ConnectionInfo
    cycle: Exchange | None
    request: H1Request | None
    closed: bool
    idle_since: float
    head_started: float
    request_read: bool
    read_paused: bool
    continue_sent: bool
    body_mark: int
    body_since: float
    send_mark: int
    send_stalled_at: float

    head_pending: bool
    client_eof: bool

    def _close(self) -> None: ...
    def _flush(self) -> None: ...
    def _send_error(self, exc: ProtocolError) -> None: ...

    def _answer_and_close(self, exc: ProtocolError) -> None:
        """Answer ``exc`` if nothing of a response was sent yet, then close (lingering: the
        client may still be sending what we did not read)."""
        cycle = self.cycle
        answered = False
        if (cycle is None or self.head_pending) and not self.closed:
            try:
                self._send_error(exc)
                answered = True
            except Exception:  # noqa: BLE001 - the connection is being closed anyway
                pass
        self.cycle = None
        if answered and not self.client_eof:
            self.close_lingering()
        else:
            self._close()

    def close_lingering(self) -> None:
        """Close after an error answer without losing it: our side is shut (FIN after the
        answer; TLS cannot half-close) and the client's bytes are read and dropped until it
        closes or ``Lingering``'s bounds. Closing with unread input would send a RST, and a
        RST makes the client's kernel drop the answer it has not read yet (RFC 9112 §9.6)."""
        if self.closed:
            return
        self._flush()
        self.closed = True
        transport = self.transport
        assert transport is not None
        w = self.w
        w.connections.discard(self)
        lingering = Lingering(w, transport)
        transport.set_protocol(lingering)
        w.connections.add(lingering)
        if transport.can_write_eof():
            transport.write_eof()
        if self.read_paused:
            transport.resume_reading()

    def close_transport(self) -> None:
        """Mark the driver closed and close its transport once what is buffered is sent.
        ``connection_lost`` follows from the loop; the connection is forgotten at once, so
        shutdown does not wait on it, unless bytes still wait for the client: the tick's
        send timeout (``check_send``) must see it."""
        self.closed = True
        transport = self.transport
        transport.close()  # type: ignore[union-attr]
        if not transport.get_write_buffer_size():  # type: ignore[union-attr]
            self.w.connections.discard(self)

    def check_timeouts(self, now: float, keep_alive_timeout: float) -> None:
        """Called by the worker's once-a-second tick."""
        if self.check_send(now):
            return
        since = self.idle_since
        if since:
            if since == self.w.last_now:
                # Idle since after the last check: from the clock cached then, which lags
                # the real time by up to an interval. Counted from now instead (never a
                # close before the timeout; one interval late at most), marked one float
                # step later, so that the next check does not take it for new again.
                self.idle_since = since = math.nextafter(now, math.inf)
            # Waiting for a request head: the keep-alive timeout counts from the end of the
            # last response; a head in progress also gets --timeout-header-read from when
            # this tick first saw its bytes (a head started earlier belonged to an earlier request).
            head = self.conn.trailing_size and not self.closed
            if head:
                started = self.head_started
                if started < since:
                    self.head_started = started = since if since > now else now
                late = now - started >= self.w.timeout_header_read
            else:
                late = False
            if late or now - since > keep_alive_timeout:
                if head:  # a request head that never completed (slow or stalled client)
                    self._send_error(ProtocolError("request head not received in time", 408))
                self._close()
        elif not self.request_read:
            self._check_body(now)

    def _check_body(self, now: float) -> None:
        """The request body timeout: a body that makes no progress for ``--timeout-io``
        while the server waits for it ends the exchange.

        Only the tick looks (no timer per request): it compares the protocol object's
        ``body_progress`` with what it saw last. The clock does not run while reading is
        paused (the application is behind, not the client) or while the client waits for
        our ``100 Continue``. At the timeout the exchange is told (``on_body_timeout``: for
        ASGI and RSGI the client is gone); the client gets ``408`` if nothing of the
        response was sent, and the connection is closed.
        """
        since = self.body_since
        if since < 0 or self.closed:
            return  # told already: the exchange answers (WSGI)
        request = self.request
        if self.read_paused or (request is not None and request.expect_continue and not self.continue_sent):
            self.body_since = 0.0
            return
        mark = self.conn.body_progress
        if not since or mark != self.body_mark:
            self.body_mark = mark
            self.body_since = now
            return
        timeout = self.w.timeout_io
        if now - since < timeout:
            return
        logger.info("request body from %s: no data for %g s", self.info.client, timeout)
        cycle = self.cycle
        if cycle is None:  # the rest of a body discarded after the response
            self._close()
        elif cycle.on_body_timeout():
            self._answer_and_close(ProtocolError("request body not received in time", 408))
        else:
            self.body_since = -1.0

    def check_send(self, now: float) -> bool:
        """The send timeout: response bytes that wait for a client which has read none of
        them for ``--timeout-io`` seconds cost the connection (dropped, logged at info),
        whatever the interface or the state of the exchange. True when it was dropped."""
        transport = self.transport
        if type(transport) is SocketTransport:
            waiting = transport.write_waiting()
            mark = transport.write_progress() if waiting else 0
        else:  # asyncio's transports (TLS): the buffer shrinking is the progress
            size = transport.get_write_buffer_size() if transport is not None else 0
            waiting = size > 0
            mark = -size
        if not waiting:
            self.send_stalled_at = 0.0
            return False
        progress = mark > self.send_mark
        self.send_mark = mark
        if progress or not self.send_stalled_at:
            self.send_stalled_at = now
            return False
        timeout = self.w.timeout_io
        if now - self.send_stalled_at < timeout:
            return False
        logger.info("client %s took no response bytes for %g s: connection dropped", self.info.client, timeout)
        transport.abort()  # (also when closed: close() waits for the buffer to be sent)
        return True


class Lingering(asyncio.Protocol):
    """A connection closing after an error answer: what the client still sends is dropped
    until it closes, for at most ``LINGER_SECONDS`` (``LINGER_IDLE`` without a byte) and
    ``LINGER_BYTES``; then the socket closes (after the answer, or dropped if the client
    has not read it by then)."""

    __slots__ = ("w", "transport", "until", "heard", "left", "closed", "closing", "cycle")

    def __init__(self, w: WorkerHost, transport: asyncio.Transport) -> None:
        self.w = w
        self.transport = transport
        self.until = w.now + LINGER_SECONDS
        self.heard = w.now
        self.left = LINGER_BYTES
        self.closed = False
        self.closing = True  # (the worker's drain does not ask it to shut down)
        self.cycle = None

    def data_received(self, data: bytes) -> None:
        self.heard = self.w.now
        self.left -= len(data)
        if self.left < 0:
            self._close()

    def eof_received(self) -> bool:
        self._close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
        w = self.w
        w.connections.discard(self)
        w.stats.closed += 1

    def check_timeouts(self, now: float, keep_alive_timeout: float) -> None:
        if now >= self.until or now - self.heard >= LINGER_IDLE:
            if self.transport.get_write_buffer_size():
                self.abort()  # (the client has not read the answer in all this time)
            else:
                self._close()

    def shutdown(self) -> None:
        self._close()

    def abort(self) -> None:
        self.closed = True
        self.transport.abort()

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
