"""ASGI 3 adapter: HTTP (spec 2.4) and lifespan.

The HTTP rules are written once here, against the stream interface every HTTP protocol
driver implements (``ftserver.interfaces.stream``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ftserver.interfaces.stream import (
    YIELD_SHIFT,
    AppHost,
    ClientDisconnected,
    ConnectionInfo,
    Exchange,
    HTTPStream,
    InterfaceAdapter,
    InterfaceStartupFailed,
    LoopWaiting,
    pace,
    regular_file_size,
    send_file_body,
    split_target,
)
from ftserver.logs import first_in_process

if TYPE_CHECKING:
    from ftserver.config import Config
    from ftserver.protocols.events import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

logger = logging.getLogger("ftserver.error")

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

def http_scope(request: Request, info: ConnectionInfo) -> dict[str, Any]:
    """Build the ASGI ``http`` connection scope for ``request``.

    ``path`` is the percent-decoded path (UTF-8) and, like ``raw_path``, includes
    ``root_path`` (ASGI spec: root_path is the mount point, path the full path).
    """
    target = request.target
    if target[:1] == b"/":  # origin-form, the usual one
        raw_path, _, query = target.partition(b"?")
    else:
        raw_path, query = split_target(target)
    path = raw_path.decode("ascii")
    if "%" in path:
        path = unquote(path)
    root_path = info.root_path
    if root_path:
        path = root_path + path
        raw_path = root_path.encode() + raw_path
    base = info.scope_base
    if base is None:
        # What the connection's scopes share, once per connection: each scope starts as a
        # copy (faster than a 13-key literal, and no key tuple shared by all threads).
        base = info.scope_base = {
            "type": "http",
            "asgi": ASGI_VERSION.copy(),  # (the connection's own: not a dict all threads share)
            "scheme": info.scheme,
            "root_path": root_path,
            "client": info.client,
            "server": info.server,
        }
    scope = base.copy()
    scope["http_version"] = request.http_version
    scope["method"] = request.method
    scope["path"] = path
    scope["raw_path"] = raw_path
    scope["query_string"] = query
    scope["headers"] = request.headers
    # (Two steps: a literal of two keys loads a key tuple all threads share.)
    scope["extensions"] = extensions = {"http.response.pathsend": {}}
    extensions["http.response.trailers"] = {}
    if info.extended:  # (one test for both, on the per-request path)
        state = info.state
        if state is not None:
            scope["state"] = state.copy()
        if info.tls is not None:  # the ASGI TLS extension: only on TLS connections
            scope["extensions"]["tls"] = info.tls.asgi.copy()
    return scope


def as_bytes(body: Any) -> bytes:
    """A body given as a bytes-like object, as bytes (ASGI: ``body`` is a byte string)."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"ASGI: 'body' must be bytes, got {type(body).__name__}")
    return bytes(body)


def refuse_status(status: Any) -> None:
    """Raise what an ``http.response.start`` with this (unusable) status gets."""
    if type(status) is not int or not 100 <= status <= 999:
        raise TypeError(f"ASGI: 'status' must be an int in 100..999, got {status!r}")
    raise RuntimeError("ASGI: informational (1xx) responses cannot be sent with 'http.response.start'")


