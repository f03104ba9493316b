"""WebSocket over HTTP/2 (RFC 8441): an extended CONNECT stream carries one WebSocket.

``open_extended_connect`` checks the request (``:protocol websocket``, version 13; RFC
8441 §4-5) and opens the adapter's WebSocket exchange on an ``H2WebSocketStream``, or
answers at once (501 for another protocol, 400/426 for a bad handshake). Accepted, the
stream answers ``:status 200`` and stays open both ways: the WebSocket's frames ride in its
DATA frames, under its flow-control windows (the application's sends wait for the window);
the end of the WebSocket is END_STREAM after the Close frame, a reset is a lost connection
(1006). The exchange (``interfaces.websocket``) is the one HTTP/1.1 uses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes

from ftserver.protocols.errors import ProtocolError
from ftserver.threads.h2stream import H2Stream

if TYPE_CHECKING:
    from ftserver.interfaces.stream import Exchange
    from ftserver.protocols.http2 import ExtendedConnect

logger = logging.getLogger("ftserver.error")

#: (The connection's driver, ``threads.http2.HTTP2Driver``, which imports this module.)
HTTP2Driver = Any

#: Frames waiting for the client's window above which its own bytes are no longer given back
#: to its window: the pongs of a ping flood from a client that opens no window stay bounded.
#: (An application's sends wait for the window: they never queue more than a frame or two.)
OUT_FRAMES_HIGH = 64


class H2WebSocketStream(H2Stream):
    """The stream of an extended CONNECT. Until ``upgrade`` it answers like any stream (a
    denial is an ordinary response); after it, it is the WebSocket's transport."""

    __slots__ = ("upgraded", "withheld")

    def __init__(self, driver: HTTP2Driver, request: ExtendedConnect, started_at: float) -> None:
        super().__init__(driver, request, started_at)
        self.upgraded = False
        self.withheld = 0  # bytes read but not given back to the client's window yet

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        if len(self.out) > OUT_FRAMES_HIGH:
            self.unread -= nbytes
            self.withheld += nbytes
            return
        super().body_consumed(exchange, nbytes)

    def wake(self) -> None:
        withheld = self.withheld
        if withheld and len(self.out) <= OUT_FRAMES_HIGH and self.exchange is not None:
            self.withheld = 0
            self.unread += withheld
            super().body_consumed(self.exchange, withheld)
        super().wake()

    def upgrade(self, exchange: Exchange) -> H2WebSocketStream:
        """Accept: ``:status 200`` with ``exchange.headers`` (subprotocol, extensions, the
        app's extra fields; no Sec-WebSocket-Accept on HTTP/2, RFC 8441 §5), logged as the
        handshake's response; the stream stays open for the frames."""
        driver = self.driver
        conn = driver.conn
        fields = conn.response_fields(200, exchange.headers, driver.w.date, None)
        exchange.status = 200
        self.head_pending = False
        self.upgraded = True
        if not self.closed and self.send_fields(fields, False):
            driver.flush_soon()
        w = driver.w
        w.stats.requests += 1
        if w.report:  # the access log (the 200), metrics
            w.report_response(exchange, driver.info.client, self.started_at)
        return self

    def response_complete(self, exchange: Exchange) -> None:
        """Before ``upgrade``: a denial's response is complete. After it: the WebSocket is
        over, END_STREAM follows the frames still queued (the Close)."""
        if not self.upgraded:
            super().response_complete(exchange)
            return
        if not self.closed and not self.end_pending:
            self.end_pending = True
            self.driver.pump(self)

    def app_finished(self, exchange: Exchange, exc: BaseException | None) -> None:
        if not self.upgraded:
            super().app_finished(exchange, exc)
            return
        # The exchange sent its Close (1000 or 1011); the stream ends when the close
        # handshake does (or its timeout, on the tick).
        self.app_done = True
        self.finish_if_done()

    def on_tick(self, now: float) -> None:
        """The worker's tick: the WebSocket's pings and close timeout."""
        exchange = self.exchange
        if exchange is not None and not self.closed:
            exchange.on_tick(now)  # type: ignore[attr-defined]

    def on_shutdown(self) -> None:
        """Graceful stop: an open WebSocket is closed with 1001."""
        exchange = self.exchange
        if exchange is not None and not self.closed:
            exchange.on_shutdown()  # type: ignore[attr-defined]


def open_extended_connect(driver: HTTP2Driver, request: ExtendedConnect, started_at: float) -> H2WebSocketStream | None:
    """The stream of an extended CONNECT with its WebSocket exchange (not started yet), or
    ``None`` once refused: another ``:protocol`` is 501 (we tunnel only WebSocket), a
    handshake that breaks RFC 6455/8441 a 400 (426 with ``sec-websocket-version: 13`` for
    another version). The application never sees a refused one."""
    from ftserver.protocols.websocket import HandshakeRefused, check_handshake  # (wsproto: only if used)

    if request.protocol.lower() != "websocket":
        answer(driver, request.stream_id, ProtocolError(f"extended CONNECT for {request.protocol[:64]!r}: only websocket is served", 501))
        return None
    try:
        offer = check_handshake(request.method, "2", request.headers, False)
    except HandshakeRefused as exc:
        logger.info("WebSocket handshake over HTTP/2 from %s refused: %s", driver.info.client, exc)
        answer(driver, request.stream_id, exc)
        return None
    stream = H2WebSocketStream(driver, request, started_at)
    driver.streams[request.stream_id] = stream
    driver.idle_since = 0.0
    stream.exchange = driver.w.adapter.open_websocket(stream, request, driver.info, offer)
    return stream


def answer(driver: HTTP2Driver, stream_id: int, exc: ProtocolError) -> None:
    """A short plain-text response with ``exc``'s status (and its ``headers``), then the
    request's side of the stream reset with NO_ERROR (RFC 9113 §8.1: it is not read)."""
    conn = driver.conn
    body = f"{exc}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), *exc.headers]
    fields = conn.response_fields(exc.status_code, headers, driver.w.date, len(body))
    fits = conn.send_window(stream_id) >= len(body) and len(body) <= conn.max_frame
    conn.send_headers(stream_id, fields, not fits)
    if fits:
        conn.send_data(stream_id, body, True)
    conn.reset(stream_id, ErrorCodes.NO_ERROR)
    driver.flush_soon()
