"""RSGI 1.6 (Granian's interface), the HTTP protocol: the exchange, the protocol object the
application gets, and the adapter. Where the spec is silent this does what Granian 2.7.9
does; where it differs, the docstring says "unlike Granian" (see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ftserver.interfaces.rsgi_scope import Scope
from ftserver.interfaces.stream import (
    YIELD_SHIFT,
    AppHost,
    ConnectionInfo,
    Exchange,
    HTTPStream,
    InterfaceAdapter,
    InterfaceStartupFailed,
    LoopWaiting,
    pace,
    pump_file,
    regular_file_size,
)

if TYPE_CHECKING:
    from ftserver.config import Config
    from ftserver.protocols.events import Request

logger = logging.getLogger("ftserver.error")

#: Files up to this size are read at once and sent with the response head; larger files
#: go out with ``sendfile`` (``stream.pump_file``).
FILE_CHUNK = 256 * 1024

RSGIApp = Callable[["Scope", "RSGIHTTPProtocol"], Awaitable[None]]
ResponseHeaders = list[tuple[str, str]]

_NOT_FOUND_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"9")]


class RSGIProtocolError(RuntimeError):
    """The application used the protocol object in a way RSGI does not allow (the request
    body read twice, a second response). Same name and base class as Granian's."""


class RSGIProtocolClosed(RuntimeError):
    """The client has gone: the request body cannot be read, or a streamed response cannot
    continue. Same name and base class as Granian's (``RSGI transport is closed``)."""


# -- the HTTP protocol object ------------------------------------------------------------


def _already_responded() -> RSGIProtocolError:
    # Granian ignores a second response silently; the first one stands here too, but the
    # application hears of its mistake.
    return RSGIProtocolError("RSGI: a response was already sent for this request")


def _bad_status(status: object) -> ValueError:
    # Granian's worker dies on a status outside 100..999; a 1xx cannot be a final response.
    return ValueError(f"RSGI: status must be an int in 200..999, got {status!r}")


def _bad_headers(headers: object) -> TypeError:
    # Response headers are "a list of string tuples" (spec, "HTTP protocol interface").
    return TypeError(f"RSGI: headers must be a list of (str, str) tuples, got {headers!r:.200}")


#: ``RSGIHTTPExchange.watchers`` once the client went or the request ended.
_RELEASED: tuple[()] = ()


