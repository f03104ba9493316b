"""An HTTP/1.1 connection after ``101 Switching Protocols`` (a WebSocket): the transport's
protocol and the exchange's stream from then on. Bytes go both ways unframed; what they
mean is the exchange's business (``interfaces.websocket``)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ftserver.threads.deadlines import Deadlines

if TYPE_CHECKING:
    from ftserver.interfaces.stream import ConnectionInfo, Exchange
    from ftserver.protocols.http1 import H1Request
    from ftserver.threads.host import WorkerHost

logger = logging.getLogger("ftserver.error")

#: Received bytes the exchange has not consumed above which the socket stops being read.
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024


class UpgradedConnection(Deadlines, asyncio.Protocol):
    """The connection of one upgraded exchange; ``HTTP1Driver.upgrade`` makes it.

    Exempt from the HTTP keep-alive and body timeouts (the exchange has its own: ping and
    close timeouts, through ``on_tick``); the send timeout still holds (a client that
    reads nothing for ``--timeout-io`` while the application sends is dropped).
    """

    __slots__ = (
        "w",
        "transport",
        "info",
        "cycle",
        "buffered",
        "read_paused",
        "write_paused",
        "drain_waiter",
        "closed",
        "closing",
        "send_mark",
        "send_stalled_at",
    )

    def __init__(self, w: WorkerHost, transport: asyncio.Transport, info: ConnectionInfo, exchange: Exchange, write_paused: bool) -> None:
        self.w = w
        self.transport = transport
        self.info = info
        self.cycle: Exchange | None = exchange
        self.buffered = 0
        self.read_paused = False
        self.write_paused = write_paused
        self.drain_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.closing = False
        self.send_mark = 0
        self.send_stalled_at = 0.0

    @classmethod
    def take_over(cls, driver: Any, exchange: Exchange) -> UpgradedConnection:
        """The connection of ``driver`` (an ``HTTP1Driver`` that has written the ``101``)
        from now on: the access-log line of the handshake, then the bytes the client sent
        after it go to the exchange."""
        w = driver.w
        exchange.status = 101
        w.stats.requests += 1
        if w.report:  # the access log (the 101), metrics
            w.report_response(exchange, driver.info.client, driver.started_at)
        transport = driver.transport
        connection = cls(w, transport, driver.info, exchange, driver.write_paused)
        w.connections.discard(driver)
        w.connections.add(connection)
        transport.set_protocol(connection)
        early = driver.conn.trailing_data
        if early:
            connection.data_received(bytes(early))
        if driver.read_paused and not connection.read_paused:
            transport.resume_reading()
        return connection

    # -- asyncio.Protocol ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        if cycle is None:
            return
        self.buffered += len(data)
        cycle.on_body(data)
        if self.buffered > READ_HIGH_WATER and not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        cycle = self.cycle
        if cycle is not None:
            cycle.on_body_end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.w
        w.connections.discard(self)
        w.stats.closed += 1
        cycle = self.cycle
        if cycle is not None:
            self.cycle = None
            cycle.on_disconnect()
        self._wake_drain()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.send_stalled_at = 0.0
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the stream interface ----------------------------------------------------------

    def send_body(self, exchange: Exchange, body: bytes, more: bool) -> None:
        if body and not self.closed:
            self.transport.write(body)

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        self.buffered -= nbytes
        if self.read_paused and self.buffered < READ_LOW_WATER and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def want_body(self, exchange: Exchange) -> None:
        pass

    async def drain(self) -> None:
        if not self.write_paused or self.closed:
            return
        waiter = self.drain_waiter
        if waiter is None:
            self.drain_waiter = waiter = asyncio.get_running_loop().create_future()
        await waiter

    def abort(self) -> None:
        self.transport.abort()

    def response_complete(self, exchange: Exchange) -> None:
        """The WebSocket is over: close (after the bytes still buffered, under the send timeout)."""
        if self.w.concurrency is not None:
            self.w.concurrency.done(exchange)
        self._close()

    def app_finished(self, exchange: Exchange, exc: BaseException | None) -> None:
        # (the exchange closes the WebSocket itself: Close 1000 or 1011)
        if self.w.concurrency is not None:
            self.w.concurrency.done(exchange)

    def send_trailers(self, exchange: Exchange, trailers: list[tuple[bytes, bytes]]) -> None:
        raise RuntimeError("an upgraded connection has no trailers")

    async def send_file(self, exchange: Exchange, file: Any, offset: int, count: int) -> int:
        raise RuntimeError("an upgraded connection sends no files")

    def upgrade(self, exchange: Exchange) -> Any:
        raise RuntimeError("the connection was already upgraded")

    # -- the worker's duties -----------------------------------------------------------

    def check_timeouts(self, now: float, keep_alive_timeout: float) -> None:
        """The tick: the send timeout, then the exchange's own (pings, close handshake)."""
        if self.check_send(now):
            return
        cycle = self.cycle
        if cycle is not None and not self.closed:
            cycle.on_tick(now)  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        """Graceful stop: the exchange closes (a WebSocket with 1001)."""
        self.closing = True
        cycle = self.cycle
        if cycle is not None and not self.closed:
            cycle.on_shutdown()  # type: ignore[attr-defined]

    def _close(self) -> None:
        if not self.closed:
            self.closed = True
            transport = self.transport
            transport.close()
            if not transport.get_write_buffer_size():
                self.w.connections.discard(self)


def open_upgrade(driver: Any, request: H1Request, protocols: bytes) -> None:
    """An HTTP/1.1 request with ``Upgrade`` (the parser's fast path leaves them to its slow
    one): a WebSocket handshake that passes its rules (else ``HandshakeRefused``: 400 or
    426, the app never sees it) opens the adapter's WebSocket exchange on ``driver``;
    anything else is plain HTTP, said once per worker thread."""
    from ftserver.protocols.websocket import check_handshake, is_websocket_handshake  # (wsproto: only if used)

    w = driver.w
    if w.adapter.websocket is None or not is_websocket_handshake(protocols, request.headers):
        if not w.upgrade_warned:
            w.upgrade_warned = True
            logger.warning(
                "Unsupported upgrade request (Upgrade: %s): served as plain HTTP/1.1 (logged once per worker thread)",
                protocols.decode("latin-1"),
            )
        driver._on_request(request)
        return
    driver.request = request
    driver.started_at = time.perf_counter()
    offer = check_handshake(request.method, request.http_version, request.headers, request.has_body)
    driver.request_read = driver.head_pending = True
    driver.continue_sent = False
    driver.idle_since = 0.0
    driver.cycle = w.adapter.open_websocket(driver, request, driver.info, offer)
