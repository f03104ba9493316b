"""Worker threads: one asyncio selector event loop each, connections stay for life."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
from functools import partial
from typing import TYPE_CHECKING, Any

from ftserver.interfaces.stream import InterfaceStartupFailed
from ftserver.net import CONNECTION_ERRORS, AcceptBackoff
from ftserver.threads.host import WorkerHost, WorkerStats
from ftserver.threads.http1 import HTTP1Driver
from ftserver.threads.http2 import HTTP2Driver
from ftserver.threads.sockets import SocketTransport, WorkerLoop

if TYPE_CHECKING:
    from ftserver.config import Config

logger = logging.getLogger("ftserver.error")

#: Connections taken from a worker's own listener per readiness event.
ACCEPT_BATCH = 64


def new_driver(host: WorkerHost, tls: bool = False) -> asyncio.Protocol:
    """The protocol driver for a new connection.

    On TLS, ``ALPNChoice`` picks HTTP/2 or HTTP/1.1 once the handshake is done. On
    cleartext: HTTP/1.1, whose driver hands over to HTTP/2 on the ``PRI *`` preface or an
    ``Upgrade: h2c`` (``threads/h2c.py``); with ``--http 2`` HTTP/2 only; with
    ``--http 1`` HTTP/1.1 only.
    """
    mode = host.http_mode
    if tls and mode != "1":
        return ALPNChoice(host)
    if mode == "2":
        return HTTP2Driver(host)
    return HTTP1Driver(host)


class ALPNChoice(asyncio.Protocol):
    """A TLS connection's first protocol: once the handshake is done, the driver ALPN
    chose (``h2``: HTTP/2; ``http/1.1`` or none: HTTP/1.1, or HTTP/2 with ``--http 2``)
    takes the connection."""

    def __init__(self, host: WorkerHost) -> None:
        self.host = host

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        protocol = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        host = self.host
        driver: asyncio.Protocol
        if protocol == "h2" or host.http_mode == "2":
            driver = HTTP2Driver(host)
        else:
            driver = HTTP1Driver(host)
        transport.set_protocol(driver)
        driver.connection_made(transport)


class WorkerThread(threading.Thread):
    """One worker: a thread running its own event loop.

    ``listener`` is this worker's own ``SO_REUSEPORT`` socket, or ``None`` when
    connections are handed over by the server's ``AcceptQueue`` (``adopt``).
    """

    def __init__(self, index: int, app: Any, config: Config, listener: socket.socket | None, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(name=f"ftserver-worker-{index}", daemon=True)
        self.index = index
        self.app = app
        self.config = config
        self.listener = listener
        self.ssl_context = ssl_context
        self.stats = WorkerStats()
        self.ready = threading.Event()
        self.startup_error: BaseException | None = None
        self.crashed: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ctx: WorkerHost | None = None
        self.multiprocess = False  # set by a worker process that has siblings (wsgi.multiprocess)
        self.accepting = False
        self.backoff = AcceptBackoff()  # of the own listener's accept(), used by this thread
        self._stop: asyncio.Event | None = None
        self._force = False

    # -- called from other threads ---------------------------------------------------

    def adopt(self, fd: int, family: socket.AddressFamily) -> None:
        """Hand an accepted connection (a bare file descriptor) to this worker; thread-safe."""
        loop = self.loop
        if loop is None or not self.accepting:
            os.close(fd)
            return
        try:
            loop.call_soon_threadsafe(self._adopt, fd, family)
        except RuntimeError:  # loop closed meanwhile
            os.close(fd)

    def stop(self, force: bool = False) -> None:
        """Ask the worker to stop gracefully (or at once with ``force``); thread-safe."""
        loop = self.loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._request_stop, force)
        except RuntimeError:
            pass

    # -- the worker thread -----------------------------------------------------------

    def run(self) -> None:
        loop = WorkerLoop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            self.ctx = WorkerHost(loop, self.app, self.config, self.stats)
            self.ctx.multiprocess = self.multiprocess
            if self._loop_hook("before_loop"):
                loop.run_until_complete(self._main())
                self._loop_hook("after_loop")
        except BaseException as exc:  # noqa: BLE001 - reported to the server, which replaces us
            self.crashed = exc
            logger.critical("worker thread %d crashed", self.index, exc_info=exc)
            self.accepting = False
            if self.ctx is not None:
                # Its connections cannot be served by anyone else: close them now.
                for protocol in list(self.ctx.connections):
                    protocol.abort()
        finally:
            self.accepting = False
            self.ready.set()
            if self.ctx is not None and self.ctx.metrics is not None:
                self.ctx.metrics.stop()  # its gauges no longer count
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            except Exception:  # noqa: BLE001
                pass
            loop.close()

    def _loop_hook(self, name: str) -> bool:
        """Run the interface's optional ``before_loop``/``after_loop(loop)`` hook while the
        loop is not running (RSGI's ``__rsgi_init__`` may call ``loop.run_until_complete``).
        False when the hook refused to start."""
        try:
            getattr(self.ctx.adapter, name)(self.loop)  # type: ignore[union-attr]
        except InterfaceStartupFailed as exc:
            self.startup_error = exc
            return False
        return True

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ctx = self.ctx
        assert ctx is not None
        try:
            await ctx.adapter.startup()
        except InterfaceStartupFailed as exc:
            self.startup_error = exc
            self.ready.set()
            return
        server = None
        listener = self.listener
        if listener is not None:
            if self.ssl_context is None:
                loop.add_reader(listener.fileno(), self._accept, ctx, listener)
            else:
                server = await loop.create_server(partial(new_driver, ctx, True), sock=listener, backlog=self.config.backlog, ssl=self.ssl_context)
        ctx.tick()  # a fresh ctx.now after a long startup: the acceptor skips loops that stopped ticking
        self.accepting = True
        self.ready.set()
        tick = _Ticker(loop, ctx)
        await self._stop.wait()
        self.accepting = False
        if server is not None:
            server.close()
        elif listener is not None:
            loop.remove_reader(listener.fileno())
        await self._drain(ctx)
        tick.cancel()
        await ctx.adapter.shutdown()

    async def _drain(self, ctx: WorkerHost) -> None:
        """Graceful stop: close idle connections, let in-flight requests finish."""
        for protocol in list(ctx.connections):
            protocol.shutdown()
        ctx.stepper.close()
        deadline = ctx.loop.time() + self.config.timeout_graceful_shutdown
        while ctx.connections and not self._force and ctx.loop.time() < deadline:
            await asyncio.sleep(0.05)
            for protocol in list(ctx.connections):
                if not protocol.closing:  # handed over by the acceptor just before the stop
                    protocol.shutdown()
        left = list(ctx.connections)
        if left:
            in_flight = sum(1 for protocol in left if protocol.cycle is not None)
            why = "forced stop" if self._force else f"graceful shutdown timeout ({self.config.timeout_graceful_shutdown:g} s)"
            logger.warning("%s: %d request(s) in progress cut, %d connection(s) closed", why, in_flight, len(left))
        for protocol in left:
            protocol.abort()
        ctx.stepper.cancel_all()
        await asyncio.sleep(0)

    def _adopt(self, fd: int, family: socket.AddressFamily) -> None:
        ctx = self.ctx
        if ctx is None or not self.accepting:
            os.close(fd)
            return
        proto = socket.IPPROTO_TCP if family != socket.AF_UNIX else 0
        sock = socket.socket(family, socket.SOCK_STREAM, proto, fileno=fd)
        sock.setblocking(False)
        if self.ssl_context is None:
            self._serve(ctx, sock)
        else:
            ctx.loop.create_task(self._connect(ctx, sock))

    def _accept(self, ctx: WorkerHost, listener: socket.socket) -> None:
        """This worker's own SO_REUSEPORT listener is readable: take what is queued."""
        backoff = self.backoff
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in CONNECTION_ERRORS:
                    continue
                # EMFILE and friends: stop watching the listener for a while (it stays
                # readable: retrying now would spin); the open connections are served.
                ctx.loop.remove_reader(listener.fileno())
                ctx.loop.call_later(backoff.failed(exc), self._watch, ctx, listener)
                return
            if backoff.since:
                backoff.recovered()
            sock.setblocking(False)
            self._serve(ctx, sock)

    def _watch(self, ctx: WorkerHost, listener: socket.socket) -> None:
        """Accept on this worker's own listener again (after a pause), unless stopping."""
        if self.accepting:
            ctx.loop.add_reader(listener.fileno(), self._accept, ctx, listener)

    def _serve(self, ctx: WorkerHost, sock: socket.socket) -> None:
        """A plain connection: our own transport, straight on the selector."""
        if sock.family != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
            except OSError:
                pass
        try:
            SocketTransport(ctx.loop, sock, new_driver(ctx)).start()  # type: ignore[arg-type]
        except OSError as exc:
            logger.debug("connection dropped before it was set up: %r", exc)
            sock.close()

    async def _connect(self, ctx: WorkerHost, sock: socket.socket) -> None:
        try:
            await ctx.loop.connect_accepted_socket(partial(new_driver, ctx, True), sock, ssl=self.ssl_context)
        except (OSError, ssl.SSLError) as exc:
            logger.debug("connection dropped before it was set up: %r", exc)
            sock.close()

    def _request_stop(self, force: bool) -> None:
        self._force = self._force or force
        if self._stop is not None:
            self._stop.set()


class _Ticker:
    """Calls ``ctx.tick()`` once a second on the worker's loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ctx: WorkerHost) -> None:
        self.loop = loop
        self.ctx = ctx
        self.handle = loop.call_later(1.0, self._fire)

    def _fire(self) -> None:
        try:
            self.ctx.tick()
        finally:
            self.handle = self.loop.call_later(1.0, self._fire)

    def cancel(self) -> None:
        self.handle.cancel()