class RSGIHTTPExchange(LoopWaiting, Exchange):
    """One request as the protocol driver sees it (``ftserver.interfaces.stream.Exchange``):
    the state behind the application's ``RSGIHTTPProtocol``, and the RSGI rules.

    On 3.13t every attribute store is a full generic lookup, so a request pays only for the
    state it uses: ``status``, ``headers``, ``body_sent`` and ``response_bytes`` are set
    when a response starts (the driver reads them only after ``started``), and the state
    of body reads, streams and files lives in the instance ``__dict__``, made on first use,
    with class-level defaults.
    """

    __slots__ = (
        "scope",
        "chunks",
        "body_done",
        "watchers",
        "__dict__",
    )

    body_taken = False  # the application asked for the body (it can only once)
    waiter: asyncio.Future[None] | None = None  # the application waits for body bytes
    streaming = False  # response_stream() was called
    file_task: asyncio.Task[None] | None = None  # a large file being sent
    app_returned = False  # the application returned while file_task was running
    app_exc: BaseException | None = None  # what it raised, or why the file could not be sent

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> None:
        self.stream = stream
        self.request = request
        self.scope = Scope(request, info)
        self.chunks: list[bytes] = []
        self.body_done = body_done  # the whole request body has arrived
        self.disconnected = False
        self.started = False
        self.complete = False
        # client_disconnect() waiters; _RELEASED once the client went (connection lost or
        # EOF) or the application returned.
        self.watchers: list[asyncio.Future[None]] | tuple[()] | None = None

    # -- driver side -------------------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        self.chunks.append(data)
        if self.waiter is not None:
            self._wake()

    def on_body_end(self) -> None:
        self.body_done = True
        if self.waiter is not None:
            self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()
        self._notify_watchers()

    def on_client_eof(self) -> None:
        """The client closed its sending side while the request is in progress.

        Granian (hyper, which does not keep half-closed connections) treats this as the
        client going away, so ``client_disconnect()`` resolves; the response is still
        written, for a client that half-closed on purpose.
        """
        self._notify_watchers()

    def app_done(self, exc: BaseException | None) -> None:
        """Called once when the application coroutine has returned or raised.

        A streamed response ends when the application returns (Granian does the same); a
        file still being sent ends the exchange when the last chunk is out.
        """
        if self.complete:  # the usual case: response_str() and friends
            if self.watchers is None:
                self.watchers = _RELEASED
            else:
                self._notify_watchers()
            self.stream.app_finished(self, exc)
            return
        if self.file_task is not None:
            if not self.file_task.done():
                self.app_returned = True
                self.app_exc = exc
                return
            if exc is None:
                exc = self.app_exc  # the file could not be sent whole
        if self.streaming and exc is None and not self.complete and not self.disconnected:
            try:
                self.stream.send_body(self, b"", False)
            except Exception as error:  # noqa: BLE001 - e.g. fewer bytes than its content-length
                exc = error
            else:
                self.body_sent = self.complete = True
                self.stream.response_complete(self)
        self._end(exc)

    def _end(self, exc: BaseException | None) -> None:
        if exc is None and self.disconnected and not self.complete:
            # The app stopped because the client went: not the app's mistake (logged at debug).
            exc = RSGIProtocolClosed("client disconnected")
        self._notify_watchers()
        self.stream.app_finished(self, exc)

    def _notify_watchers(self) -> None:
        watchers = self.watchers
        self.watchers = _RELEASED
        if watchers:
            for watcher in watchers:
                if not watcher.done():
                    watcher.set_result(None)

    # -- request body ------------------------------------------------------------------

    def take_body(self) -> None:
        # Granian: the body can be read once, whole or as chunks; a second read raises.
        if self.body_taken:
            raise RSGIProtocolError("RSGI: the request body was already read")
        self.body_taken = True

    async def read_body(self) -> bytes:
        self.take_body()
        chunks = self.chunks
        if not self.body_done:
            stream = self.stream
            stream.want_body(self)
            parts: list[bytes] = []
            while True:
                if chunks:
                    # Take what arrived so that the driver keeps reading (flow control).
                    size = 0
                    for chunk in chunks:
                        size += len(chunk)
                    parts += chunks
                    chunks.clear()
                    stream.body_consumed(self, size)
                if self.body_done:
                    break
                if self.disconnected:
                    raise RSGIProtocolClosed("RSGI transport is closed")
                await self._wait()
            chunks = parts
        elif chunks:
            size = 0
            for chunk in chunks:
                size += len(chunk)
            self.stream.body_consumed(self, size)
        if not chunks:
            return b""
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        return body

    async def next_chunk(self) -> bytes:
        chunks = self.chunks
        if not chunks:
            if self.body_done:
                raise StopAsyncIteration
            self.stream.want_body(self)
            while not (chunks or self.body_done or self.disconnected):
                await self._wait()
            if not chunks:
                if self.body_done:
                    raise StopAsyncIteration
                raise RSGIProtocolClosed("RSGI transport is closed")
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.stream.body_consumed(self, len(data))
        return data

    async def wait_disconnect(self) -> None:
        watchers = self.watchers
        if watchers is _RELEASED:
            return
        watcher = asyncio.get_running_loop().create_future()
        if watchers is None:
            self.watchers = [watcher]
        else:
            watchers.append(watcher)  # type: ignore[union-attr]
        await watcher

    # -- responses -----------------------------------------------------------------------

    def _head(self, status: int, headers: ResponseHeaders) -> None:
        """Check and record the response head (sent with the body, or by ``stream``)."""
        if self.started:
            raise _already_responded()
        if type(status) is not int or not 200 <= status <= 999:
            raise _bad_status(status)
        try:
            self.headers = [(name.encode(), value.encode()) for name, value in headers]
        except (AttributeError, TypeError, ValueError):
            raise _bad_headers(headers) from None
        self.status = status
        self.started = True

    def start(self, status: int, headers: ResponseHeaders) -> None:
        """The head of a response whose body follows (a file or a stream)."""
        self._head(status, headers)
        self.body_sent = False
        self.response_bytes = 0

    def respond(self, status: int, headers: ResponseHeaders, body: bytes) -> None:
        """A whole response: the head and ``send_whole`` in one call (the hot path)."""
        self._head(status, headers)
        self.send_whole(body)

    def send_whole(self, body: bytes) -> None:
        self.body_sent = True
        self.response_bytes = len(body)
        stream = self.stream
        stream.send_body(self, body, False)
        self.complete = True
        stream.response_complete(self)

    def send_file(self, path: str, start: int, end: int | None) -> None:
        try:
            file = open(path, "rb")  # noqa: SIM115 - closed below, or by _pump_file
        except (OSError, TypeError, ValueError) as exc:
            self._file_not_found(path, exc)
            return
        handed_over = False
        try:
            size = regular_file_size(file)
            if size is None:
                self._file_not_found(path, "not a regular file")
                return
            stop = size if end is None else min(end, size)
            count = max(0, stop - start)
            if not any(name.lower() == b"content-length" for name, _ in self.headers):
                self.headers = [*self.headers, (b"content-length", str(count).encode())]
            if count == 0 or self.request.method == "HEAD":
                self.send_whole(b"")
                return
            if count <= FILE_CHUNK:
                data = os.pread(file.fileno(), count, start)
                if len(data) != count:
                    raise OSError(f"{path}: file shorter than its size ({len(data)} of {count} bytes)")
                self.send_whole(data)
                return
            self.body_sent = True
            self.file_task = asyncio.get_running_loop().create_task(self._pump_file(file, start, count))
            handed_over = True
        finally:
            if not handed_over:
                file.close()

    def _file_not_found(self, path: str, reason: object) -> None:
        logger.info("RSGI response_file: cannot send %r: %s", path, reason)
        self.status = 404
        self.headers = _NOT_FOUND_HEADERS
        self.send_whole(b"Not found")

    async def _pump_file(self, file: Any, offset: int, count: int) -> None:
        """Send ``count`` bytes of ``file`` from ``offset`` with the driver's ``send_file``
        (``sendfile``: the bytes never enter Python; the loop never waits on the disk), a
        segment at a time so that a client that went is noticed between segments."""
        stream = self.stream
        error: BaseException | None = None
        try:
            sent = await pump_file(stream, self, file, offset, count)
            if not self.disconnected:
                if sent < count:
                    raise OSError(f"file ended {count - sent} bytes early")
                stream.send_body(self, b"", False)
                self.complete = True
                stream.response_complete(self)
        except ConnectionError:
            self.disconnected = True  # the client went; connection_lost follows
        except BaseException as exc:  # noqa: BLE001 - ends the exchange like an app error
            error = exc
        finally:
            file.close()
        if self.app_returned:
            # The application is done too: end the exchange (its error first, if any).
            exc = self.app_exc or error
            self.app_exc = None
            self._end(exc)
        elif error is not None:
            self.app_exc = error


