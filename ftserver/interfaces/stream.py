"""The stream layer: the contract between protocol drivers and interface adapters.

A driver (HTTP/1.1 today; HTTP/2 and WebSocket plug in the same way) turns a request into an
**exchange** built by the adapter (ASGI, WSGI, RSGI) and hands it the request's body and end;
the exchange answers through the driver's **stream** for that request. Also here: the
helpers every adapter shares (target split, send pacing, the file pump). The rules and
the thread that owns each object are in ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ftserver.protocols.events import Request
    from ftserver.tls import TLSInfo

#: A response body sent in parts yields to the loop each time it crosses a multiple of
#: 2**19 bytes (512 KiB) (``pace``).
YIELD_SHIFT = 19
#: Bytes per ``send_file`` call of ``pump_file``: a client that went is noticed between them.
FILE_SEGMENT = 1024 * 1024
#: ``send_file_body`` reads files up to this size at once and sends them with the head.
READ_AT_ONCE = 256 * 1024

_INTERNAL_ERROR_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21")]
_INTERNAL_ERROR_BODY = b"Internal Server Error"


class ClientDisconnected(OSError):
    """The client has gone: raised to an application that sends (ASGI HTTP spec 2.4) or reads."""


class ConnectionInfo:
    """Per-connection constants every request on the connection shares."""

    __slots__ = ("client", "server", "scheme", "root_path", "state", "tls", "extended", "scope_base")

    def __init__(
        self,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        scheme: str,
        root_path: str,
        state: dict[str, Any] | None,
        tls: TLSInfo | None = None,
    ) -> None:
        self.client = client
        self.server = server
        self.scheme = scheme
        self.root_path = root_path
        self.state = state  # ASGI lifespan state of this worker thread, if any
        self.tls = tls  # what a TLS connection tells the apps (None: plain HTTP)
        self.extended = state is not None or tls is not None  # a scope gets more than the basics
        #: What every scope of this connection shares, made by the adapter on first use
        #: (ASGI: a dict each request's scope starts as a copy of).
        self.scope_base: dict[str, Any] | None = None

    def copy(self) -> ConnectionInfo:
        """A copy to change for one request (``--proxy-headers``)."""
        new = object.__new__(ConnectionInfo)
        for name in ConnectionInfo.__slots__:
            setattr(new, name, getattr(self, name))
        new.scope_base = None  # (made from the changed fields when needed)
        return new


class AppHost(Protocol):
    """What an adapter needs of the worker thread it serves (``threads.host.WorkerHost``)."""

    loop: asyncio.AbstractEventLoop
    #: One of several worker processes (WSGI's ``wsgi.multiprocess``).
    multiprocess: bool
    #: The ASGI lifespan state, set by the adapter's ``startup``.
    lifespan_state: dict[str, Any] | None

    def step(self, coro: Awaitable[Any], exchange: Any) -> None:
        """Run an application coroutine on the worker's loop in a copy of the worker's
        context; ``exchange.app_done(exc)`` once it has returned (``None``) or raised."""


class HTTPStream(Protocol):
    """What an exchange needs of the driver for its request (one stream of a connection).

    ``write_paused``/``drain()`` and ``want_body``/``body_consumed`` are per stream: on
    HTTP/1.1 the connection carries one stream at a time; on HTTP/2 each stream has its own
    flow-control windows.
    """

    write_paused: bool
    closed: bool

    def send_body(self, exchange: Exchange, body: bytes, more: bool) -> None:
        """The response head (first call: ``exchange.status``/``headers``/``reason``) and
        body bytes; ``more=False`` ends the response, and a response whose whole body comes
        in that one call gets a ``content-length``."""

    def send_last(self, exchange: Exchange, body: bytes) -> None:
        """What ``send_body(exchange, body, False)`` then ``response_complete(exchange)`` do,
        in one call (the usual end of a response); the exchange marks itself complete after."""

    def send_trailers(self, exchange: Exchange, trailers: list[tuple[bytes, bytes]]) -> None:
        """End the response with trailer fields (dropped for a client that does not take them)."""

    async def send_file(self, exchange: Exchange, file: Any, offset: int, count: int) -> int:
        """Body bytes straight from a regular file (``sendfile``), after the head if it has not
        gone; returns the bytes sent. The response is then ended with ``send_body(ex, b"", False)``."""

    def want_body(self, exchange: Exchange) -> None:
        """The application waits for body bytes: ask the client for them (HTTP/1.1's
        ``100 Continue``) and read on."""

    def body_consumed(self, exchange: Exchange, nbytes: int) -> None:
        """The application took ``nbytes`` of body: room for more (read resumes; HTTP/2's
        WINDOW_UPDATE)."""

    async def drain(self) -> None:
        """Return once the stream's buffered response bytes are below the high-water mark."""

    def abort(self) -> None:
        """Drop the connection at once (a client that stopped reading)."""

    def upgrade(self, exchange: Exchange) -> HTTPStream:
        """Accept a WebSocket handshake with ``exchange.headers`` (HTTP/1.1: ``101``, HTTP/2:
        ``200``) and return the stream that carries its frames from now on: ``send_body(ex,
        frames, True)`` writes them, the exchange's ``on_body`` receives them,
        ``response_complete`` ends the WebSocket (the stream or connection closes)."""
        raise NotImplementedError

    def response_complete(self, exchange: Exchange) -> None:
        """The whole response was handed over."""

    def app_finished(self, exchange: Exchange, exc: BaseException | None) -> None:
        """The application is done (after ``response_complete``, or without a complete
        response: the driver then answers ``exchange.internal_error()`` or closes)."""