class ASGIHTTPCycle(LoopWaiting, Exchange):
    """One request/response exchange of an ``http`` scope (ASGI HTTP spec 2.4)."""

    # The fields every request writes are slots (Exchange's, and scope), set here; the
    # ones a request rarely changes are read from these class defaults (immutable, immortal
    # values) and, when it does change them, stored in the instance's __dict__ (made then).
    # A slot is read and written about twice as fast as a __dict__ entry on 3.13t.
    __slots__ = ("scope", "__dict__")

    chunks: list[bytes] | None = None  # request body parts not yet received by the app
    body_done = True  # the whole request body has arrived
    body_delivered = False  # the app has received more_body=False
    waiter: asyncio.Future[None] | None = None
    client_eof = False  # the client closed its sending side (FIN)
    trailers = False
    trailer_fields: list[tuple[bytes, bytes]] | tuple[()] = ()  # a list once announced

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> None:
        self.stream = stream
        self.request = request
        self.scope = http_scope(request, info)
        self.started = self.body_sent = self.complete = self.disconnected = False
        self.status = self.response_bytes = 0
        self.headers = ()
        if not body_done:
            self.body_done = False

    # -- driver side -------------------------------------------------------------

    def on_body(self, data: bytes) -> None:
        chunks = self.chunks
        if chunks is None:
            self.chunks = [data]
        else:
            chunks.append(data)
        self._wake()

    def on_body_end(self) -> None:
        self.body_done = True
        self._wake()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    def on_client_eof(self) -> None:
        """The client closed its sending side after its request: most often it is gone
        (closed, not just half-closed), and only a write would tell. An app waiting in
        ``receive()`` for ``http.disconnect`` gets it now (as in Uvicorn); its sends still
        go out, for a client that only half-closed."""
        self.client_eof = True
        self._wake()

    def app_done(self, exc: BaseException | None) -> None:
        """Called once when the application coroutine has returned or raised."""
        self.stream.app_finished(self, exc)

    # -- application side --------------------------------------------------------

    async def receive(self) -> Message:
        if self.complete or self.disconnected:
            return {"type": "http.disconnect"}
        chunks = self.chunks
        if not chunks:
            if self.body_done:
                if not self.body_delivered:
                    self.body_delivered = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                # The body was delivered: the next message is the disconnect, whenever
                # the client goes or the response is complete.
                while not (self.complete or self.disconnected or self.client_eof):
                    await self._wait()
                return {"type": "http.disconnect"}
            self.stream.want_body(self)
            while not (self.chunks or self.body_done or self.disconnected):
                await self._wait()
            if self.disconnected:
                return {"type": "http.disconnect"}
            chunks = self.chunks
        if chunks:
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.chunks = None
            if body:
                self.stream.body_consumed(self, len(body))
        else:
            body = b""
        more = not self.body_done
        if not more:
            self.body_delivered = True
        return {"type": "http.request", "body": body, "more_body": more}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            if not self.started or self.body_sent or self.disconnected:
                self._refuse_body("http.response.body")
            try:
                body = message["body"]
            except KeyError:
                body = b""
            if type(body) is not bytes:
                body = as_bytes(body)
            stream = self.stream
            if "more_body" in message and message["more_body"]:
                sent_before = self.response_bytes
                self.response_bytes = sent_after = sent_before + len(body)
                stream.send_body(self, body, True)
                # The common case in one test: no drain, no yield, nothing to await.
                if not (stream.write_paused or sent_after >> YIELD_SHIFT != sent_before >> YIELD_SHIFT):
                    return
                await pace(stream)
                if self.disconnected:
                    raise ClientDisconnected("client disconnected")
                return
            self.response_bytes += len(body)
            self.body_sent = True
            # With trailers announced the response ends with the trailers message.
            if self.trailers:
                stream.send_body(self, body, True)
            else:
                if self.waiter is not None:
                    self._wake()  # (the woken coroutine runs later, once complete is set)
                stream.send_last(self, body)
                self.complete = True
            if stream.write_paused:
                # The last message waits too: a slow reader holds the app, not memory
                # (the driver starts no pipelined request meanwhile).
                await stream.drain()
            return
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("ASGI: 'http.response.start' sent twice")
            status = message["status"]
            # (status >> 2 < 250: status < 1000 without a shared large-int constant)
            if type(status) is not int or status < 200 or status >> 2 >= 250:
                refuse_status(status)
            try:
                headers = message["headers"]
            except KeyError:
                headers = ()
            self.headers = headers if type(headers) is list else list(headers)
            self.status = status
            if "trailers" in message and message["trailers"]:
                self.trailers = True
                self.trailer_fields = []
            self.started = True
            return
        if kind == "http.response.trailers":
            if not (self.trailers and self.body_sent) or self.complete:
                raise RuntimeError("ASGI: 'http.response.trailers' sent without 'trailers': True or before the body was complete")
            headers = message.get("headers", ())
            self.trailer_fields += headers  # type: ignore[operator]
            if not message.get("more_trailers", False):
                self.stream.send_trailers(self, self.trailer_fields)
                self.complete = True
                self._wake()
                self.stream.response_complete(self)
            return
        if kind == "http.response.pathsend":
            await self._send_path(message["path"])
            return
        raise RuntimeError(f"ASGI: unexpected message type {kind!r} for an 'http' scope")

    def _refuse_body(self, kind: str) -> None:
        """Raise what a body message sent out of turn (or to a client that went) gets."""
        if not self.started:
            raise RuntimeError(f"ASGI: {kind!r} sent before 'http.response.start'")
        if self.body_sent:
            raise RuntimeError(f"ASGI: {kind!r} sent after the response body was complete")
        raise ClientDisconnected("client disconnected")

    async def _send_path(self, path: str) -> None:
        """The ``http.response.pathsend`` extension: the whole body from a file, with
        ``sendfile`` where the connection allows (the bytes never enter Python)."""
        if not self.started or self.body_sent:
            raise RuntimeError("ASGI: 'http.response.pathsend' sent before 'http.response.start' or after the body")
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        with open(path, "rb") as file:
            size = regular_file_size(file)
            if size is None:
                raise RuntimeError(f"ASGI: 'http.response.pathsend' path {path!r} is not a regular file")
            if not any(name.lower() == b"content-length" for name, _ in self.headers):
                self.headers = [*self.headers, (b"content-length", b"%d" % size)]
            self.body_sent = True
            await send_file_body(self.stream, self, file, 0, size, self.request.method == "HEAD")
        if self.complete:
            self._wake()