class RSGIHTTPProtocol:
    """The HTTP protocol object of one request (spec, "HTTP protocol interface").

    Body: ``await protocol()`` or ``async for chunk in protocol``, once per request (Granian:
    a second read raises ``RSGIProtocolError``). Response: exactly one of the ``response_*``
    methods; a second one raises ``RSGIProtocolError`` (Granian ignores it silently; the
    first response stands either way). Response headers are "a list of string tuples";
    values are sent as UTF-8, as Granian does, and a name that is not a token or a value
    holding CR, LF or NUL fails the response with a 500 (Granian drops such a header).
    """

    __slots__ = ("_exchange",)

    def __init__(self, exchange: RSGIHTTPExchange) -> None:
        self._exchange = exchange

    def __call__(self) -> Coroutine[Any, Any, bytes]:
        """The whole request body (spec: "``__call__`` to receive the entire body in ``bytes``
        format"). Raises ``RSGIProtocolClosed`` if the client goes before it is complete."""
        return self._exchange.read_body()

    def __aiter__(self) -> RSGIHTTPProtocol:
        """The request body in chunks as they arrive (spec: "``__aiter__`` to receive the body
        in ``bytes`` chunks"); the socket is not read beyond 256 KiB not yet taken.

        An empty body gives no chunk (Granian gives one empty chunk). Unlike Granian, which
        ends the iteration quietly, a client that goes before the body is complete raises
        ``RSGIProtocolClosed``: a truncated body never looks complete.
        """
        self._exchange.take_body()
        return self

    def __anext__(self) -> Coroutine[Any, Any, bytes]:
        return self._exchange.next_chunk()

    def client_disconnect(self) -> Coroutine[Any, Any, None]:
        """Return once the client has gone (Granian 2.7.9; RSGI 1.6).

        Resolves when the connection is lost or the client closes its side while the request
        is in progress, and at the latest when the application returns: the RSGI connection
        scope ends with the request (spec, "HTTP connection scope"). On a keep-alive
        connection Granian resolves it only when the connection closes, possibly much
        later; here a watcher left waiting is released with its request.
        """
        return self._exchange.wait_disconnect()

    def response_empty(self, status: int, headers: ResponseHeaders) -> None:
        """A response without a body (``content-length: 0`` unless the status has no body)."""
        self._exchange.respond(status, headers, b"")

    def response_str(self, status: int, headers: ResponseHeaders, body: str) -> None:
        """A response whose body is ``body`` encoded as UTF-8, with a ``content-length``."""
        if type(body) is not str:
            raise TypeError(f"RSGI: response_str() body must be str, got {type(body).__name__}")
        self._exchange.respond(status, headers, body.encode())

    def response_bytes(self, status: int, headers: ResponseHeaders, body: bytes) -> None:
        """A response whose body is ``body`` (bytes-like), with a ``content-length``."""
        if type(body) is not bytes:
            if not isinstance(body, (bytes, bytearray, memoryview)):
                raise TypeError(f"RSGI: response_bytes() body must be bytes, got {type(body).__name__}")
            body = bytes(body)
        self._exchange.respond(status, headers, body)

    def response_file(self, status: int, headers: ResponseHeaders, file: str) -> None:
        """The content of the file at path ``file`` (spec: "to send back a file response
        (from its path)").

        The application sets the other headers (Granian leaves them to it); a
        ``content-length`` is added when the application did not set one (Granian sends
        the file chunked). A file that cannot be opened, or is not a regular file, gets
        Granian's answer to a missing file: 404 ``Not found``. Files above 256 KiB are sent
        with ``sendfile`` (on TLS, read off the event loop), as fast as the client takes them.
        """
        exchange = self._exchange
        exchange.start(status, headers)
        exchange.send_file(file, 0, None)

    def response_file_range(self, status: int, headers: ResponseHeaders, file: str, start: int, end: int) -> None:
        """Bytes ``start`` (inclusive) to ``end`` (exclusive) of the file at path ``file``
        (Granian 2.7.9; RSGI 1.6). The application sets ``status`` (206) and the
        ``content-range`` header.

        As in Granian: ``end <= start`` raises ``ValueError("Invalid range")``; ``end`` past
        the end of the file is cut to the file's size, and a ``start`` past it gives an empty
        body. A file that cannot be opened gets 404 ``Not found``.
        """
        if type(start) is not int or type(end) is not int or start < 0:
            raise TypeError("RSGI: response_file_range() start and end must be non-negative ints")
        if end <= start:
            raise ValueError("Invalid range")
        exchange = self._exchange
        exchange.start(status, headers)
        exchange.send_file(file, start, end)

    def response_stream(self, status: int, headers: ResponseHeaders) -> HTTPStreamTransport:
        """Start a streamed response and return its transport (spec: "``response_stream`` to
        start a stream response").

        The head goes out now (with the first chunks if they follow in the same loop
        iteration), chunked unless the application set a ``content-length``. The response
        ends when the application returns, as in Granian; if the application raises
        instead, the connection is closed without the end of the body, so the client cannot
        take a truncated body for a whole one (Granian ends the body normally).
        """
        exchange = self._exchange
        exchange.start(status, headers)
        exchange.streaming = True
        exchange.stream.send_body(exchange, b"", True)
        return HTTPStreamTransport(exchange)

    def __repr__(self) -> str:
        return f"<RSGIHTTPProtocol {self._exchange.scope!r}>"


