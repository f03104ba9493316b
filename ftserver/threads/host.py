"""What one worker thread gives its connections: ``WorkerHost``, built inside that thread.

It holds the interface adapter, the app stepper, the cached Date header, the connection set
and the version-neutral duties of every protocol driver: the log line of an application's
failure and the access log. Nothing here is shared with other threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from ftserver.accessformat import AccessFormat
from ftserver.interfaces import make_adapter
from ftserver.interfaces.concurrency import ConcurrencyLimit, InFlight
from ftserver.interfaces.proxy import ProxyHeaders
from ftserver.interfaces.static import StaticFiles
from ftserver.interfaces.stream import ClientDisconnected, ConnectionInfo
from ftserver.logs import (
    ACCESS_DATEFMT,
    ACCESS_MESSAGE,
    ACCESS_NO_REQUEST,
    access_line_writer,
)
from ftserver.metrics import ThreadMetrics, thread_metrics
from ftserver.net import parse_trusted
from ftserver.protocols.default_headers import response_defaults
from ftserver.protocols.http1 import HTTP11Connection
from ftserver.threads.stepping import Finishing, Stepper
from ftserver.tls import TLSInfo

if TYPE_CHECKING:
    from ftserver.config import Config
    from ftserver.interfaces.stream import Exchange
    from ftserver.protocols.events import Request
    from ftserver.protocols.limits import Limits

logger = logging.getLogger("ftserver.error")
access_logger = logging.getLogger("ftserver.access")


class WorkerStats:
    """Counters written only by their worker thread; the server sums them on read."""

    __slots__ = ("requests", "connections", "closed", "adopted")

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0  # opened (by a driver)
        self.closed = 0
        self.adopted = 0  # connections handed over by the acceptor and taken (counted once set up)


class WorkerHost:
    """Everything a connection needs, owned by one worker thread (``AppHost`` for the
    interface adapter). Created inside the thread, so that the objects touched on every
    request are thread-private (no shared instances, no shared dicts on the hot path)."""

    # What the drivers read per request are slots (about twice as fast as a __dict__ entry
    # on 3.13t); the rest stays in the __dict__.
    __slots__ = ("date", "now", "stats", "concurrency", "__dict__")

    def __init__(self, loop: asyncio.AbstractEventLoop, app: Any, config: Config, stats: WorkerStats) -> None:
        self.loop = loop
        self.app = app
        self.multiprocess = False  # one of several worker processes (WSGI's wsgi.multiprocess)
        self.lifespan_state: dict[str, Any] | None = None
        self.context = contextvars.copy_context()
        self.stepper = Stepper(loop, self.context)
        #: Run an application coroutine (or other awaitable) on this thread's loop, stepped
        #: without a Task of its own (``threads.stepping``), in a copy of the thread's context
        #: (the stepper's own method: no call of ours in between, per request).
        self.step: Callable[[Awaitable[Any], Finishing], None] = self.stepper.step
        self.adapter = make_adapter(config.interface, app, config, self, f" (worker {threading.current_thread().name})")
        if config.static_routes:
            self.adapter = StaticFiles(self.adapter, self, config.static_routes, config.static_path_dir_to_file, config.static_path_expires)
        if config.proxy_headers:
            self.adapter = ProxyHeaders(self.adapter, self, parse_trusted(config.forwarded_allow_ips))
        if config.http1 == "h11":
            from ftserver.protocols.http1.h11_adapter import (
                H11Connection,  # only when asked for
            )

            self.http1_class: type = H11Connection
        else:
            self.http1_class = HTTP11Connection
        self.limits: Limits = config.limits
        self.http_mode = config.http  # "auto", "1" (no HTTP/2) or "2" (HTTP/2 only)
        self.http2 = config.h2_settings  # None with --http 1
        self.h2_ping_interval = config.h2_ping_interval or 0.0
        self.h2_ping_timeout = config.h2_ping_timeout
        # server and --header fields, made in this thread (no bytes shared on the response path)
        self.server_header, self.default_headers = response_defaults(config.headers, config.server_header)
        self.date_header = config.date_header
        self.date: bytes | None = None
        self.now = loop.time()
        self.root_path = config.root_path
        self.connections: set[Any] = set()
        self.upgrade_warned = False  # an unsupported Upgrade request was logged (once per thread)
        self.stats = stats
        self.access_log = config.access_log
        index = getattr(threading.current_thread(), "index", 0)
        self.metrics: ThreadMetrics | None = thread_metrics(index, config.threads or 1) if config.metrics else None
        #: ``--limit-concurrency``: the drivers call its ``done`` as an exchange ends.
        self.concurrency: ConcurrencyLimit | None = None
        if config.limit_concurrency is not None:
            # The process's counter, made by the server (WorkerThread.in_flight); else this thread's own.
            in_flight = getattr(threading.current_thread(), "in_flight", None) or InFlight(1)
            self.adapter = self.concurrency = ConcurrencyLimit(self.adapter, self, config.limit_concurrency, in_flight, index)
        #: Something to do with each complete response (the access log, metrics, --limit-concurrency).
        self.report = self.access_log or self.metrics is not None or self.concurrency is not None
        if self.metrics is not None and not self.access_log and self.concurrency is None:
            self.report_response = self.metrics.report  # (the same call, one frame less)
        self.access_logger = access_logger
        # Set once the app is imported (its logging configuration may have changed ours).
        self.access_format = AccessFormat(config.access_log_format) if config.access_log_format else None
        self.access_writer = access_line_writer(access_logger, raw=self.access_format is not None) if config.access_log else None
        self.access_lines: list[str] = []
        self.access_second = -1
        self.access_time = ""
        self.keep_alive_timeout = config.timeout_keep_alive
        # Idle connections close between one and two intervals past their timeout (deadlines.py).
        self.deadline_interval = max(0.05, min(1.0, config.timeout_keep_alive / 2))
        self.last_now = self.now
        self.timeout_header_read = config.timeout_header_read  # a request head from its first bytes
        self.timeout_io = config.timeout_io  # a stalled request body or response (threads/deadlines.py)
        self.tick()

    def connection_info(self, transport: asyncio.BaseTransport) -> ConnectionInfo:
        """The ``ConnectionInfo`` of a new connection (once per connection, for every driver):
        its addresses, its scheme and, over TLS, its ``TLSInfo``."""
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        client = (peer[0], peer[1]) if isinstance(peer, tuple) else None
        server = (sock[0], sock[1]) if isinstance(sock, tuple) else (sock, None) if sock else None
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return ConnectionInfo(client, server, "http", self.root_path, self.lifespan_state)
        tls = TLSInfo(ssl_object, transport.get_extra_info("sslcontext"))
        return ConnectionInfo(client, server, "https", self.root_path, self.lifespan_state, tls)

    def tick(self) -> None:
        """Once a second: refresh the cached Date header and the metrics, then check the
        connections' deadlines."""
        now = self.loop.time()
        if self.date_header:
            self.date = formatdate(usegmt=True).encode("ascii")
        if self.metrics is not None:
            self.metrics.tick(now, self.stats.connections, self.stats.closed)
        self.check_deadlines(now)

    def check_deadlines(self, now: float) -> None:
        """Advance the cached clock ``now`` (read by the drivers instead of the time) and
        check every connection's deadlines: each tick, and every ``deadline_interval``
        with a sub-second keep-alive timeout. ``last_now`` is the clock it replaces: a
        connection idle since that value went idle after the last check (threads/deadlines.py)."""
        self.last_now = self.now
        self.now = now
        timeout = self.keep_alive_timeout
        for protocol in list(self.connections):
            protocol.check_timeouts(now, timeout)

    # -- the version-neutral duties of every driver ---------------------------------------

    def report_response(self, exchange: Exchange, client: tuple[str, int] | None, started_at: float) -> None:
        """A complete response: its access-log line and its metrics; its request is no longer
        in progress (a WebSocket's ``101``: the WebSocket is, until it is over)."""
        if self.concurrency is not None and exchange.status != 101:
            self.concurrency.done(exchange)
        if self.access_log:
            self.log_access(exchange, client, started_at)
        if self.metrics is not None:
            self.metrics.report(exchange, client, started_at)

    def report_error(
        self, client: tuple[str, int] | None, request: Request | None, status: int, nbytes: int, started_at: float
    ) -> None:
        """A response the server made (400, 408, 413...; ``request`` ``None`` when the bytes made none)."""
        if self.access_log:
            self.log_response(client, request, status, nbytes, started_at)
        if self.metrics is not None:
            if request is None:
                self.metrics.server_response(status)
            else:
                self.metrics.observe(request, status, nbytes, time.perf_counter() - started_at)

    def log_access(self, exchange: Exchange, client: tuple[str, int] | None, started_at: float) -> None:
        """Write the access-log line of a complete response."""
        self.log_response(client, exchange.request, exchange.status, exchange.response_bytes, started_at, exchange.headers)

    def log_response(
        self,
        client: tuple[str, int] | None,
        request: Request | None,
        status: int,
        nbytes: int,
        started_at: float,
        headers: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """Write an access-log line: ``request`` is ``None`` for a response the server gave
        to bytes that never made a request (a malformed or stalled head: ``"-"``)."""
        if request is not None and request.client is not None:
            client = request.client  # forwarded by a trusted proxy
        if self.access_format is not None:
            duration = time.perf_counter() - started_at if request is not None else 0.0
            line = self.access_format.render(client, request, status, headers, nbytes, duration)
            if self.access_writer is not None:
                self.queue_access_line(line)
            else:
                self.access_logger.info("%s", line)
            return
        peer = f"{client[0]}:{client[1]}" if client else "-"
        if request is None:
            fmt, args = ACCESS_NO_REQUEST, (peer, status, nbytes, 0.0)
        else:
            duration = (time.perf_counter() - started_at) * 1000
            target = request.target.decode("ascii", "replace")
            fmt, args = ACCESS_MESSAGE, (peer, request.method, target, request.http_version, status, nbytes, duration)
        if self.access_writer is not None:
            self.write_access_line(fmt % args)
        else:
            self.access_logger.info(fmt, *args)

    def write_access_line(self, message: str) -> None:
        """Queue an access-log line, formatted as ``ACCESS_FORMAT`` would (the time is
        cached per second); the lines of one loop iteration are written in one batch."""
        now = time.time()
        second = int(now)
        if second != self.access_second:
            self.access_second = second
            self.access_time = time.strftime(ACCESS_DATEFMT, time.localtime(now))
        self.queue_access_line(f"{self.access_time} {message}")

    def queue_access_line(self, line: str) -> None:
        """Queue a whole access-log line; the lines of one loop iteration are written in one batch."""
        lines = self.access_lines
        lines.append(line)
        if len(lines) == 1:
            self.loop.call_soon(self._write_access_lines)

    def _write_access_lines(self) -> None:
        lines = self.access_lines
        if lines:
            self.access_lines = []
            self.access_writer.write_lines(lines)  # type: ignore[union-attr]


def report_app_exit(exchange: Exchange, exc: BaseException | None) -> None:
    """Log how an application ended an exchange, if it is worth a line: an error of its
    own, or a return without a complete response (a client that went is not one)."""
    if exc is not None:
        if exchange.disconnected or isinstance(exc, ClientDisconnected):
            logger.debug("app stopped after the client disconnected: %r", exc)
        elif isinstance(exc, asyncio.CancelledError):
            logger.debug("app cancelled: %r", exc)
        else:
            logger.error("Exception in application", exc_info=exc)
    elif not exchange.complete and not exchange.disconnected:
        if not exchange.started:
            logger.error("application returned without starting a response")
        else:
            logger.error("application returned without completing the response")