class ASGI2App:
    """An ASGI 2 app (``app(scope)`` returns an instance, awaited as ``instance(receive,
    send)``) as an ASGI 3 one (``--interface asgi2``)."""

    __slots__ = ("app",)

    def __init__(self, app: Callable[[Scope], Callable[[Receive, Send], Awaitable[None]]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        instance = self.app(scope)
        await instance(receive, send)


# -- lifespan ---------------------------------------------------------------------


class LifespanFailed(InterfaceStartupFailed):
    """The app reported ``lifespan.startup.failed`` (or crashed during startup with --lifespan on)."""


class Lifespan:
    """Runs the app's ``lifespan`` scope on one event loop (ASGI lifespan spec 2.0).

    ``mode`` is ``"on"`` (failures are fatal), ``"auto"`` (an app that raises before
    answering is taken not to support lifespan) or ``"off"``.
    """

    def __init__(self, app: ASGIApp, mode: str, label: str = "") -> None:
        self.app = app
        self.mode = mode
        self.label = label
        self.state: dict[str, Any] = {}
        self.supported = mode != "off"
        self._to_app: asyncio.Queue[Message] | None = None
        self._startup_done: asyncio.Future[Message] | None = None
        self._shutdown_done: asyncio.Future[Message] | None = None
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        if not self.supported:
            return
        loop = asyncio.get_running_loop()
        self._to_app = asyncio.Queue()
        self._startup_done = loop.create_future()
        self._shutdown_done = loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        self._task = loop.create_task(self._run(scope), name="ftserver-lifespan")
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._startup_done
        if message.get("type") == "lifespan.startup.failed":
            raise LifespanFailed(message.get("message") or "lifespan startup failed") from message.get("exc")
        if message.get("type") == "unsupported":
            self.supported = False

    async def shutdown(self) -> None:
        if not self.supported or self._task is None or self._to_app is None:
            return
        assert self._shutdown_done is not None
        if self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._shutdown_done
        if message.get("type") == "lifespan.shutdown.failed":
            logger.error("lifespan shutdown failed%s: %s", self.label, message.get("message", ""))
        try:
            await asyncio.wait_for(self._task, timeout=5)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - errors were already reported
            pass

    async def _receive(self) -> Message:
        assert self._to_app is not None
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        assert self._startup_done is not None and self._shutdown_done is not None
        if kind in ("lifespan.startup.complete", "lifespan.startup.failed"):
            if self._startup_done.done():
                raise RuntimeError(f"ASGI lifespan: unexpected {kind!r}")
            self._startup_done.set_result(message)
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            if not self._startup_done.done() or self._shutdown_done.done():
                raise RuntimeError(f"ASGI lifespan: unexpected {kind!r}")
            self._shutdown_done.set_result(message)
        else:
            raise RuntimeError(f"ASGI lifespan: unexpected message type {kind!r}")

    async def _run(self, scope: Scope) -> None:
        assert self._startup_done is not None and self._shutdown_done is not None
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, asyncio.CancelledError):
                raise
            if not self._startup_done.done():
                if self.mode == "auto":
                    # Each worker thread finds it out; the log says it once per process.
                    if first_in_process("lifespan unsupported", self.app):
                        logger.info("ASGI 'lifespan' protocol appears unsupported by the app (%s: %s)", type(exc).__name__, exc)
                    self._startup_done.set_result({"type": "unsupported"})
                else:
                    # Not logged here, once per worker thread: the server logs the first
                    # failure's traceback (LifespanFailed.__cause__) once.
                    self._startup_done.set_result({"type": "lifespan.startup.failed", "message": repr(exc), "exc": exc})
            else:
                logger.error("exception in ASGI lifespan%s", self.label, exc_info=exc)
                if not self._shutdown_done.done():
                    self._shutdown_done.set_result({"type": "lifespan.shutdown.failed", "message": repr(exc)})
        finally:
            if not self._startup_done.done():
                # The app returned without answering: it ignores lifespan.
                self._startup_done.set_result({"type": "unsupported"})
            if not self._shutdown_done.done():
                self._shutdown_done.set_result({"type": "lifespan.shutdown.complete"})


class ASGIAdapter(InterfaceAdapter):
    """ASGI on one worker thread: the lifespan scope around that thread's lifetime."""

    __slots__ = ("app", "step")  # (read per request: slots, the rest in the __dict__)

    def __init__(self, app: ASGIApp, config: Config, host: AppHost, label: str = "") -> None:
        super().__init__(host)
        # One exchange class: the class itself is ``open`` (no call of ours per request).
        self.open = ASGIHTTPCycle  # type: ignore[method-assign,assignment]
        self.app = app
        self.step = host.step
        self.lifespan = Lifespan(app, config.lifespan, label)
        if config.ws_enabled:
            from ftserver.interfaces.websocket import WebSocketSettings

            self.websocket = WebSocketSettings(config)

    def open_websocket(self, stream: HTTPStream, request: Request, info: ConnectionInfo, offer: Any) -> Exchange:
        from ftserver.interfaces.asgi_websocket import ASGIWebSocket

        return ASGIWebSocket(stream, request, info, offer, self.websocket)

    def start(self, exchange: ASGIHTTPCycle) -> None:  # (or an ASGIWebSocket)
        """Start the app on the worker's loop, stepped without a Task of its own."""
        try:
            coro = self.app(exchange.scope, exchange.receive, exchange.send)
        except BaseException as exc:  # noqa: BLE001 - the app's mistake, answered with a 500
            exchange.app_done(exc)
            return
        self.step(coro, exchange)

    async def startup(self) -> None:
        lifespan = self.lifespan
        await lifespan.startup()
        if lifespan.supported:
            self.host.lifespan_state = lifespan.state

    async def shutdown(self) -> None:
        await self.lifespan.shutdown()