class HTTPStreamTransport:
    """The transport of a streamed response (spec, "HTTP protocol interface":
    ``send_bytes`` and ``send_str`` coroutines).

    Each call waits while the transport's write buffer is above its high-water mark, so a
    slow client slows the application down instead of filling memory; an application that
    never has to wait still yields to the event loop every 512 KiB, so that one stream
    cannot starve the worker's other connections. Once the client has gone, a call raises
    ``RSGIProtocolClosed`` (as Granian does).
    """

    __slots__ = ("_exchange",)

    def __init__(self, exchange: RSGIHTTPExchange) -> None:
        self._exchange = exchange

    async def send_bytes(self, data: bytes) -> None:
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"RSGI: send_bytes() takes bytes, got {type(data).__name__}")
            data = bytes(data)
        await self._send(data)

    async def send_str(self, data: str) -> None:
        if type(data) is not str:
            raise TypeError(f"RSGI: send_str() takes str, got {type(data).__name__}")
        await self._send(data.encode())

    async def _send(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange.disconnected or exchange.complete:
            raise RSGIProtocolClosed("RSGI transport is closed")
        if not data:
            return
        sent_before = exchange.response_bytes
        exchange.response_bytes = sent_after = sent_before + len(data)
        stream = exchange.stream
        stream.send_body(exchange, data, True)
        if stream.write_paused or sent_after >> YIELD_SHIFT != sent_before >> YIELD_SHIFT:
            await pace(stream)


#: What ``RSGIAdapter.start`` hands the application with the scope (the WebSocket exchange has its own).
RSGIHTTPExchange.protocol_class = RSGIHTTPProtocol  # type: ignore[attr-defined]


# -- the adapter ---------------------------------------------------------------------


class RSGIAdapter(InterfaceAdapter):
    """RSGI on one worker thread: the application's ``__rsgi_init__``/``__rsgi_del__`` hooks
    around that thread's event loop.

    As in Granian, each hook is called with the worker's loop while it is **not running**,
    so a hook may call ``loop.run_until_complete(...)`` to set up async resources on the
    loop that will use them: ``__rsgi_init__(loop)`` once per worker thread before it
    accepts connections (an exception aborts start-up), ``__rsgi_del__(loop)`` once after it
    has drained its connections.
    """

    def __init__(self, app: Any, config: Config, host: AppHost, label: str = "") -> None:
        super().__init__(host)
        # One exchange class: the class itself is ``open`` (no call of ours per request).
        self.open = RSGIHTTPExchange  # type: ignore[method-assign,assignment]
        self.step = host.step
        self.label = label
        self.handler: RSGIApp = getattr(app, "__rsgi__", app)
        self.init_hook: Callable[[asyncio.AbstractEventLoop], Any] | None = getattr(app, "__rsgi_init__", None)
        self.del_hook: Callable[[asyncio.AbstractEventLoop], Any] | None = getattr(app, "__rsgi_del__", None)
        if config.ws_enabled:
            from ftserver.interfaces.websocket import WebSocketSettings

            self.websocket = WebSocketSettings(config)

    def open_websocket(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Any) -> Exchange:
        from ftserver.interfaces.rsgi_websocket import RSGIWebSocket

        return RSGIWebSocket(stream, request, info, offer, self.websocket)

    def start(self, exchange: RSGIHTTPExchange) -> None:
        """Start the app on the worker's loop, stepped without a Task of its own."""
        try:
            coro = self.handler(exchange.scope, exchange.protocol_class(exchange))
        except BaseException as exc:  # noqa: BLE001 - the app's mistake, answered with a 500
            exchange.app_done(exc)
            return
        self.step(coro, exchange)

    def before_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.init_hook is None:
            return
        try:
            self.init_hook(loop)
        except Exception as exc:  # the server logs the traceback (__cause__) once
            raise InterfaceStartupFailed(f"__rsgi_init__ raised {type(exc).__name__}: {exc}") from exc

    def after_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.del_hook is None:
            return
        try:
            self.del_hook(loop)
        except Exception as exc:  # noqa: BLE001 - logged; the worker is stopping anyway
            logger.error("exception in __rsgi_del__%s", self.label, exc_info=exc)
