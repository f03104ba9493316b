"""Worker threads: one asyncio selector event loop each, connections stay for life."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from ftserver.interfaces.concurrency import InFlight
from ftserver.interfaces.stream import InterfaceStartupFailed
from ftserver.net import CONNECTION_ERRORS, SETTLE, AcceptBackoff, refuse_new_connections
from ftserver.threads.host import WorkerHost, WorkerStats
from ftserver.threads.http1 import HTTP1Driver
from ftserver.threads.http2 import HTTP2Driver
from ftserver.threads.proxy_header import ProxyProtocol
from ftserver.threads.sockets import SocketTransport, WorkerLoop
from ftserver.threads.tls_transport import TLSTransport

if TYPE_CHECKING:
    from ftserver.config import Config

logger = logging.getLogger("ftserver.error")

#: Connections taken from a worker's own listener per readiness event.
ACCEPT_BATCH = 64


def new_driver(host: WorkerHost, alpn: str | None = None) -> asyncio.Protocol:
    """The protocol driver for a new connection; ``alpn``: the protocol a TLS handshake agreed on.

    HTTP/2 when ALPN chose ``h2`` or with ``--http 2``; otherwise HTTP/1.1, whose driver hands
    a cleartext connection over to HTTP/2 on the ``PRI *`` preface or an ``Upgrade: h2c``
    (``threads/h2c.py``) unless ``--http 1``.
    """
    mode = host.http_mode
    if mode == "2" or (alpn == "h2" and mode != "1"):
        return HTTP2Driver(host)
    return HTTP1Driver(host)


class WorkerThread(threading.Thread):
    """One worker: a thread running its own event loop.

    ``listener`` is this worker's own ``SO_REUSEPORT`` socket, or ``None`` when
    connections are handed over by the server's ``AcceptQueue`` (``adopt``). On a graceful
    stop it closes a listener it ``owns_listener`` without resetting the connections queued
    there (``_close_listener``); an inherited one (``--fd``) is left open for the next server.
    """

    def __init__(
        self,
        index: int,
        app: Any,
        config: Config,
        listener: socket.socket | None,
        ssl_context: ssl.SSLContext | None = None,
        owns_listener: bool = False,
    ) -> None:
        super().__init__(name=f"ftserver-worker-{index}", daemon=True)
        self.index = index
        self.app = app
        self.config = config
        self.listener = listener
        self.owns_listener = owns_listener
        self.ssl_context = ssl_context
        #: ``--limit-concurrency``: the process's count of requests in progress (set by the server).
        self.in_flight: InFlight | None = None
        #: ``--limit-max-connections``: at ``max_connections`` open connections this thread
        #: takes no more until it is down to ``resume_at`` (the acceptor reads both too).
        self.max_connections = config.limit_max_connections
        self.resume_at = max_connections_low_water(config.limit_max_connections)
        self.listening = False  # the own listener is watched (reuseport mode)
        self.stats = WorkerStats() if self.max_connections is None else CloseHookStats(self._connection_closed)
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
        self._handshakes: set[Any] = set()  # connections in their TLS handshake or PROXY header
        self.proxy_protocol = ProxyProtocol.from_config(config)  # (used by this worker's thread only)

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
        listener = self.listener
        if listener is not None:
            loop.add_reader(listener.fileno(), self._accept, ctx, listener)
            self.listening = True
        ctx.tick()  # a fresh ctx.now after a long startup: the acceptor skips loops that stopped ticking
        self.accepting = True
        self.ready.set()
        # (--limit-max-connections: the tick also resumes accepting if a close went unseen)
        tick = _Ticker(loop, ctx, self._connection_closed if self.max_connections is not None else None)
        await self._stop.wait()
        self.accepting = False
        if listener is not None:
            await self._close_listener(ctx, listener)
        await self._drain(ctx)
        tick.cancel()
        await ctx.adapter.shutdown()

    async def _drain(self, ctx: WorkerHost) -> None:
        """Graceful stop: close idle connections, let in-flight requests finish, and serve
        the connections that are still in their TLS handshake once it is over."""
        for protocol in list(ctx.connections):
            protocol.shutdown()
        ctx.stepper.close()
        deadline = ctx.loop.time() + self.config.timeout_graceful_shutdown
        # A connection still in its TLS handshake (or PROXY header) was accepted before the
        # stop too: it is waited for (its own timeout bounds it), then served as the others.
        while (ctx.connections or self._handshakes) and not self._force and ctx.loop.time() < deadline:
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
        for transport in list(self._handshakes):  # connections still in their TLS handshake
            transport.abort()
        ctx.stepper.cancel_all()
        await asyncio.sleep(0)

    async def _close_listener(self, ctx: WorkerHost, listener: socket.socket) -> None:
        """Stop taking connections on this worker's own listener, and close it unless it is
        inherited. Closing resets the connections queued there, so first the listener is
        made to refuse new ones (``refuse_new_connections``); for ``SETTLE`` seconds the
        reader stays (handshakes under way complete), then what is left is accepted. All of
        them are served like the open connections during the drain."""
        loop = ctx.loop
        if self.owns_listener and not self._force and refuse_new_connections(listener):
            await asyncio.sleep(SETTLE)
            while not self._accept(ctx, listener):
                pass
        loop.remove_reader(listener.fileno())
        self.listening = False
        if self.owns_listener:
            listener.close()

    def _adopt(self, fd: int, family: socket.AddressFamily) -> None:
        ctx = self.ctx
        try:
            if ctx is None or not self.accepting:
                os.close(fd)
                return
            proto = socket.IPPROTO_TCP if family != socket.AF_UNIX else 0
            sock = socket.socket(family, socket.SOCK_STREAM, proto, fileno=fd)
            sock.setblocking(False)
            self._serve(ctx, sock)
        finally:
            # Counted taken once it is counted held (open_connections): the acceptor's sum
            # of the two may count it twice for an instant, never not at all.
            self.stats.adopted += 1

    def _accept(self, ctx: WorkerHost, listener: socket.socket) -> bool:
        """This worker's own SO_REUSEPORT listener is readable: take what is queued (a
        batch); True once nothing more is to be taken now."""
        backoff = self.backoff
        cap = self.max_connections
        for _ in range(ACCEPT_BATCH):
            if cap is not None and self.open_connections() >= cap and self.accepting:
                # Full: leave new connections in the kernel's queue (and to the other
                # threads' listeners) until enough of ours have closed (_connection_closed).
                ctx.loop.remove_reader(listener.fileno())
                self.listening = False
                return True
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:
                if exc.errno in CONNECTION_ERRORS:
                    continue
                # EMFILE and friends: stop watching the listener for a while (it stays
                # readable: retrying now would spin); the open connections are served.
                ctx.loop.remove_reader(listener.fileno())
                self.listening = False
                ctx.loop.call_later(backoff.failed(exc), self._watch, ctx, listener)
                return True
            if backoff.since:
                backoff.recovered()
            sock.setblocking(False)
            self._serve(ctx, sock)
        return False

    def _watch(self, ctx: WorkerHost, listener: socket.socket) -> None:
        """Accept on this worker's own listener again (after a pause), unless stopping."""
        if self.accepting and not self.listening:
            ctx.loop.add_reader(listener.fileno(), self._accept, ctx, listener)
            self.listening = True

    def count_requests(self, on_threshold: Callable[[], None]) -> RequestLimitStats:
        """Count this thread's requests against a threshold (``--max-requests``; before the
        thread starts), keeping the close hook of ``--limit-max-connections``."""
        on_close = self._connection_closed if self.max_connections is not None else None
        self.stats = stats = RequestLimitStats(on_threshold, on_close)
        return stats

    def open_connections(self) -> int:
        """Connections this thread holds: served by a driver, or being set up (TLS handshake).
        Every way a connection ends lowers it: the drivers count their closes, a connection
        that ends before it has a driver leaves ``_handshakes``. (Read by the acceptor too.)"""
        stats = self.stats
        return stats.connections - stats.closed + len(self._handshakes)

    def _connection_closed(self) -> None:
        """(``CloseHookStats``) A connection closed: resume accepting on the own listener
        once down to the low-water mark."""
        listener = self.listener
        if not self.listening and listener is not None and self.ctx is not None and self.open_connections() <= self.resume_at:
            self._watch(self.ctx, listener)

    def _handshake_done(self, transport: TLSTransport) -> None:
        """A TLS handshake is over: its connection is a driver's now (then it leaves
        ``_handshakes`` on the next loop pass, once the driver has counted it), or closed."""
        if transport.get_protocol() is not None:
            self.loop.call_soon(self._handshakes.discard, transport)  # type: ignore[union-attr]
            return
        self._handshakes.discard(transport)
        if self.max_connections is not None:
            self._connection_closed()

    def _serve(self, ctx: WorkerHost, sock: socket.socket) -> None:
        """A new connection, driven straight from the selector by our own transport; over
        TLS its handshake comes first, on the same events, within ``--ssl-handshake-timeout``
        (``TLSTransport``: a failed or abandoned handshake costs that connection only and is
        logged at debug), and the driver is chosen by ALPN's answer (``new_driver``)."""
        if sock.family != socket.AF_UNIX:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as asyncio does
            except OSError:
                pass
        proxy = self.proxy_protocol
        if proxy is not None and proxy.expects_header(sock):
            proxy.read(ctx.loop, sock, partial(self._set_up, ctx), self._handshakes)  # (threads/proxy_header.py)
            return
        self._set_up(ctx, sock)

    def _set_up(self, ctx: WorkerHost, sock: socket.socket) -> None:
        context = self.ssl_context
        try:
            if context is None:
                SocketTransport(ctx.loop, sock, new_driver(ctx)).start()  # type: ignore[arg-type]
                return
            handshakes = self._handshakes
            transport = TLSTransport(ctx.loop, sock, context, partial(new_driver, ctx), self.config.ssl_handshake_timeout, self._handshake_done)  # type: ignore[arg-type]
            handshakes.add(transport)
            transport.start()
        except OSError as exc:
            logger.debug("connection dropped before it was set up: %r", exc)
            sock.close()

    def _request_stop(self, force: bool) -> None:
        self._force = self._force or force
        if self._stop is not None:
            self._stop.set()


