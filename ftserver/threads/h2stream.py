"""One HTTP/2 stream as the stream layer's ``HTTPStream``: what an exchange talks to.

The response waits for the stream's send window: bytes the window does not take stay in
the stream's queue, and ``write_paused`` holds the application (``pace``/``drain()``)
until the client opens the window, so a response is never buffered beyond one message
of its application. Body bytes the application reads are given back to the client
(``body_consumed`` → WINDOW_UPDATE).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes
from h2.exceptions import ProtocolError as H2ProtocolError

from ftserver.interfaces.stream import LoopWaiting
from ftserver.protocols.http2.connection import NO_CONTENT
from ftserver.threads.host import report_app_exit

if TYPE_CHECKING:
    from ftserver.interfaces.stream import Exchange
    from ftserver.protocols.events import Request

#: (The connection's driver, ``threads.http2.HTTP2Driver``, which imports this module.)
HTTP2Driver = Any

#: Bytes read from a file per piece when a file is sent over HTTP/2 (no ``sendfile``:
#: every byte is framed and counted against the window).
FILE_PIECE = 64 * 1024


class H2Stream(LoopWaiting):
    """``HTTPStream`` of one HTTP/2 stream (``ftserver.interfaces.stream``); its ``waiter``
    is the application's ``drain()``."""

    # The fields every stream writes are slots; the ones a plain request never changes are
    # read from these class defaults (immutable values) and stored in the instance's
    # __dict__ only when they do change (as ``ASGIHTTPCycle``'s).
    __slots__ = (
        "driver",
        "stream_id",
        "request",
        "exchange",
        "write_paused",
        "head_pending",
        "discard",
        "out",
        "end_pending",
        "ended",
        "app_done",
        "body_open",
        "started_at",
        "__dict__",
    )

    closed = False  # reset (by either side) or the connection went
    trailers: list[tuple[bytes, bytes]] | None = None
    waiter: asyncio.Future[None] | None = None  # the app's drain()
    received = 0  # request body bytes received
    unread = 0  # of which the application has not read
    body_mark = 0  # (check_body) ``received`` as the tick last saw it
    body_since = 0.0
    blocked_since = 0.0  # (check_window) since when queued bytes wait for a window

    def __init__(self, driver: HTTP2Driver, request: Request, started_at: float) -> None:
        self.driver = driver
        self.stream_id = request.stream_id
        self.request = request
        self.exchange: Exchange | None = None
        self.write_paused = driver.transport_paused
        self.head_pending = True
        self.discard = request.method == "HEAD"  # response body bytes are not sent
        self.out: deque[bytes | memoryview] = deque()  # body bytes waiting for the window
        self.end_pending = False  # the response ends once ``out`` is sent
        self.ended = False  # END_STREAM sent
        self.app_done = False
        self.body_open = request.has_body
        self.started_at = started_at

    # -- the stream interface ----------------------------------------------------------

    def send_body(self, exchange: Exchange, body: bytes, more: bool) -> None:
        if self.closed or self.ended:
            return
        if self.head_pending:
            if not more and self._send_whole(exchange, body):
                return
            self._send_head(exchange, None if more else len(body), not more and not body)
            if self.ended or self.closed:
                return
        if body and not self.discard:
            self.out.append(body)
        if not more:
            self.end_pending = True
        self.driver.pump(self)

    def _send_whole(self, exchange: Exchange, body: bytes) -> bool:
        """The whole response in one piece, framed at once when it fits one frame and the
        windows (``HTTP2Connection.send_response``); False: sent the usual way."""
        status = exchange.status
        length: int | None = len(body)
        if status in NO_CONTENT:
            length = None  # (as _send_head)
            body = b""
        elif self.discard:  # HEAD
            body = b""
        driver = self.driver
        if not driver.conn.send_response(self.stream_id, status, exchange.headers, driver.w.date, length, body):
            return False
        self.head_pending = False
        self.end_pending = self.ended = True
        driver.flush_soon()
        if self.app_done:  # (an answer of ours after the app: else its end forgets the stream)
            self.finish_if_done()
        return True

    def _send_head(self, exchange: Exchange, length: int | None, end: bool) -> None:
        """The response head; ``length`` (the whole body's, when known) becomes its
        ``content-length`` unless the app gave one; ``end``: nothing follows it."""
        self.head_pending = False
        status = exchange.status
        if status in NO_CONTENT:
            self.discard = True
            end = end or length is not None  # (a known length: the app's last message)
            length = None  # (RFC 9110 §8.6: none on 204; a 304's would describe another response)
        elif self.discard:  # HEAD
            end = end or length is not None
        driver = self.driver
        conn = driver.conn
        fields = conn.response_fields(status, exchange.headers, driver.w.date, length)
        if not self.send_fields(fields, end):
            return
        if end:
            self.ended = True
            self.finish_if_done()
        driver.flush_soon()

    def send_fields(self, fields: list[tuple[bytes, bytes]], end: bool) -> bool:
        """HEADERS on the stream; False when the client is gone: h2 has closed the stream or
        the connection meanwhile (a GOAWAY with an error whose ``connection_lost`` has not
        come yet, as when h2load ends a timed run), and the stream is then gone, quietly."""
        conn = self.driver.conn
        try:
            conn.send_headers(self.stream_id, fields, end)
        except H2ProtocolError:
            if conn.stream_open(self.stream_id):
                raise
            self.gone()
            return False
        return True

    def send_trailers(self, exchange: Exchange, trailers: list[tuple[bytes, bytes]]) -> None:
        """End the response with trailer fields if the client asked for them (``te:
        trailers``, RFC 9113 §8.1), else without."""
        if self.closed or self.ended:
            return
        if self.head_pending:
            self._send_head(exchange, None, False)
        for name, value in self.request.headers:
            if name == b"te" and value.lower() == b"trailers":
                fields = self.driver.conn.response_fields(200, trailers, None, None, trailers=True)
                self.trailers = fields[1:]  # (without the :status it starts with)
                break
        self.end_pending = True
        self.driver.pump(self)

    async def send_file(self, exchange: Exchange, file: Any, offset: int, count: int) -> int:
        """The file's bytes, read a piece at a time and sent as the window allows (after
        the head, which declares ``count`` as its length unless the app set one)."""
        if self.closed:
            return 0
        if self.head_pending:
            self._send_head(exchange, count, False)
        if self.discard:
            return 0
        fd = file.fileno()
        sent = 0
        while sent < count and not self.closed:
            piece = os.pread(fd, min(FILE_PIECE, count - sent), offset + sent)
            if not piece:
                break
            sent += len(piece)
            self.out.append(piece)
            self.driver.pump(self)
            if self.write_paused:
                await self.drain()
        return sent

    def want_body(self, exchange: Exchange) -> None:
        pass  # the window is open: the client sends as it may

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        self.unread -= nbytes
        if self.body_open and not self.closed:
            driver = self.driver
            driver.conn.acknowledge(self.stream_id, nbytes)
            driver.flush_soon()

    async def drain(self) -> None:
        if self.write_paused and not self.closed:
            await self._wait()

    def abort(self) -> None:
        """Reset this stream (the client does not read its response)."""
        self.reset(ErrorCodes.CANCEL)

    def response_complete(self, exchange: Exchange) -> None:
        w = self.driver.w
        w.stats.requests += 1
        if w.report:  # the access log, metrics
            w.report_response(exchange, self.driver.info.client, self.started_at)

    def send_last(self, exchange: Exchange, body: bytes) -> None:
        # (send_body, the usual whole response framed at once)
        if not (self.head_pending and not self.closed and self._send_whole(exchange, body)):
            self.send_body(exchange, body, False)
        self.response_complete(exchange)

    def app_finished(self, exchange: Exchange, exc: BaseException | None) -> None:
        if self.driver.w.concurrency is not None:
            self.driver.w.concurrency.done(exchange)
        if exc is not None or not exchange.complete:
            report_app_exit(exchange, exc)
        self.app_done = True
        if not exchange.complete and not self.closed:
            if self.head_pending and not exchange.disconnected:
                try:
                    exchange.internal_error()
                except Exception:  # noqa: BLE001 - e.g. an invalid field the app set
                    self.reset(ErrorCodes.INTERNAL_ERROR)
            else:
                self.reset(ErrorCodes.INTERNAL_ERROR)
        if self.ended or self.closed:  # (finish_if_done)
            self.driver.forget(self)

    # -- the driver's side ---------------------------------------------------------------

    def wake(self) -> None:
        """The window or the transport let the application write again (or the stream went)."""
        self._wake()

    def reset(self, code: int) -> None:
        """End the stream at once: RST_STREAM to the client, the exchange told it went."""
        if self.closed:
            return
        driver = self.driver
        driver.conn.reset(self.stream_id, code)
        driver.flush_soon()
        self.gone()

    def gone(self) -> None:
        """Nothing more goes either way on this stream (reset by either side)."""
        if self.closed:
            return
        self.closed = True
        self.out.clear()
        self.body_open = False
        exchange = self.exchange
        if exchange is not None and not exchange.complete:
            exchange.on_disconnect()
        self.wake()
        self.finish_if_done()

    def finish_if_done(self) -> None:
        """Forget the stream once both the application and the stream are done."""
        if self.app_done and (self.ended or self.closed):
            self.driver.forget(self)
