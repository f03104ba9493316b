"""The driver of one HTTP/2 connection on a worker thread's event loop.

It feeds received bytes to the sans-I/O ``HTTP2Connection``, opens an exchange through the
interface adapter for each request stream, each with its own ``H2Stream``
(``threads/h2stream.py``), sends what the windows allow and writes the frames out once per
pass. It is reached by ALPN (``h2``) on TLS, and on cleartext by the HTTP/1.1 driver's
hand-over (the ``PRI *`` preface, or ``Upgrade: h2c``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import TYPE_CHECKING

from h2.errors import ErrorCodes
from h2.events import PingAckReceived
from h2.exceptions import ProtocolError as H2ProtocolError
from hyperframe.frame import GoAwayFrame

from ftserver.interfaces.stream import ConnectionInfo, Exchange
from ftserver.protocols.errors import LocalProtocolError
from ftserver.protocols.events import Request
from ftserver.protocols.http2 import (
    PREFACE,
    ExtendedConnect,
    GoingAway,
    H2ConnectionError,
    HTTP2Connection,
    StreamBody,
    StreamEnd,
    StreamGone,
    WindowOpened,
)
from ftserver.threads.deadlines import Deadlines
from ftserver.threads.h2stream import H2Stream
from ftserver.threads.h2websocket import H2WebSocketStream, open_extended_connect

if TYPE_CHECKING:
    from ftserver.threads.host import WorkerHost

logger = logging.getLogger("ftserver.error")

#: The largest stream id: the last stream of a graceful stop's first GOAWAY (RFC 9113 §6.8).
MAX_STREAM_ID = 2**31 - 1
#: How long a graceful stop waits for the ACK of its PING before the final GOAWAY.
SHUTDOWN_PING_WAIT = 1.0

#: What a client that is not speaking HTTP/2 gets on an HTTP/2-only port (``--http 2``).
_NOT_HTTP2 = (
    b"HTTP/1.1 505 HTTP Version Not Supported\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 28\r\nconnection: close\r\n\r\nThis server speaks HTTP/2.\r\n"
)


class HTTP2Driver(Deadlines, asyncio.Protocol):
    """One HTTP/2 connection: its streams, their windows, its deadlines."""

    def __init__(self, w: WorkerHost) -> None:
        self.w = w
        adapter = w.adapter
        self.open_exchange = adapter.open
        self.start_exchange = adapter.start
        # RFC 8441's SETTINGS_ENABLE_CONNECT_PROTOCOL, when the adapter serves WebSockets
        self.conn = HTTP2Connection(  # type: ignore[arg-type]
            w.http2, w.server_header, w.default_headers, extended_connect=adapter.websocket is not None
        )
        self.transport: asyncio.Transport | None = None
        self.info: ConnectionInfo = None  # type: ignore[assignment]
        self.streams: dict[int, H2Stream] = {}
        self.transport_paused = False
        self.closed = False
        self.closing = False  # GOAWAY sent or received: no new streams, close once idle
        self.receiving = False  # in data_received: frames go out at its end
        self.flush_scheduled = False
        self.preface_checked = False
        self.idle_since = 0.0
        self.last_heard = 0.0
        self.ping_sent_at = 0.0
        self.send_mark = 0  # (check_send)
        self.send_stalled_at = 0.0
        self.shutdown_ping: bytes | None = None  # the PING of a graceful stop's first GOAWAY

    @property
    def cycle(self) -> Exchange | None:
        """An exchange in progress, if any (the worker's drain counts them)."""
        for stream in self.streams.values():
            return stream.exchange
        return None

    # -- starting ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A connection that speaks HTTP/2 from its first byte (ALPN ``h2``, ``--http 2``)."""
        assert isinstance(transport, asyncio.Transport)
        w = self.w
        self.begin(transport, w.connection_info(transport))
        w.stats.connections += 1
        self.conn.initiate()  # (sent once the client's preface is seen: _check_preface)

    def begin(self, transport: asyncio.Transport, info: ConnectionInfo) -> None:
        w = self.w
        self.transport = transport
        self.info = info
        self.idle_since = self.last_heard = w.now
        w.connections.add(self)

    def take_over(self, transport: asyncio.Transport, info: ConnectionInfo, data: bytes) -> None:
        """The HTTP/1.1 driver read the prior-knowledge preface (in ``data``, with
        whatever followed it): this driver serves the connection from now on."""
        self.begin(transport, info)
        transport.set_protocol(self)
        self.conn.initiate()
        self.data_received(data)

    def prepare_upgrade(self, settings: bytes, request: Request) -> None:
        """Before the HTTP/1.1 driver answers ``101 Switching Protocols`` to an ``Upgrade:
        h2c`` request: apply its ``HTTP2-Settings`` (``ProtocolError`` when invalid)."""
        self.conn.initiate_upgrade(settings, request)

    def take_upgrade(self, transport: asyncio.Transport, info: ConnectionInfo, request: Request, body: list[bytes], data: bytes) -> None:
        """After the ``101``: ``request`` (whose whole body is ``body``) becomes stream 1,
        half-closed, and ``data`` (bytes after it) are the client's preface and frames."""
        self.begin(transport, info)
        transport.set_protocol(self)
        self.preface_checked = True  # (h2 checks it)
        self.receiving = True
        try:
            stream = self._open(request)
            if stream is not None:
                exchange = stream.exchange
                for chunk in body:
                    stream.received += len(chunk)
                    exchange.on_body(chunk)  # type: ignore[union-attr]
                if request.has_body:
                    stream.body_open = False
                    exchange.on_body_end()  # type: ignore[union-attr]
                self.start_exchange(exchange)
        finally:
            self.receiving = False
        if data:
            self.data_received(data)
        else:
            self.flush()

    # -- asyncio.Protocol --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.preface_checked:
            if not self._check_preface(data):
                return
        w = self.w
        self.last_heard = w.now
        self.ping_sent_at = 0.0
        self.receiving = True
        started: list[H2Stream] = []
        try:
            events = self.conn.receive_data(data, w.now)
            streams = self.streams
            for event in events:
                kind = type(event)
                if kind is Request:
                    stream = self._open(event)
                    if stream is not None:
                        started.append(stream)
                elif kind is StreamBody:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        self._on_body(stream, event.data)
                elif kind is StreamEnd:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        self._on_body_end(stream)
                elif kind is WindowOpened:
                    self._window_opened(event.stream_id)
                elif kind is StreamGone:
                    stream = streams.get(event.stream_id)
                    if stream is not None:
                        stream.gone()
                elif kind is ExtendedConnect:
                    stream = open_extended_connect(self, event, time.perf_counter() if w.report else 0.0)
                    if stream is not None:
                        started.append(stream)
                elif kind is GoingAway:
                    self.closing = True
                elif kind is PingAckReceived:
                    self.ping_sent_at = 0.0
                    if event.ping_data == self.shutdown_ping:
                        self._final_goaway()
            for stream in started:
                if not stream.closed:
                    self.start_exchange(stream.exchange)
        except H2ConnectionError as exc:
            self.receiving = False
            logger.info("HTTP/2 connection error from %s: %s", self.info.client, exc)
            self._close(goaway=False)  # (h2 queued its GOAWAY)
            return
        self.receiving = False
        self.flush()
        if self.closing and not self.streams:
            self._close()

    def _check_preface(self, data: bytes) -> bool:
        """On a connection that must speak HTTP/2 from its start, an HTTP/1 client gets
        a 505 (h2 would only say GOAWAY, which it cannot read)."""
        if len(data) < len(PREFACE) and PREFACE.startswith(data):
            return True  # h2 buffers the start of the preface
        self.preface_checked = True
        if data.startswith(PREFACE):
            return True
        logger.info("client %s does not speak HTTP/2 (HTTP/2-only server)", self.info.client)
        self.transport.write(_NOT_HTTP2)  # type: ignore[union-attr]
        self._close(goaway=False)
        return False

    def eof_received(self) -> bool:
        # The client will send nothing more: its streams can still get their responses;
        # its WebSockets are lost (1006), as on HTTP/1.1.
        self.closing = True
        for stream in list(self.streams.values()):
            if type(stream) is H2WebSocketStream:
                stream.gone()
        if not self.streams:
            self._close()
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.w
        w.connections.discard(self)
        w.stats.closed += 1
        for stream in list(self.streams.values()):
            stream.gone()
        self.conn.release()

    def pause_writing(self) -> None:
        self.transport_paused = True
        for stream in self.streams.values():
            stream.write_paused = True

    def resume_writing(self) -> None:
        self.transport_paused = False
        self.send_stalled_at = 0.0
        for stream in list(self.streams.values()):
            self.pump(stream)

    # -- streams -------------------------------------------------------------------------

    def _open(self, request: Request) -> H2Stream | None:
        w = self.w
        stream = H2Stream(self, request, time.perf_counter() if w.report else 0.0)
        self.streams[request.stream_id] = stream
        self.idle_since = 0.0
        stream.exchange = self.open_exchange(stream, request, self.info, not request.has_body)
        return stream

    def _on_body(self, stream: H2Stream, data: bytes) -> None:
        if stream.closed:
            return
        size = len(data)
        stream.received += size
        stream.unread += size
        length = stream.request.content_length
        if length is not None and stream.received > length:
            self._malformed(stream)
            return
        stream.exchange.on_body(data)  # type: ignore[union-attr]

    def _on_body_end(self, stream: H2Stream) -> None:
        if not stream.body_open or stream.closed:
            return
        stream.body_open = False
        length = stream.request.content_length
        if length is not None and stream.received != length:
            self._malformed(stream)
            return
        stream.exchange.on_body_end()  # type: ignore[union-attr]

    def _malformed(self, stream: H2Stream) -> None:
        """A body longer or shorter than its content-length (RFC 9113 §8.1.1)."""
        logger.info("HTTP/2 stream %d from %s: body does not match its content-length", stream.stream_id, self.info.client)
        self.conn.reset_malformed(stream.stream_id)
        stream.gone()

    def _window_opened(self, stream_id: int) -> None:
        if stream_id:
            stream = self.streams.get(stream_id)
            if stream is not None:
                self.pump(stream)
        else:
            for stream in list(self.streams.values()):
                if stream.out or stream.end_pending:
                    self.pump(stream)

    def pump(self, stream: H2Stream) -> None:
        """Send what the stream's window allows of its queued body; its end (or trailers)
        once the queue is empty. ``write_paused`` holds the app while bytes wait."""
        out = stream.out
        if stream.closed:
            return
        conn = self.conn
        stream_id = stream.stream_id
        try:
            while out:
                window = conn.send_window(stream_id)
                if window <= 0:
                    break
                chunk = out[0]
                if len(chunk) <= window:
                    out.popleft()
                    conn.send_data(stream_id, chunk, not out and stream.end_pending and stream.trailers is None)
                    if not out and stream.end_pending and stream.trailers is None:
                        stream.ended = True
                else:
                    view = memoryview(chunk)
                    conn.send_data(stream_id, view[:window], False)
                    out[0] = view[window:]
            if out:
                if not stream.blocked_since:
                    stream.blocked_since = self.w.now
                stream.write_paused = True
            else:
                stream.blocked_since = 0.0
                if stream.end_pending and not stream.ended:
                    stream.ended = True
                    if stream.trailers is not None:
                        conn.send_headers(stream_id, stream.trailers, True)
                    else:
                        conn.end_stream(stream_id)
                stream.write_paused = self.transport_paused
                if not stream.write_paused:
                    stream.wake()
        except H2ProtocolError:
            # h2 closed the stream (a WINDOW_UPDATE overflow after the one that woke us: its
            # StreamGone event follows) or the connection (a GOAWAY with an error, before
            # connection_lost): the client is gone, quietly.
            if conn.stream_open(stream_id):
                raise
            stream.gone()
            return
        self.flush_soon()
        if stream.ended:
            stream.finish_if_done()

    def forget(self, stream: H2Stream) -> None:
        """The stream is done on both sides."""
        streams = self.streams
        if streams.get(stream.stream_id) is stream:
            if stream.body_open and not stream.closed:
                # The response is complete before the request body. The rest of a body the
                # client can send within its window is let come and dropped (curl 7.88 takes
                # a reset as an error); else the client is told to stop sending it (RFC 9113
                # §8.1: RST_STREAM NO_ERROR), and its window is not held open for nothing.
                stream.body_open = False
                length = stream.request.content_length
                if length is None or not self.conn.can_finish_body(stream.stream_id, length - stream.received):
                    self.conn.reset(stream.stream_id, ErrorCodes.NO_ERROR)
                    self.flush_soon()
            del streams[stream.stream_id]
            stream.exchange = None  # (the exchange refers to its stream: no cycle for the GC)
            if not streams:
                self.idle_since = self.w.now
                if self.closing and not self.receiving:
                    self.flush()
                    self._close()

    # -- writing -------------------------------------------------------------------------

    def flush_soon(self) -> None:
        """Frames go out at the end of the current pass (``data_received``) or of this loop
        iteration: one write for every stream's frames."""
        if not self.receiving and not self.flush_scheduled:
            self.flush_scheduled = True
            self.w.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        if self.closed:
            return
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)  # type: ignore[union-attr]

    # -- deadlines, shutdown -------------------------------------------------------------

    def check_timeouts(self, now: float, keep_alive_timeout: float) -> None:
        """The worker's once-a-second tick: the send timeout of the connection, the idle
        timeout, the keep-alive PING, and each stream's body and window timeouts."""
        if self.check_send(now) or self.closed:
            return
        w = self.w
        if not self.streams:
            since = self.idle_since
            if since:
                if since == w.last_now:
                    # Idle since after the last check, by the clock cached then (up to an
                    # interval behind): counted from now instead, one float step later so
                    # that the next check does not take it for new again (as HTTP/1.1's).
                    self.idle_since = since = math.nextafter(now, math.inf)
                if now - since > keep_alive_timeout:
                    self._close()
                    return
        interval = w.h2_ping_interval
        if interval:
            if self.ping_sent_at:
                if now - self.ping_sent_at > w.h2_ping_timeout:
                    logger.info("HTTP/2 client %s did not answer PING in %g s", self.info.client, w.h2_ping_timeout)
                    self._close()
                    return
            elif now - self.last_heard >= interval:
                self.ping_sent_at = now
                self.conn.ping(os.urandom(8))
                self.flush()
        timeout = w.timeout_io
        for stream in list(self.streams.values()):
            if stream.blocked_since and now - stream.blocked_since > timeout:
                logger.info("HTTP/2 stream %d of %s: no send window for %g s", stream.stream_id, self.info.client, timeout)
                stream.reset(ErrorCodes.CANCEL)
            elif type(stream) is H2WebSocketStream:
                if self.shutdown_ping is not None:
                    stream.on_shutdown()  # (one accepted since the stop began: 1001 too)
                stream.on_tick(now)  # (no body timeout: its pings, its close handshake)
            elif stream.body_open and not stream.closed:
                self._check_body(stream, now, timeout)

    def _check_body(self, stream: H2Stream, now: float, timeout: float) -> None:  # type: ignore[override]
        """A request body that makes no progress for ``--timeout-io`` while the app waits
        for it (nothing unread): the exchange is told; the client gets 408 or a reset."""
        if stream.unread > 0 or stream.received != stream.body_mark or not stream.body_since:
            stream.body_mark = stream.received
            stream.body_since = now
            return
        if now - stream.body_since < timeout:
            return
        logger.info("HTTP/2 stream %d of %s: request body stalled for %g s", stream.stream_id, self.info.client, timeout)
        exchange = stream.exchange
        stream.body_since = now + 1e9  # told once
        if exchange is not None and exchange.on_body_timeout():
            if stream.head_pending:
                exchange.status = 408
                exchange.headers = [(b"content-type", b"text/plain; charset=utf-8")]
                stream.body_open = False
                try:
                    stream.send_body(exchange, b"Request Timeout", False)
                except LocalProtocolError:
                    pass
                self.conn.reset(stream.stream_id, ErrorCodes.NO_ERROR)
                self.flush_soon()
            else:
                stream.reset(ErrorCodes.CANCEL)

    def shutdown(self) -> None:
        """Graceful stop (and reload) in two steps (RFC 9113 §6.8): a GOAWAY naming the
        largest stream id with a PING, so that streams the client opened meanwhile are still
        served; at the PING's ACK (or after ``SHUTDOWN_PING_WAIT``) the GOAWAY naming the
        last stream taken. Streams up to it finish, later ones are refused; open WebSockets
        are closed with 1001; the connection closes once its streams are done."""
        if self.closed or self.shutdown_ping is not None:
            return
        if self.closing:  # the client went away first: no new streams come
            self._final_goaway()
            return
        self.shutdown_ping = ping = os.urandom(8)
        self.flush()
        self.transport.write(GoAwayFrame(0, last_stream_id=MAX_STREAM_ID, error_code=0).serialize())  # type: ignore[union-attr]
        self.conn.ping(ping)
        self.flush()
        self.w.loop.call_later(SHUTDOWN_PING_WAIT, self._final_goaway)
        for stream in list(self.streams.values()):
            if type(stream) is H2WebSocketStream:
                stream.on_shutdown()

    def _final_goaway(self) -> None:
        self.closing = True
        if self.closed:
            return
        if not self.conn.goaway_sent:
            self.flush()
            self.transport.write(self.conn.goaway())  # type: ignore[union-attr]
        if not self.streams and not self.receiving:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self, goaway: bool = True) -> None:
        if self.closed:
            return
        if goaway and not self.conn.goaway_sent:  # (a graceful stop's final GOAWAY said it all)
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - after h2's own GOAWAY for a connection error
                pass
        self.flush()
        self.close_transport()
