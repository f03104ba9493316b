"""One WSGI exchange in two halves by the thread that runs them: ``WSGIExchange`` on the
worker's loop (what the driver feeds; its ``loop_*`` methods are what the handler posts) and
``Handler`` on a handler thread (environ, application, ``start_response``, the result).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from ftserver.interfaces.stream import (
    ClientDisconnected,
    ConnectionInfo,
    Exchange,
    HTTPStream,
    pump_file,
    regular_file_size,
)
from ftserver.interfaces.wsgi.bridge import JobQueue, held_lock
from ftserver.interfaces.wsgi.environ import ExcInfo, HandlerContext, Status
from ftserver.interfaces.wsgi.io import EmptyInput, FileWrapper, WSGIInput

if TYPE_CHECKING:
    from ftserver.protocols.events import Request

logger = logging.getLogger("ftserver.error")

#: Response bytes a handler hands to the loop before it waits for them to be written.
WRITE_WINDOW = 256 * 1024

_search_unsafe = re.compile(r"[\r\n\x00]").search

#: A response head and body bytes as a handler posts them: status, header fields, body.
Head = tuple[Status, list[tuple[bytes, bytes]], bytes]

#: What a client whose request body stalled for --timeout-io gets from a handler whose app
#: let the ``TimeoutError`` through (then the close).
_BODY_TIMEOUT_RESPONSE: Head = (
    (408, None),
    [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
    b"request body not received in time\n",
)


class HandlerPool(Protocol):
    """What a ``WSGIExchange`` needs of its ``WSGIAdapter``: the queue to the handler
    threads, and how much body to read before handing a request over."""

    jobs: JobQueue
    body_buffer: int


class WSGIExchange(Exchange):
    """One request/response exchange of a WSGI application (PEP 3333): the loop's half.

    Created and fed on the loop thread; a ``Handler`` runs the application on a handler
    thread and posts the ``loop_*`` methods. Attributes the driver reads (``status``,
    ``headers``, ``started``, ...) are written on the loop only.
    """

    __slots__ = (
        # the driver's view, with the fields of ``Exchange``
        "reason",
        # for the handler, set before the hand-over
        "info",
        "input",
        # loop-side state
        "reported",
        "task",
        "body_received",
        "body_complete",
        "held",
        # read by the handler
        "stopped",
    )

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> None:
        self.stream = stream
        self.request = request
        self.info = info
        self.input: WSGIInput | None = None if body_done else WSGIInput()
        self.complete = False
        self.disconnected = False
        self.started = False
        self.body_sent = False
        self.status = 0
        self.reason: bytes | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.response_bytes = 0
        self.reported = False  # stream.app_finished was called
        self.task: asyncio.Task[None] | None = None
        self.body_received = 0
        self.body_complete = body_done
        # While the body is read on the loop before the app gets a thread: the adapter.
        self.held: HandlerPool | None = None
        self.stopped = False  # no more response data is wanted: client gone or response failed

    # -- the driver's calls ------------------------------------------------------------

    def run(self, adapter: HandlerPool) -> None:
        """Queue the request for a handler thread, or first read its body here.

        A handler thread reading a body from a slow (or malicious, "slow POST") client would
        be held for as long as the client likes; a few such clients would hold them all.
        So a body of up to ``--wsgi-body-buffer`` bytes is read on the loop, where waiting
        costs only the bytes, before the app runs (``_release``); a longer one is handed
        over after that many bytes. A client that waits for ``100 Continue`` gets it now.
        One that stalls meets the driver's body timeout (``on_body_timeout``): 408.
        """
        limit = adapter.body_buffer
        if (
            self.body_complete
            or not limit
            or self.body_received >= limit
            or (self.request.content_length or 0) > limit
        ):
            adapter.jobs.put(self)
            return
        self.held = adapter
        self.stream.want_body(self)

    def on_body(self, data: bytes) -> None:
        self.input.feed(data)  # type: ignore[union-attr]
        self.body_received += len(data)
        held = self.held
        if held is not None and self.body_received >= held.body_buffer:
            self._release()

    def on_body_end(self) -> None:
        self.body_complete = True
        if self.input is not None:
            self.input.end()
        if self.held is not None:
            self._release()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self.stopped = True
        self.held = None  # never handed over: no app runs for it
        if self.input is not None:
            self.input.fail(ClientDisconnected("client disconnected before the request body was complete"))

    def on_body_timeout(self) -> bool:
        """A held body: no app runs, the driver answers 408. A handed-over one: the app's
        reads raise ``TimeoutError``, and the handler answers (``Handler._handle``)."""
        if self.held is not None or self.input is None:
            return super().on_body_timeout()
        self.input.fail(TimeoutError("request body: no data received for --timeout-io"), timed_out=True)
        return False

    # -- the held body -----------------------------------------------------------------

    def _release(self) -> None:
        adapter = self.held
        self.held = None
        adapter.jobs.put(self)  # type: ignore[union-attr]

    # -- posted by the handler ---------------------------------------------------------

    def loop_start(self, args: Head) -> None:
        """The head and the first body bytes."""
        if self.reported:
            return
        (self.status, self.reason), self.headers, data = args
        self.started = True
        self.response_bytes += len(data)
        try:
            self.stream.send_body(self, data, True)
        except Exception as exc:  # noqa: BLE001 - e.g. a header the writer refuses
            self._abort(exc)

    def loop_send(self, data: bytes) -> None:
        """More body bytes."""
        if self.reported:
            return
        self.response_bytes += len(data)
        try:
            self.stream.send_body(self, data, True)
        except Exception as exc:  # noqa: BLE001 - e.g. more body than the Content-Length
            self._abort(exc)

    def loop_end(self, args: bytes | Head) -> None:
        """The last body bytes and the end of the response, with the head if it has not gone."""
        if self.reported:
            return
        if type(args) is tuple:
            (self.status, self.reason), self.headers, body = args
            self.started = True
        else:
            body = args  # type: ignore[assignment]
        self.response_bytes += len(body)
        self.body_sent = True
        try:
            self.stream.send_body(self, body, False)
        except Exception as exc:  # noqa: BLE001
            self._abort(exc)
            return
        self.complete = True
        self.reported = True
        self.stream.response_complete(self)

    def loop_finished(self, error: BaseException | None) -> None:
        """The handler is done without completing the response."""
        if self.reported:
            return
        self.reported = True
        self.stopped = True
        self.stream.app_finished(self, error)

    def loop_give_up(self, timeout: float) -> None:
        """The client stopped reading: stop sending and drop the connection (closing
        would wait for the unread bytes to be written)."""
        logger.info("client %s read nothing for %g s: connection dropped", self.info.client, timeout)
        task = self.task
        if task is not None:
            task.cancel()
        self.disconnected = True  # as good as gone: the driver closes instead of answering
        self._abort(ClientDisconnected("the client stopped reading the response"))
        self.stream.abort()

    def loop_consumed(self, args: tuple[int, bool]) -> None:
        """The handler took ``nbytes`` of the body, and waits for more if ``want_more``."""
        if self.complete or self.reported:
            return
        nbytes, want_more = args
        stream = self.stream
        if nbytes:
            stream.body_consumed(self, nbytes)
        if want_more:
            stream.want_body(self)

    def loop_drain(self, waiter: Any) -> None:
        """Release ``waiter`` once what was posted before is written and the transport drained."""
        stream = self.stream
        if stream.write_paused and not stream.closed and not self.stopped:
            self.task = asyncio.get_running_loop().create_task(self._drain(waiter))
        else:
            waiter.release()

    def loop_sendfile(self, args: tuple[Status, list[tuple[bytes, bytes]], Any, int, int, Any]) -> None:
        """The head, then ``count`` bytes of a regular file from ``offset``; release ``waiter`` at the end."""
        (status, reason), headers, file, offset, count, waiter = args
        if self.reported:
            waiter.release()
            return
        self.status = status
        self.reason = reason
        self.headers = headers
        self.started = True
        self.task = asyncio.get_running_loop().create_task(self._sendfile(file, offset, count, waiter))

    def _abort(self, exc: BaseException) -> None:
        """The driver refused part of the response: answer 500 or close, stop the handler."""
        self.stopped = True
        if not self.reported:
            self.reported = True
            self.stream.app_finished(self, exc)

    async def _drain(self, waiter: Any) -> None:
        try:
            await self.stream.drain()
        finally:
            self.task = None
            waiter.release()

    async def _sendfile(self, file: Any, offset: int, count: int, waiter: Any) -> None:
        stream = self.stream
        try:
            await pump_file(stream, self, file, offset, count)
            if not self.reported:
                self.body_sent = True
                stream.send_body(self, b"", False)
                self.complete = True
                self.reported = True
                stream.response_complete(self)
        except BaseException as exc:  # noqa: BLE001 - a disconnect, a cancel after a stall
            if self.disconnected or isinstance(exc, OSError):
                exc = ClientDisconnected(f"client disconnected during sendfile: {exc!r}")
            self._abort(exc)
        finally:
            self.task = None
            waiter.release()


class Handler:
    """One handler thread's half of the exchanges it runs, one at a time (PEP 3333).

    Builds the environ, calls the application, keeps what ``start_response`` gave until
    the first body bytes, and posts the response to the exchange's ``loop_*`` methods. A
    hello-world response (a one-item list) is one post: head, body and end together.
    """

    __slots__ = ("ctx", "exchange", "is_head", "input", "out_status", "out_headers", "headers_sent", "window")

    # Per exchange, set by ``handle``.
    exchange: WSGIExchange
    is_head: bool
    input: WSGIInput | EmptyInput
    out_headers: list[tuple[bytes, bytes]] | None  # from start_response; then out_status is set
    headers_sent: bool
    window: int  # bytes posted since the last wait for the loop to write them

    def __init__(self, ctx: HandlerContext) -> None:
        self.ctx = ctx
        self.out_status: Status = (0, None)

    def handle(self, exchange: WSGIExchange) -> None:
        """Run the application for ``exchange`` on the calling handler thread."""
        ctx = self.ctx
        self.exchange = exchange
        self.is_head = exchange.request.method == "HEAD"
        self.out_headers = None
        self.headers_sent = False
        self.window = 0
        ctx.context.copy().run(self._handle, ctx, exchange)
        if ctx.errors.pending:
            ctx.errors.flush()

    def _handle(self, ctx: HandlerContext, exchange: WSGIExchange) -> None:
        wsgi_input = exchange.input
        if wsgi_input is None:
            self.input = ctx.empty_input
        else:
            wsgi_input.attach(ctx.inbox, exchange.loop_consumed)
            self.input = wsgi_input
        result = None
        error: BaseException | None = None
        try:
            result = ctx.app(ctx.environ(exchange.request, exchange.info, self.input), self.start_response)
            self._respond(result)
        except BaseException as exc:  # noqa: BLE001 - the app's mistake: a 500 or a close
            error = exc
        if result is not None:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:  # noqa: BLE001
                    if error is None and self.headers_sent and not exchange.stopped:
                        # The response went out complete; only the clean-up failed.
                        logger.error("Exception in close() of the WSGI response iterable", exc_info=exc)
                    else:
                        error = error or exc
        if wsgi_input is not None:
            wsgi_input.detach()
        if error is None:
            return
        if self.input.timed_out and not self.headers_sent and not exchange.disconnected:
            # The app gave up on a stalled request body: say so, and close the connection.
            logger.info("request body from %s timed out: %s", exchange.info.client, error)
            self.headers_sent = True
            ctx.inbox.post(exchange.loop_end, _BODY_TIMEOUT_RESPONSE)
        else:
            ctx.inbox.post(exchange.loop_finished, error)
        error = None  # (its traceback holds this frame: no cycle for the GC)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``: keep the status and headers until the first body
        bytes. With ``exc_info`` it replaces them, unless they were sent: then the
        exception is raised again (the app cannot take back what the client has)."""
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.out_headers is not None:
            raise AssertionError("WSGI: start_response() called a second time without exc_info")
        ctx = self.ctx
        parsed = ctx.statuses.get(status) if type(status) is str else None
        if parsed is None:
            parsed = ctx.parse_status(status)
        names = ctx.response_names
        encoded = []
        for name, value in headers:
            encoded_name = names.get(name) if type(name) is str else None
            if encoded_name is None:
                encoded_name = ctx.response_name(name)
            if type(value) is not str:
                raise TypeError(f"WSGI: header values must be str, got {value!r} for {name!r}")
            if _search_unsafe(value) is not None:
                raise ValueError(f"WSGI: header {name!r} has a value with CR, LF or NUL")
            encoded.append((encoded_name, value.encode("latin-1")))
        self.out_status = parsed
        self.out_headers = encoded
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: the data is on its way (or buffered) when this returns."""
        if type(data) is not bytes:
            data = _as_bytes(data)
        if self.out_headers is None:
            raise AssertionError("WSGI: write() called before start_response()")
        if data:
            self._send(data)

    def _respond(self, result: Iterable[bytes]) -> None:
        kind = type(result)
        if (kind is list or kind is tuple) and len(result) == 1 and not self.headers_sent:  # type: ignore[arg-type]
            # The whole body is known: head, body and end in one hop, with a content-length.
            body = result[0]  # type: ignore[index]
            if type(body) is not bytes:
                body = _as_bytes(body)
            self._finish(body, len(body))
            return
        if kind is FileWrapper and not self.headers_sent:
            if self._try_sendfile(result):  # type: ignore[arg-type]
                return
        for data in result:
            if type(data) is not bytes:
                data = _as_bytes(data)
            if data:
                if self.out_headers is None:
                    raise AssertionError("WSGI: the response iterable yielded data before start_response()")
                self._send(data)
        self._finish(b"")

    def _send(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange.stopped:
            self._raise_stopped()
        inbox = self.ctx.inbox
        if self.is_head:
            data = b""
        if self.headers_sent:
            inbox.post(exchange.loop_send, data)
        else:
            self.headers_sent = True
            headers = self.out_headers
            if self.input.timed_out:  # the rest of the body will not come: do not wait for it
                headers = [*headers, (b"connection", b"close")]  # type: ignore[misc]
            inbox.post(exchange.loop_start, (self.out_status, headers, data))
        self.window += len(data)
        if self.window > WRITE_WINDOW or exchange.stream.write_paused:
            self._sync()

    def _finish(self, body: bytes, length: int | None = None) -> None:
        """The last body bytes and the end of the response; ``length``: the whole body's
        length when it is known before anything was sent."""
        exchange = self.exchange
        if exchange.stopped:
            self._raise_stopped()
        if self.is_head:
            body = b""
        if self.headers_sent:
            self.ctx.inbox.post(exchange.loop_end, body)
            return
        headers = self.out_headers
        if headers is None:
            raise RuntimeError("WSGI: the application returned without calling start_response()")
        if self.is_head and length is not None and not _has_field(headers, b"content-length"):
            # The same head a GET would get (RFC 9110 §9.3.2): the writer only declares the
            # length of bodies it sends, and a HEAD response has none.
            headers = [*headers, (b"content-length", str(length).encode("ascii"))]
        if self.input.timed_out:
            headers = [*headers, (b"connection", b"close")]
        self.headers_sent = True
        self.ctx.inbox.post(exchange.loop_end, (self.out_status, headers, body))

    def _sync(self) -> None:
        """Wait until the loop has written what this handler posted and the transport is
        no longer paused (write backpressure)."""
        exchange = self.exchange
        inbox = self.ctx.inbox
        timeout = self.ctx.timeout
        waiter = held_lock()
        inbox.post(exchange.loop_drain, waiter)
        if not waiter.acquire(timeout=timeout):
            inbox.post(exchange.loop_give_up, timeout)
            raise TimeoutError(f"the client did not read the response for {timeout:g} s")
        self.window = 0
        if exchange.stopped:
            self._raise_stopped()

    def _raise_stopped(self) -> None:
        if self.exchange.disconnected:
            raise ClientDisconnected("client disconnected")
        raise ConnectionAbortedError("the response was aborted (see the error above)")

    def _try_sendfile(self, wrapper: FileWrapper) -> bool:
        """Send a file response with ``sendfile``; False when that cannot be done."""
        exchange = self.exchange
        headers = self.out_headers
        if headers is None or exchange.info.scheme != "http":
            return False
        filelike = wrapper.filelike
        try:
            if "b" not in getattr(filelike, "mode", "b"):
                return False
            size = regular_file_size(filelike)
            offset = filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if size is None:
            return False
        count = max(0, size - offset)
        if _has_field(headers, b"transfer-encoding"):
            return False  # the app wants it chunked: the writer must frame every byte
        if self.is_head:
            self._finish(b"", count)
            return True
        if not _has_field(headers, b"content-length"):
            headers = [*headers, (b"content-length", str(count).encode("ascii"))]
        if exchange.stopped:
            self._raise_stopped()
        self.headers_sent = True
        inbox = self.ctx.inbox
        waiter = held_lock()
        inbox.post(exchange.loop_sendfile, (self.out_status, headers, filelike, offset, count, waiter))
        timeout = self.ctx.timeout
        progress = -1
        while not waiter.acquire(timeout=timeout):
            if exchange.response_bytes == progress:
                # Not one segment went out for a whole timeout: the client stalled.
                inbox.post(exchange.loop_give_up, timeout)
                waiter.acquire(timeout=timeout)
                raise TimeoutError(f"the client did not read the response for {timeout:g} s")
            progress = exchange.response_bytes
        if exchange.stopped:
            self._raise_stopped()
        return True


def _has_field(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(field.lower() == name for field, _ in headers)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"WSGI: response body data must be bytes, got {type(data).__name__}")