class Exchange:
    """Base of the object an adapter builds for each request; the driver reads ``request``,
    ``complete``, ``disconnected``, ``started``, ``status``, ``headers``, ``reason`` and
    ``response_bytes``; ``reason`` may stay the class's ``None``."""

    __slots__ = (
        "stream",
        "request",
        "complete",  # the whole response was handed to the stream
        "disconnected",  # the client has gone
        "started",  # the application started its response (status, headers)
        "body_sent",  # the application's last body part was handed over
        "status",
        "headers",
        "response_bytes",  # body bytes the application sent (access log)
    )

    stream: HTTPStream
    request: Request
    complete: bool
    disconnected: bool
    started: bool
    body_sent: bool
    status: int
    headers: Sequence[tuple[bytes, bytes]]
    response_bytes: int
    #: The application's own reason phrase (WSGI has one; ``None``: the standard phrase).
    reason: bytes | None = None

    def on_body(self, data: bytes) -> None:
        """Request body bytes arrived."""

    def on_body_end(self) -> None:
        """The request body is complete."""

    def on_disconnect(self) -> None:
        """The client has gone."""

    def on_client_eof(self) -> None:
        """The client closed its sending side during the exchange (it may only have half-closed)."""

    def on_body_timeout(self) -> bool:
        """The request body made no progress for ``--timeout-io`` (the driver's body
        timeout). By default the client is as good as gone (``on_disconnect``) and the
        driver answers ``408`` (or closes); an exchange that answers itself returns False."""
        self.on_disconnect()
        return True

    def internal_error(self) -> None:
        """Answer 500 for an application that failed before its response started."""
        self.status = 500
        self.headers = _INTERNAL_ERROR_HEADERS
        if self.reason is not None:
            self.reason = None
        self.started = self.body_sent = self.complete = True
        self.response_bytes = len(_INTERNAL_ERROR_BODY)
        stream = self.stream
        stream.send_body(self, _INTERNAL_ERROR_BODY, False)
        stream.response_complete(self)


