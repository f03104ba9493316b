"""The contract between protocol drivers and interface adapters, written once.

A protocol driver (HTTP/1.1 in ``ftserver.threads.http11``; HTTP/2 later) turns stream
events into calls on an **exchange** object built by the interface adapter (ASGI, WSGI,
RSGI) for each request, and the exchange answers through the driver's **stream** methods.
Both sides run on the worker thread's event loop; an adapter that runs application code
elsewhere (WSGI's blocking threads) hops back to the loop before calling the stream.

Driver → exchange (``Exchange``):

- ``Exchange(stream, request, info, body_done)``: one request; ``body_done`` is true when
  the request has no body;
- ``run(worker)``: start the application;
- ``on_body(data)``, ``on_body_end()``, ``on_disconnect()``: what arrived from the client;
- optional ``on_client_eof()``: the client closed its sending side during the exchange (the
  connection stays open for the response: a client may half-close on purpose).

Exchange → driver (``HTTPStream``):

- ``send_body(exchange, body, more, reason=None)``: the response head (first call) and body
  bytes; ``more=False`` ends the response, and a response whose body comes in that one call
  gets a ``content-length``. ``reason`` (with the head only): the application's own reason
  phrase for HTTP/1.1's status line (WSGI has one; ``None``, the standard phrase, costs
  nothing); HTTP/2 has no reason phrase;
- ``send_trailers(exchange, fields)``: end a response with trailer fields;
- ``await send_file(exchange, file, offset, count, reason=None)``: body bytes straight from
  a regular file (``sendfile``), after the head if it has not gone (``reason`` as for
  ``send_body``); the response is then ended with ``send_body(exchange, b"", False)``;
- ``want_body(exchange)``: the app waits for body bytes (send ``100 Continue``, resume reading);
- ``body_consumed(exchange, nbytes)``: the app took body bytes (flow control);
- ``write_paused`` / ``drain()``: write-side backpressure;
- ``abort()``: drop the connection at once (a client that stopped reading);
- ``response_complete(exchange)`` then ``app_finished(exchange, exc)``: the end. If the app
  finishes without a complete response, the driver answers 500 (nothing sent yet) or closes.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ftserver.protocols.events import Request


class ConnectionInfo:
    """Per-connection constants every request on the connection shares."""

    __slots__ = ("client", "server", "scheme", "root_path", "state")

    def __init__(
        self,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
        scheme: str,
        root_path: str,
        state: dict[str, Any] | None,
    ) -> None:
        self.client = client
        self.server = server
        self.scheme = scheme
        self.root_path = root_path
        self.state = state  # ASGI lifespan state of this worker thread, if any


class HTTPStream(Protocol):
    """What an interface adapter needs of a protocol driver for one request."""

    write_paused: bool
    closed: bool

    def send_body(self, exchange: Any, body: bytes, more: bool, reason: bytes | None = None) -> None: ...
    def want_body(self, exchange: Any) -> None: ...
    def body_consumed(self, exchange: Any, nbytes: int) -> None: ...
    def send_trailers(self, exchange: Any, trailers: list[tuple[bytes, bytes]]) -> None: ...
    async def send_file(
        self, exchange: Any, file: Any, offset: int, count: int, reason: bytes | None = None
    ) -> int: ...
    async def drain(self) -> None: ...
    def abort(self) -> None: ...
    def response_complete(self, exchange: Any) -> None: ...
    def app_finished(self, exchange: Any, exc: BaseException | None) -> None: ...


class Exchange(Protocol):
    """One request/response exchange as the driver sees it.

    The driver reads ``request``, ``complete``, ``disconnected``, ``status`` and
    ``response_bytes`` (access log), and, to answer a 500 for an app that failed before
    responding, sets ``status``, ``headers``, ``started``, ``body_sent``, ``complete`` and
    ``response_bytes``.
    """

    request: Request
    complete: bool
    disconnected: bool
    started: bool
    body_sent: bool
    status: int
    headers: list[tuple[bytes, bytes]]
    response_bytes: int

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> None: ...
    def run(self, worker: Any) -> None: ...
    def on_body(self, data: bytes) -> None: ...
    def on_body_end(self) -> None: ...
    def on_disconnect(self) -> None: ...


class InterfaceAdapter(Protocol):
    """Per-worker-thread state of an interface: built inside the worker thread."""

    #: The exchange class the driver instantiates for each request.
    exchange_class: type

    async def startup(self, worker: Any) -> None:
        """Before the worker accepts connections, on its running loop (ASGI lifespan, the
        WSGI thread pool). Raise ``InterfaceStartupFailed`` to abort start-up."""

    async def shutdown(self, worker: Any) -> None:
        """After the worker has drained its connections."""

    # Optional, synchronous: ``before_loop(loop)`` runs in the worker thread before its loop
    # starts (raise ``InterfaceStartupFailed`` to abort), ``after_loop(loop)`` after it has
    # stopped; the loop is not running, so they may call ``loop.run_until_complete``
    # (RSGI's ``__rsgi_init__``/``__rsgi_del__``).


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