def max_connections_low_water(cap: int | None) -> int:
    """Where a thread at ``--limit-max-connections`` resumes accepting: 90 % of it (at least
    one below it), so that a full thread does not stop and start again on every close."""
    return 0 if cap is None else min(cap - 1, cap * 9 // 10)


class CloseHookStats(WorkerStats):
    """``WorkerStats`` that tell their thread of every closed connection (only with
    ``--limit-max-connections``: nothing is paid without it)."""

    __slots__ = ("_closed", "on_close")

    def __init__(self, on_close: Callable[[], None]) -> None:
        self.on_close: Callable[[], None] = _nothing
        super().__init__()
        self.on_close = on_close

    @property  # type: ignore[override]
    def closed(self) -> int:
        return self._closed

    @closed.setter
    def closed(self, value: int) -> None:
        self._closed = value
        self.on_close()


class RequestLimitStats(CloseHookStats):
    """``CloseHookStats`` of a worker process with ``--max-requests``: once its request
    counter reaches ``threshold`` it calls ``on_threshold`` (from its worker thread); the
    close hook is kept (a no-op without ``--limit-max-connections``).

    How such a process learns of the requests on keep-alive connections as they are
    served: the acceptor counts them at each accept only, and the main thread looked
    twice a second, which let a keep-alive load of 9,000 requests a second run 800 to
    4,500 requests past the limit. The property costs each request of such a process a
    call (without ``--max-requests`` the counter is the plain slot of ``WorkerStats``).
    """

    __slots__ = ("count", "threshold", "on_threshold")

    #: A threshold never reached.
    NEVER = 2**62

    def __init__(self, on_threshold: Callable[[], None], on_close: Callable[[], None] | None = None) -> None:
        self.count = 0
        self.threshold = 1  # the first request shares out the limit
        self.on_threshold = on_threshold
        super().__init__(on_close or _nothing)

    @property  # type: ignore[override]
    def requests(self) -> int:
        return self.count

    @requests.setter
    def requests(self, value: int) -> None:
        self.count = value
        if value >= self.threshold:
            self.threshold = self.NEVER  # until shared out again
            self.on_threshold()


def _nothing() -> None:
    pass


def _peer(sock: socket.socket) -> Any:
    try:
        return sock.getpeername()
    except OSError:
        return None


class _Ticker:
    """Calls ``ctx.tick()`` once a second on the worker's loop, and ``ctx.check_deadlines``
    in between with a sub-second keep-alive timeout (``ctx.deadline_interval``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ctx: WorkerHost, also: Callable[[], None] | None = None) -> None:
        self.loop = loop
        self.ctx = ctx
        self.also = also
        self.interval = ctx.deadline_interval
        self.next_tick = loop.time() + 1.0
        self.handle = loop.call_later(self.interval, self._fire)

    def _fire(self) -> None:
        try:
            now = self.loop.time()
            if now < self.next_tick - self.interval / 2:
                self.ctx.check_deadlines(now)
                return
            self.next_tick = now + 1.0
            self.ctx.tick()
            if self.also is not None:
                self.also()
        finally:
            self.handle = self.loop.call_later(self.interval, self._fire)

    def cancel(self) -> None:
        self.handle.cancel()