class InterfaceAdapter:
    """Per-worker-thread state of an interface, built inside the worker thread.

    The driver calls ``open`` for each request and then ``start`` (once every event already
    received has reached the exchange). ``before_loop``/``after_loop(loop)`` run in the
    worker thread while its loop is not running (RSGI's ``__rsgi_init__``/``__rsgi_del__``
    may call ``loop.run_until_complete``); raise ``InterfaceStartupFailed`` to abort.
    """

    #: Settings of the WebSocket exchanges ``open_websocket`` makes (``WebSocketSettings``),
    #: ``None`` when the adapter serves none: an ``Upgrade: websocket`` is plain HTTP then.
    websocket: Any = None

    def __init__(self, host: AppHost) -> None:
        self.host = host

    def open(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> Exchange:
        """The exchange for a request (``body_done``: it has no body), its class chosen per
        request. An adapter with a single exchange class sets ``self.open`` to that class."""
        raise NotImplementedError

    def open_websocket(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Any) -> Exchange:
        """The WebSocket exchange for a valid opening handshake (``protocols.websocket.Offer``);
        only when ``websocket`` is set. ``start`` runs its application."""
        raise NotImplementedError

    def start(self, exchange: Any) -> None:
        """Start the application for an exchange ``open`` or ``open_websocket`` made."""
        raise NotImplementedError

    def before_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Before the worker's loop runs."""

    async def startup(self) -> None:
        """Before the worker accepts connections, on its running loop (ASGI lifespan, the
        WSGI thread pool). Raise ``InterfaceStartupFailed`` to abort start-up."""

    async def shutdown(self) -> None:
        """After the worker has drained its connections."""

    def after_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """After the worker's loop has stopped."""


class AdapterWrapper(InterfaceAdapter):
    """An adapter in front of the application's (static files, proxy headers): what a
    subclass does not take goes to ``inner``, WebSocket handshakes included."""

    def __init__(self, inner: InterfaceAdapter, host: AppHost) -> None:
        super().__init__(host)
        self.inner = inner
        self.inner_open = inner.open
        self.websocket = inner.websocket

    def open(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> Exchange:
        return self.inner_open(stream, request, info, body_done)

    def open_websocket(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Any) -> Exchange:
        return self.inner.open_websocket(stream, request, info, offer)

    def start(self, exchange: Any) -> None:
        self.inner.start(exchange)

    def before_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.inner.before_loop(loop)

    async def startup(self) -> None:
        await self.inner.startup()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    def after_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.inner.after_loop(loop)


class InterfaceStartupFailed(Exception):
    """The application refused to start (e.g. ASGI ``lifespan.startup.failed``)."""


class LoopWaiting:
    """Mixin for exchanges whose application coroutine waits on the worker's loop for what
    the driver's callbacks bring (body bytes, the end of the body, a disconnect).

    The subclass has a ``waiter`` slot: ``None`` or the one future the app awaits.
    """

    __slots__ = ()

    waiter: asyncio.Future[None] | None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wait(self) -> asyncio.Future[None]:
        waiter = self.waiter
        if waiter is None:
            self.waiter = waiter = asyncio.get_running_loop().create_future()
        return waiter


async def await_app(awaitable: Any) -> Any:
    """A coroutine around an app's awaitable that is not itself a coroutine (it can then be
    stepped like one)."""
    return await awaitable


# -- helpers every adapter shares ------------------------------------------------------


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """The path and the query (without ``?``) of a request-target in any form: origin
    (``/p?q``), absolute (``http://host/p?q``: its path), asterisk (``*``) or authority
    (CONNECT: ``/``)."""
    if target[:1] != b"/" and target != b"*":
        scheme_end = target.find(b"://")
        if scheme_end < 0:  # authority-form
            return b"/", b""
        slash = target.find(b"/", scheme_end + 3)
        if slash < 0:
            question = target.find(b"?", scheme_end + 3)
            target = b"/" + target[question:] if question >= 0 else b"/"
        else:
            target = target[slash:]
    path, _, query = target.partition(b"?")
    return path, query


async def pace(stream: HTTPStream) -> None:
    """What a body sent in parts awaits when the stream's ``write_paused`` is set or the body
    crossed a multiple of 512 KiB (``YIELD_SHIFT``; the test is inlined by the callers):
    the drain (a slow reader holds the application, not memory), else one yield, so that one
    fast stream cannot starve the worker's other connections."""
    if stream.write_paused:
        await stream.drain()
    else:
        await asyncio.sleep(0)


def regular_file_size(file: Any) -> int | None:
    """The size of an open file that ``sendfile`` can send (a regular file), else ``None``."""
    try:
        info = os.fstat(file.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


async def pump_file(stream: HTTPStream, exchange: Exchange, file: Any, offset: int, count: int) -> int:
    """Send ``count`` bytes of ``file`` from ``offset`` through ``stream.send_file``, a
    segment at a time, until done or the client has gone; ``exchange.response_bytes``
    follows the progress. Returns the bytes sent (fewer when the file ended early)."""
    sent = 0
    while sent < count and not exchange.disconnected:
        segment = await stream.send_file(exchange, file, offset + sent, min(count - sent, FILE_SEGMENT))
        if not segment:
            break
        sent += segment
        exchange.response_bytes = sent
    return sent


async def send_file_body(stream: HTTPStream, exchange: Exchange, file: Any, offset: int, count: int, head_only: bool = False) -> None:
    """The whole rest of a response: ``count`` bytes of a regular file from ``offset`` (read
    at once up to ``READ_AT_ONCE``, else by ``pump_file``), then the end of the response.
    ``head_only``: a HEAD response (nothing read). Returns early if the client went."""
    if head_only or count == 0:
        body = b""
    elif count <= READ_AT_ONCE:
        body = os.pread(file.fileno(), count, offset)
        if len(body) != count:
            raise OSError(f"file shorter than its size ({len(body)} of {count} bytes)")
    else:
        sent = await pump_file(stream, exchange, file, offset, count)
        if exchange.disconnected:
            return
        if sent < count:
            raise OSError(f"file ended {count - sent} bytes early")
        body = b""
    end_response(stream, exchange, body)


def end_response(stream: HTTPStream, exchange: Exchange, body: bytes) -> None:
    """The last body bytes of a response whose head is set, then its end."""
    exchange.response_bytes += len(body)
    exchange.body_sent = exchange.complete = True
    stream.send_body(exchange, body, False)
    stream.response_complete(exchange)
