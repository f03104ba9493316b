"""The driver of one HTTP/1.1 connection on a worker thread's event loop: it feeds bytes to
the sans-I/O protocol object (``protocols.http1`` or its h11 adapter), opens an exchange for
each request and is that exchange's stream (``interfaces.stream``), one request at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ftserver.interfaces.stream import Exchange
from ftserver.protocols.errors import LocalProtocolError, ProtocolError
from ftserver.protocols.events import END_OF_MESSAGE, NEED_DATA, PAUSED, Data
from ftserver.protocols.http1 import HTTP_100_CONTINUE, H1Request
from ftserver.threads.host import report_app_exit
from ftserver.threads.deadlines import Deadlines
from ftserver.threads.h1files import FileBody
from ftserver.threads.h2c import h2c_upgrade_wanted, hand_over_to_h2, prior_knowledge, switch_to_h2c
from ftserver.threads.upgraded import UpgradedConnection, open_upgrade

if TYPE_CHECKING:
    from ftserver.threads.host import WorkerHost

logger = logging.getLogger("ftserver.error")

#: Buffered request-body bytes above which the socket stops being read.
READ_HIGH_WATER = 256 * 1024
READ_LOW_WATER = 64 * 1024
#: Unread request body the server discards to keep a connection alive after the response.
MAX_DISCARD = 1024 * 1024
#: Response bytes gathered from consecutive body messages before they are written.
WRITE_COALESCE = 64 * 1024
#: Body events handled in one pass over received bytes: a body of many tiny chunks is
#: parsed in slices, each from a fresh loop callback, so other connections get the loop.
EVENTS_PER_PASS = 256

#: How long an idle connection stays open once a graceful stop began (see ``shutdown``).
DRAIN_LINGER = 0.5
#: Added to responses on a connection the server will close (graceful stop, RFC 9112 §9.6).
_CONNECTION_CLOSE = (b"connection", b"close")


class HTTP1Driver(Deadlines, FileBody, asyncio.Protocol):
    """One HTTP/1.1 connection: parse, run the app for each request in order, write back."""

    __slots__ = (
        "w",
        "open_exchange",
        "start_exchange",
        "conn",
        "transport",
        "info",
        "cycle",
        "head_pending",
        "continue_sent",
        "request_read",
        "discarding",
        "discarded",
        "buffered",
        "read_paused",
        "write_paused",
        "drain_waiter",
        "closed",
        "closing",
        "idle_since",
        "head_started",
        "started_at",
        "request",
        "pending",
        "pending_bytes",
        "client_eof",
        "next_waiting",
        "send_mark",
        "send_stalled_at",
        "backlog",
        "body_mark",
        "body_since",
        "h2c_body",
        "report",
    )

    def __init__(self, w: WorkerHost) -> None:
        self.w = w
        adapter = w.adapter
        self.open_exchange = adapter.open
        self.start_exchange = adapter.start
        self.conn = w.http1_class(w.limits, w.server_header, w.default_headers)
        self.transport: asyncio.Transport | None = None
        self.cycle: Exchange | None = None
        self.request: H1Request | None = None
        self.head_pending = False
        self.continue_sent = False
        self.request_read = True
        self.discarding = False
        self.discarded = 0
        self.buffered = 0
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.closing = False
        self.idle_since = 0.0
        self.head_started = 0.0  # when the tick first saw the bytes of a request head (deadlines)
        self.started_at = 0.0
        self.pending: list[bytes] = []  # response bytes waiting for the end of this loop iteration
        self.pending_bytes = 0
        self.client_eof = False  # the client closed its sending side
        self.next_waiting = False  # the next request waits for the response before it to drain
        self.send_mark = 0  # the transport's write progress at the last tick (check_send)
        self.send_stalled_at = 0.0  # since when unsent bytes made no progress (0: none wait)
        self.backlog = False  # received bytes wait for the next pass (EVENTS_PER_PASS)
        # The request body's progress as the once-a-second tick last saw it (_check_body):
        # the protocol object's body_progress, and the loop time it was first seen at
        # (0.0: not yet seen; -1.0: the exchange was told of the timeout).
        self.body_mark = 0
        self.body_since = 0.0
        self.h2c_body: list[bytes] | None = None  # the body of an Upgrade: h2c request
        self.report = w.report  # (read per request: one load fewer than w.report)

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        w = self.w
        self.info = w.connection_info(transport)
        self.idle_since = w.now
        w.connections.add(self)
        w.stats.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.w
        w.connections.discard(self)
        w.stats.closed += 1
        cycle = self.cycle
        if cycle is not None and not cycle.complete:
            cycle.on_disconnect()
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.cycle is None and not self.discarding:
            # The usual read: one whole bodiless request (see HTTP11Connection.receive_request).
            request = self.conn.receive_request(data)
            if request is not None:
                # _on_request, less what a request without a body or Expect leaves as it
                # is: with no exchange and no discarding, request_read is already True.
                self.request = request
                self.head_pending = True
                self.idle_since = 0  # (an immortal int: no shared float loaded per request)
                if self.report:
                    self.started_at = time.perf_counter()
                self.cycle = cycle = self.open_exchange(self, request, self.info, True)
                self.start_exchange(cycle)
                return
        self.conn.receive_data(data)
        self._handle_events()

    def eof_received(self) -> bool:
        self.client_eof = True
        self.conn.receive_data(b"")
        self._handle_events()
        # Keep our side open while a response is being produced; close otherwise.
        cycle = self.cycle
        if cycle is None or self.closed:
            return False
        cycle.on_client_eof()
        return True

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.send_stalled_at = 0.0  # the client read: the send timeout starts again
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self.next_waiting:
            self.next_waiting = False
            self._next_cycle()

    # -- events from the protocol object ---------------------------------------------

    def _handle_events(self) -> None:
        if self.closed:  # e.g. a scheduled pass over pipelined requests after a close
            return
        conn = self.conn
        start: H1Request | None = None
        budget = EVENTS_PER_PASS
        try:
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is H1Request:
                    start = event  # type: ignore[assignment]
                    if conn.upgrade is None:
                        self._on_request(start)  # type: ignore[arg-type]
                    elif h2c_upgrade_wanted(self, start):  # type: ignore[arg-type]
                        continue  # h2c: the request goes to HTTP/2 once its body is read
                    else:
                        open_upgrade(self, start, conn.upgrade)  # type: ignore[arg-type]
                elif event is END_OF_MESSAGE:
                    self._on_body_end()
                    if self.cycle is not None:
                        # The protocol answers PAUSED until start_next_cycle(): no need to ask.
                        if conn.trailing_size > READ_HIGH_WATER and not self.read_paused:
                            self.read_paused = True
                            self.transport.pause_reading()  # type: ignore[union-attr]
                        break
                elif kind is Data:
                    self._on_body(event.data)  # type: ignore[union-attr]
                    budget -= 1
                    if not budget:
                        self._defer_events()
                        break
                elif event is NEED_DATA:
                    break
                elif event is PAUSED:
                    if conn.trailing_size > READ_HIGH_WATER and not self.read_paused:
                        # A client pipelining faster than we answer: stop reading for now.
                        self.read_paused = True
                        self.transport.pause_reading()  # type: ignore[union-attr]
                    break
                else:  # ConnectionClosed: the client has nothing more to send
                    if self.cycle is None:
                        self._close()
                    else:
                        self.closing = True
                    break
        except ProtocolError as exc:
            self._protocol_error(exc)
            exc.__traceback__ = None  # (the parser keeps the error; its frames refer to it)
            return
        if start is not None and self.cycle is not None and self.request is start:
            self.start_exchange(self.cycle)

    def upgrade(self, cycle: Exchange) -> UpgradedConnection:
        """Accept a WebSocket handshake (``101`` with ``cycle.headers``): this driver is
        done, the connection belongs to an ``UpgradedConnection``."""
        data = self.conn.send_switching_protocols(cycle.headers, self.w.date)
        self._flush()
        self.transport.write(data)  # type: ignore[union-attr]
        self.cycle = None
        self.closed = True
        return UpgradedConnection.take_over(self, cycle)

    def _defer_events(self) -> None:
        """A pass handled ``EVENTS_PER_PASS`` body events: stop reading and handle the rest
        from a fresh loop callback (``_next_pass``), so that a body of many tiny chunks
        cannot hold the loop (and its other connections) for the whole read."""
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]
        if not self.backlog:
            self.backlog = True
            self.w.loop.call_soon(self._next_pass)

    def _next_pass(self) -> None:
        self.backlog = False
        self._handle_events()
        if (
            not self.backlog
            and not self.next_waiting  # a pipelined request waits for its turn (_next_cycle)
            and self.read_paused
            and not self.closed
            and self.buffered < READ_HIGH_WATER
            and self.conn.trailing_size <= READ_HIGH_WATER
        ):
            # The received bytes are all handled and nothing else holds reading back.
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def _on_request(self, request: H1Request) -> None:
        self.request = request
        self.request_read = not request.has_body
        self.head_pending = True
        self.continue_sent = False
        self.idle_since = 0
        if self.report:
            self.started_at = time.perf_counter()
        self.cycle = self.open_exchange(self, request, self.info, self.request_read)

    def _on_body(self, data: bytes) -> None:
        if self.discarding:
            self.discarded += len(data)
            if self.h2c_body is not None:
                self.h2c_body.append(data)  # (bounded: h2c_upgrade_wanted checked its length)
            elif self.discarded > MAX_DISCARD:
                self._close()
            return
        cycle = self.cycle
        if cycle is None or cycle.complete:
            return
        cycle.on_body(data)
        self.buffered += len(data)
        if self.buffered > READ_HIGH_WATER and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _on_body_end(self) -> None:
        if self.request_read:
            return  # a request without a body: the cycle was created complete
        self.request_read = True
        if self.body_since:
            self.body_since = 0.0  # (_check_body) the next body starts afresh
        if self.discarding:
            self.discarding = False
            if self.h2c_body is not None:
                self.w.loop.call_soon(switch_to_h2c, self)
                return
            self._next_cycle()
            return
        cycle = self.cycle
        if cycle is not None:
            cycle.on_body_end()

    # -- the stream interface (ftserver.interfaces.stream.HTTPStream) -----------------

    def send_body(self, cycle: Exchange, body: bytes, more: bool) -> None:
        if self.closed:
            return
        conn = self.conn
        if more:
            if self.head_pending:
                headers = cycle.headers if not self.closing else [*cycle.headers, _CONNECTION_CLOSE]
                data = conn.send_response(cycle.status, headers, self.w.date, None, cycle.reason)
                self.head_pending = False
                if body:
                    data += conn.send_data(body)
            elif body:
                data = conn.send_data(body)
            else:
                return
            # Coalesce the parts an app sends in one go (one packet instead of one per
            # message): they go out together at the end of this loop iteration, or as
            # soon as they add up to WRITE_COALESCE bytes.
            pending = self.pending
            pending.append(data)
            self.pending_bytes += len(data)
            if self.pending_bytes >= WRITE_COALESCE:
                self._flush()
            elif len(pending) == 1:
                self.w.loop.call_soon(self._flush)
            return
        if self.head_pending:
            # The whole body is here: declare its length rather than chunking it.
            headers = cycle.headers if not self.closing else [*cycle.headers, _CONNECTION_CLOSE]
            try:
                data = conn.send_complete(cycle.status, headers, self.w.date, body, cycle.reason)
            except LocalProtocolError:
                self.head_pending = not conn.response_started
                raise
            self.head_pending = False
        else:
            data = conn.send_data(body) + conn.send_end() if body else conn.send_end()
        if self.pending:
            self.pending.append(data)
            self._flush()
        elif data:
            self.transport.write(data)  # type: ignore[union-attr]

    def send_trailers(self, cycle: Exchange, trailers: list[tuple[bytes, bytes]]) -> None:
        """End a chunked response with trailer fields, if the client said it accepts them
        (``TE: trailers``, RFC 9110 §10.1.4); otherwise end it without them."""
        if self.closed:
            return
        if self.head_pending:  # trailers announced but no body message was sent
            self.send_body(cycle, b"", True)
        accepts = False
        request = self.request
        if request is not None:
            for name, value in request.headers:
                if name == b"te" and b"trailers" in value.lower():
                    accepts = True
        self.pending.append(self.conn.send_end(trailers if accepts else None))
        self._flush()

    def _flush(self) -> None:
        pending = self.pending
        if pending and not self.closed:
            data = b"".join(pending)
            pending.clear()
            self.pending_bytes = 0
            self.transport.write(data)  # type: ignore[union-attr]

    def want_body(self, cycle: Exchange) -> None:
        request = self.request
        if request is not None and request.expect_continue and not self.continue_sent and self.head_pending:
            # RFC 9110 §10.1.1: the client waits for 100 (Continue) before sending the body;
            # send it only once the app actually asks for the body.
            self.continue_sent = True
            if not self.closed:
                self.transport.write(HTTP_100_CONTINUE)  # type: ignore[union-attr]
        if self.read_paused and self.buffered < READ_LOW_WATER and not self.backlog:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def body_consumed(self, cycle: Exchange, nbytes: int) -> None:
        self.buffered -= nbytes
        if self.read_paused and self.buffered < READ_LOW_WATER and not self.backlog:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    async def drain(self) -> None:
        if self.pending_bytes:
            self._flush()
        if not self.write_paused or self.closed:
            return
        waiter = self.drain_waiter
        if waiter is None:
            self.drain_waiter = waiter = asyncio.get_running_loop().create_future()
        await waiter

    def send_last(self, cycle: Exchange, body: bytes) -> None:
        """``send_body(cycle, body, False)`` then ``response_complete(cycle)`` in one call:
        the usual end of a response (the whole body in one message, kept alive, nothing
        pipelined) costs one call of the exchange's instead of two."""
        if not self.head_pending or self.closed or self.closing or self.pending:
            self.send_body(cycle, body, False)
            self.response_complete(cycle)
            return
        # send_body's whole-response case, then response_complete's usual one.
        conn = self.conn
        w = self.w
        try:
            data = conn.send_complete(cycle.status, cycle.headers, w.date, body, cycle.reason)
        except LocalProtocolError:
            self.head_pending = not conn.response_started
            raise
        self.head_pending = False
        self.transport.write(data)  # type: ignore[union-attr]
        w.stats.requests += 1
        if self.report:  # the access log, metrics
            w.report_response(cycle, self.info.client, self.started_at)
        if self.cycle is not cycle:  # (not closed: checked above, and a write only schedules the close)
            return
        if self.request_read and not self.write_paused:
            self.cycle = None
            self.request = None
            self.buffered = 0
            pipelined = conn.next_cycle()
            if pipelined or self.client_eof or self.read_paused:
                self._after_cycle(pipelined)
            else:
                self.idle_since = w.now
            return
        self._end_cycle()

    def response_complete(self, cycle: Exchange) -> None:
        w = self.w
        w.stats.requests += 1
        if self.report:  # the access log, metrics
            w.report_response(cycle, self.info.client, self.started_at)
        if self.cycle is not cycle or self.closed:
            return
        self._end_cycle()

    def _end_cycle(self) -> None:
        """The rest of ``response_complete`` for the current cycle."""
        self.cycle = None
        self.request = None
        self.buffered = 0
        if self.closing:
            self._close()
            return
        if self.request_read:
            if self.write_paused:
                self._next_cycle()  # (waits for the drain)
                return
            # _next_cycle, its usual case inline: kept alive, nothing pipelined.
            pipelined = self.conn.next_cycle()
            if pipelined or self.client_eof or self.read_paused:
                self._after_cycle(pipelined)
            else:
                self.idle_since = self.w.now
            return
        if not self.conn.keep_alive:
            self._close()
            return
        # The app answered without reading the whole body: read and drop the rest so the
        # connection can carry the next request (bounded by MAX_DISCARD).
        self.discarding = True
        self.discarded = 0
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]

    def _next_cycle(self) -> None:
        """Ready for the next request, or closed if the connection cannot carry one.

        Not while the response before it is above the transport's high-water mark: a client
        that pipelines requests and does not read would otherwise have every response
        buffered (``resume_writing`` comes back here). Reading stays paused meanwhile, so
        the client cannot queue request bytes either.
        """
        if self.write_paused and not self.closed:
            self.next_waiting = True
            if not self.read_paused:
                self.read_paused = True
                self.transport.pause_reading()  # type: ignore[union-attr]
            return
        self._after_cycle(self.conn.next_cycle())

    def _after_cycle(self, pipelined: int) -> None:
        """The rest of ``_next_cycle`` once the protocol object answered ``next_cycle()``."""
        if pipelined < 0:
            self._close()
            return
        self.idle_since = self.w.now
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()  # type: ignore[union-attr]
        if pipelined or self.client_eof:
            # Pipelined requests (or the client's EOF, which closes the connection now that
            # the response is out): handled from a fresh loop callback, never from inside
            # the app's own step (which may still run code after its response).
            self.w.loop.call_soon(self._handle_events)

    def app_finished(self, cycle: Exchange, exc: BaseException | None) -> None:
        if self.w.concurrency is not None:
            self.w.concurrency.done(cycle)
        if cycle.complete:  # the usual end: the response went out
            if exc is not None:
                report_app_exit(cycle, exc)
            return
        report_app_exit(cycle, exc)
        if self.cycle is not cycle:
            return
        if self.closed:
            self.cycle = None
            return
        if self.head_pending and not cycle.disconnected:
            # Nothing was sent yet: a plain 500; the connection stays usable.
            cycle.internal_error()
            return
        # Part of the response is on the wire: the only honest signal left is to close.
        self.cycle = None
        self._close()

    # -- errors, timeouts, closing ---------------------------------------------------

    def _protocol_error(self, exc: ProtocolError) -> None:
        if self.cycle is None and self.w.http2 is not None:
            # HTTP/2 with prior knowledge (RFC 9113 §3.3): the parser refuses its preface.
            preface = prior_knowledge(self.conn, exc)
            if preface is not None:
                hand_over_to_h2(self, preface)
                return
        logger.info("invalid HTTP request from %s: %s", self.info.client, exc)
        cycle = self.cycle
        if cycle is not None and not cycle.complete:
            cycle.on_disconnect()
        self._answer_and_close(exc)

    def _send_error(self, exc: ProtocolError) -> None:
        """Write the response to ``exc`` (the connection closes after it), logged in the
        access log like any response."""
        data = self.conn.error_response(exc, self.w.date)
        self.transport.write(data)  # type: ignore[union-attr]
        w = self.w
        if w.report:
            body = len(data) - data.find(b"\r\n\r\n") - 4
            w.report_error(self.info.client, self.request, exc.status_code, body, self.started_at)

    def shutdown(self) -> None:
        """Graceful stop: close after the response in progress, or after a short linger
        if idle.

        Closing an idle connection at once fails a request its client is sending at that
        moment: one accepted an instant ago (its first request is on the way), or a
        keep-alive connection about to be reused. During ``DRAIN_LINGER`` a request that
        arrives is served, with ``connection: close`` (RFC 9112 §9.6), so the client moves
        to a new connection; a client that sends nothing sees the close long before it
        next uses the connection.
        """
        self.closing = True
        if self.cycle is None and not self.closed:
            self.w.loop.call_later(DRAIN_LINGER, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if self.cycle is None and not self.conn.trailing_size:
            self._close()  # (a request head in progress gets the keep-alive timeout: 408)

    def abort(self) -> None:
        # (Also once closed: close() waits for unsent bytes, which abort drops.)
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        if not self.closed:
            self._flush()
            self.close_transport()
