"""The WebSocket exchange, written once for every interface (ASGI, RSGI) and every HTTP
version: the handshake's answer (accept, or an HTTP response that denies it), message
queues with bounded memory both ways, keep-alive pings and the close handshake.

It drives ``protocols.websocket.WebSocketSession`` (sans-I/O). The driver hands it the
connection's bytes after the handshake (``on_body``) and its loss (``on_disconnect``);
``accept`` asks the stream to ``upgrade``, and the stream it returns carries the frames
(HTTP/1.1: the connection itself after ``101``; HTTP/2: the CONNECT stream's DATA).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from ftserver.interfaces.stream import (
    YIELD_SHIFT,
    ClientDisconnected,
    Exchange,
    HTTPStream,
    LoopWaiting,
    pace,
)
from ftserver.protocols.websocket import (
    ABNORMAL_CLOSURE,
    GOING_AWAY,
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    Closed,
    Offer,
    WebSocketSession,
    accept_fields,
    negotiate_extensions,
)

if TYPE_CHECKING:
    from ftserver.config import Config
    from ftserver.interfaces.stream import ConnectionInfo
    from ftserver.protocols.events import Request

logger = logging.getLogger("ftserver.error")

#: Received messages the application has not taken, in bytes, above which no more bytes
#: are parsed (they wait as raw bytes, and the stream stops reading past its window).
QUEUE_HIGH = 256 * 1024
QUEUE_LOW = 64 * 1024
#: Per queued message, counted on top of its size (many tiny messages cost more than their bytes).
MESSAGE_OVERHEAD = 64
#: How long our Close waits for the peer's before the transport is closed anyway (during a
#: graceful stop: SHUTDOWN_CLOSE_TIMEOUT, so that a silent peer does not hold the stop).
CLOSE_TIMEOUT = 5.0
SHUTDOWN_CLOSE_TIMEOUT = 1.0

# Phases of an exchange.
CONNECTING = 0  # the application has not answered the handshake yet
OPEN = 1  # accepted: frames flow (also while closing)
HTTP = 2  # answered with an HTTP response (a denial): an ordinary HTTP exchange
DONE = 3  # the WebSocket is over: the transport is (being) closed


class WebSocketSettings:
    """The ``--ws-*`` options, read once per worker thread."""

    __slots__ = ("max_size", "ping_interval", "ping_timeout", "per_message_deflate")

    def __init__(self, config: Config) -> None:
        self.max_size: int = config.ws_max_size
        self.ping_interval: float | None = config.ws_ping_interval or None
        self.ping_timeout: float | None = config.ws_ping_timeout or None
        self.per_message_deflate: bool = config.ws_per_message_deflate


class WebSocketExchange(LoopWaiting, Exchange):
    """One WebSocket, from the handshake to the end of the close handshake. Subclasses
    (ASGI, RSGI) give the application its interface on top of ``accept``, ``deny_*``,
    ``receive_message``, ``send_message`` and ``close``."""

    __slots__ = (
        "info",
        "offer",
        "settings",
        "session",
        "phase",
        "messages",
        "queued",
        "held",
        "waiter",
        "gone",
        "close_deadline",
        "subprotocol",
    )

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Offer, settings: WebSocketSettings) -> None:
        self.stream = stream
        self.request = request
        self.info = info
        self.offer = offer
        self.settings = settings
        self.session: WebSocketSession | None = None
        self.phase = CONNECTING
        self.messages: deque[str | bytes] = deque()
        self.queued = 0  # bytes in ``messages`` (plus MESSAGE_OVERHEAD each)
        self.held: deque[bytes] = deque()  # received bytes not parsed yet (QUEUE_HIGH)
        self.waiter: asyncio.Future[None] | None = None
        self.gone: Closed | None = None  # how the WebSocket ended, as the application hears it
        self.close_deadline = 0.0  # loop time our Close waits for the peer's until
        self.subprotocol: str | None = None
        self.complete = self.disconnected = self.started = self.body_sent = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] | tuple[()] = ()
        self.response_bytes = 0

    # -- driver side ---------------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        """Bytes of the WebSocket's frames (before ``accept`` only early ones)."""
        if self.phase == OPEN and not self.held and self.queued < QUEUE_HIGH:
            self._feed(data)
        elif self.phase != DONE:
            self.held.append(data)

    def on_body_end(self) -> None:
        """The peer ended its side (TCP FIN, HTTP/2 END_STREAM)."""
        self._lost()

    def on_client_eof(self) -> None:
        self._lost()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._lost()

    def on_tick(self, now: float) -> None:
        """Once a second (the worker's tick): keep-alive pings, the ping timeout and the
        close handshake's timeout."""
        session = self.session
        if session is None or self.phase != OPEN:
            return
        if session.close_sent or session.closed is not None:
            if now > self.close_deadline:
                self._fail_now()
                self._finish()
            return
        settings = self.settings
        ping = session.keepalive(now, settings.ping_interval, settings.ping_timeout)
        if ping is None:
            logger.info("WebSocket client %s did not answer a ping for %g s: connection closed", self.info.client, settings.ping_timeout)
            self.gone = Closed(ABNORMAL_CLOSURE, "keep-alive ping timeout")
            self._finish()
            self.stream.abort()
        elif ping:
            self.stream.send_body(self, ping, True)

    def on_shutdown(self) -> None:
        """The server is stopping: an open WebSocket is closed with 1001 (going away)."""
        if self.phase == OPEN:
            self.close(GOING_AWAY, "server shutdown", SHUTDOWN_CLOSE_TIMEOUT)

    def _lost(self) -> None:
        session = self.session
        if session is not None and self.phase == OPEN:
            for event in session.receive_data(None):
                if type(event) is Closed and self.gone is None:
                    self.gone = event
            self._finish()
        elif self.gone is None:
            self.gone = Closed(ABNORMAL_CLOSURE, "")
            self.disconnected = True
        if session is not None:
            session.release()
        self._wake()

    def _feed(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        events = session.receive_data(data)
        self.stream.body_consumed(self, len(data))
        messages = self.messages
        for event in events:
            if type(event) is Closed:
                if self.gone is None:
                    self.gone = event
                if event.failed:
                    # Failed by a bad frame: the messages before it are answered first
                    # (receive_message sends the Close once they are taken), within CLOSE_TIMEOUT.
                    self.close_deadline = asyncio.get_running_loop().time() + CLOSE_TIMEOUT
            else:
                messages.append(event)
                self.queued += len(event) + MESSAGE_OVERHEAD
        out = session.data_to_send()
        if out:
            self.stream.send_body(self, out, True)
        if not messages:
            self._fail_now()
        if session.finished:
            self._finish()
        self._wake()

    def _fail_now(self) -> None:
        session = self.session
        if session is not None:
            out = session.fail_now()
            if out:
                self.stream.send_body(self, out, True)

    def _feed_held(self) -> None:
        held = self.held
        while held and self.queued < QUEUE_HIGH and self.phase == OPEN:
            self._feed(held.popleft())

    def _finish(self) -> None:
        """The WebSocket is over: the stream closes its transport (or ends its stream)."""
        if self.phase == DONE:
            return
        self.phase = DONE
        if self.gone is None:
            self.gone = Closed(ABNORMAL_CLOSURE, "")
        self.held.clear()
        self.complete = True
        self.stream.response_complete(self)
        self._wake()

    # -- what the interfaces build on ---------------------------------------------------

    def accept(self, subprotocol: str | None, extra_headers: list[tuple[bytes, bytes]]) -> None:
        """Accept the handshake (``ValueError`` for a subprotocol not offered or headers the
        handshake sets itself)."""
        if self.phase != CONNECTING:
            raise RuntimeError("the WebSocket handshake was already answered")
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        settings = self.settings
        extensions, agreed = negotiate_extensions(self.offer, settings.per_message_deflate, settings.max_size)
        self.headers = accept_fields(self.offer, subprotocol, agreed, extra_headers)
        self.subprotocol = subprotocol
        loop_time = asyncio.get_running_loop().time()
        self.session = WebSocketSession(settings.max_size, extensions, loop_time)
        self.started = True
        # (Bytes that came after the handshake reach on_body meanwhile: held, fed below.)
        self.stream = self.stream.upgrade(self)
        self.phase = OPEN
        self._feed_held()

    def deny(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Answer the handshake with an HTTP response instead (its body follows with
        ``deny_body``)."""
        if self.phase != CONNECTING:
            raise RuntimeError("the WebSocket handshake was already answered")
        self.phase = HTTP
        self.status = status
        self.headers = headers
        self.started = True

    def deny_body(self, body: bytes, more: bool) -> None:
        if self.phase != HTTP or self.body_sent:
            raise RuntimeError("a denial response body without its start, or after its end")
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        self.response_bytes += len(body)
        self.stream.send_body(self, body, more)
        if not more:
            self.body_sent = self.complete = True
            self.stream.response_complete(self)

    async def receive_message(self) -> str | bytes | Closed:
        """The next whole message, or how the WebSocket ended."""
        messages = self.messages
        while not messages:
            gone = self.gone
            if gone is not None:
                if gone.failed and self.phase == OPEN:
                    self._fail_now()
                    self._finish()
                return gone
            await self._wait()
        message = messages.popleft()
        self.queued -= len(message) + MESSAGE_OVERHEAD
        if self.held and self.queued < QUEUE_LOW:
            self._feed_held()
        return message

    async def send_message(self, data: str | bytes) -> None:
        """Send one message; waits while the stream's buffer is full (backpressure).
        ``ClientDisconnected`` once the WebSocket is closing or gone."""
        session = self.session
        if session is None or self.phase != OPEN or session.close_sent:
            raise ClientDisconnected("the WebSocket is closed")
        frame = session.send_message(data)
        stream = self.stream
        sent_before = self.response_bytes
        self.response_bytes = sent_after = sent_before + len(frame)
        stream.send_body(self, frame, True)
        if stream.write_paused or sent_after >> YIELD_SHIFT != sent_before >> YIELD_SHIFT:
            await pace(stream)
            if self.disconnected:
                raise ClientDisconnected("client disconnected")

    def close(self, code: int = NORMAL_CLOSURE, reason: str = "", timeout: float = CLOSE_TIMEOUT) -> None:
        """Start (or complete) the close handshake, the peer's Close awaited for ``timeout``
        seconds; a no-op once closing or over."""
        session = self.session
        if session is None or self.phase != OPEN or session.close_sent:
            return
        data = session.close(code, reason)
        self.close_deadline = asyncio.get_running_loop().time() + timeout
        if data:
            self.stream.send_body(self, data, True)
        if session.finished:
            self._finish()

    def app_done(self, exc: BaseException | None) -> None:
        """The application returned or raised: before the handshake was answered a 500;
        after it a Close (1000, or 1011 for an error)."""
        phase = self.phase
        if phase == CONNECTING:
            if not self.disconnected:
                if exc is not None and not isinstance(exc, asyncio.CancelledError):
                    logger.error("Exception in WebSocket application (before the handshake was answered)", exc_info=exc)
                elif exc is None:
                    logger.error("WebSocket application returned without accepting or closing the handshake")
                self.internal_error()
            exc = None
        elif phase != HTTP:
            if exc is not None and not (self.gone is not None or isinstance(exc, (ClientDisconnected, asyncio.CancelledError))):
                logger.error("Exception in WebSocket application", exc_info=exc)
                self.close(INTERNAL_ERROR, "")
            else:
                self.close(NORMAL_CLOSURE, "")
            exc = None
        self.stream.app_finished(self, exc)


def websocket_scheme(info: ConnectionInfo) -> str:
    """``ws`` or ``wss``, as the connection is (the scheme the handshake came over)."""
    return "wss" if info.scheme == "https" else "ws"

