"""``Server``: one ftserver instance in this process (threads mode): it loads the app,
binds, runs the worker threads, replaces a crashed one, and stops them gracefully.

Signal handlers only enqueue; one loop in ``_serve_forever`` handles every event (stop
requests, crashed workers), in the manner of Gunicorn's arbiter.
"""

from __future__ import annotations

import logging
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ftserver.config import Config, ConfigError, WorkerPlan
from ftserver.interfaces.concurrency import InFlight
from ftserver.logs import configure_logging_for, reopen_log_files
from ftserver.net import BindError, bind_tcp, bind_tcp_group, close_listeners
from ftserver.runtime import GILReport
from ftserver.service import Lifecycle, Notifier
from ftserver.startup import (
    EXIT_FORCED,
    EXIT_OK,
    EXIT_STARTUP_FAILED,
    Listening,
    StartupError,
    bind_listener,
    install_signal_handlers,
    load_app,
    log_banner,
)
from ftserver.threads.accept import AcceptQueue
from ftserver.threads.worker import WorkerThread
from ftserver.tls import ServerContext, server_context

__all__ = ["Server", "StartupError"]

logger = logging.getLogger("ftserver.error")

#: The signals a server run from the main thread handles (a worker process has its own).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Server(Listening):
    """Runs one ftserver instance in this process: threads mode, ``threads`` worker threads.

    ``ftserve`` runs it inside each worker process of the supervisor
    (``ftserver.mp_fallback``); ``ftserve --no-supervisor``, ``ftserver.testing.serve`` and
    the pytest fixture run it directly.

    ``run()`` blocks and handles SIGINT/SIGTERM (when called from the main thread);
    ``start()`` runs it in a background thread and returns once it is serving;
    ``stop()`` drains it.
    """

    #: Level of the start/stop messages (a worker process of the supervisor lowers it).
    lifecycle_log_level = logging.INFO

    def __init__(self, config: Config) -> None:
        if config.reload:
            raise ConfigError("reload: a Server runs in this process; use ftserver.run() or ftserve --reload")
        super().__init__(config)
        self.config = config
        self.app: Callable[..., Any] | None = None
        self.gil: GILReport | None = None
        self.interface = config.interface  # resolved from "auto" once the app is loaded
        self.workers: list[WorkerThread] = []
        self.listeners: list[socket.socket] = []
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.startup_error: BaseException | None = None
        self.exit_code = EXIT_OK
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._acceptor: AcceptQueue | None = None
        self.in_flight: InFlight | None = None  # --limit-concurrency (made in _startup)
        self.ssl_context: ServerContext | None = None  # built in _startup: in each worker process, after the fork
        self._thread: threading.Thread | None = None
        self.lifecycle = Lifecycle(config)  # --drain-delay; sd_notify when run() from the main thread

    # -- public API ------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; return the process exit code."""
        config = self.config
        configure_logging_for(config)
        if threading.current_thread() is threading.main_thread():
            self.lifecycle.notifier = Notifier.from_environment()  # (a worker process finds none: the supervisor took it)
        restore = self._install_signal_handlers()
        try:
            try:
                self._startup()
            except BaseException as exc:
                self.startup_error = exc
                self.exit_code = EXIT_STARTUP_FAILED
                self.started.set()
                self._shutdown(force=True)
                raise
            self.started.set()
            self.lifecycle.notifier.ready(f"Serving on {self.url}: {self.config.threads} thread(s)")
            self._serve_forever()
            return self.exit_code
        finally:
            self.stopped.set()
            self.lifecycle.notifier.close()
            restore()

    def start(self, timeout: float = 30.0) -> None:
        """Run in a background thread; return once serving (raise if start-up failed)."""
        self._thread = threading.Thread(target=self._run_quietly, name="ftserver-main", daemon=True)
        self._thread.start()
        if not self.started.wait(timeout):
            raise StartupError(f"server did not start within {timeout} s")
        if self.startup_error is not None:
            raise StartupError(str(self.startup_error)) from self.startup_error

    def stop(self, force: bool = False, timeout: float | None = None) -> None:
        """Stop gracefully (in-flight requests finish) and wait until stopped."""
        self._events.put(("stop", force))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def stats(self) -> dict[str, int]:
        """Request and connection counters, summed over the workers."""
        return {
            "requests": sum(w.stats.requests for w in self.workers),
            "connections": sum(w.stats.connections for w in self.workers),
            "open_connections": sum(w.stats.connections - w.stats.closed for w in self.workers),
        }

    # -- start-up --------------------------------------------------------------------

    def _run_quietly(self) -> None:
        try:
            self.run()
        except BaseException:  # noqa: BLE001 - kept in startup_error for start()
            pass

    def _log_startup_exception(self, exc: BaseException) -> None:
        """Log the exception the app's start-up raised (once per process)."""
        logger.error("Exception in application startup", exc_info=exc)

    def _startup(self) -> None:
        config = self.config
        self.ssl_context = server_context(config, http2=config.http != "1")
        self.app, self.gil, self.interface = load_app(config)
        self._bind()  # (a worker process may change its thread count there, see child.py)
        # --limit-concurrency counts the requests of every worker thread (of this process).
        self.in_flight = InFlight(self.config.threads) if config.limit_concurrency is not None else None
        for index in range(self.config.threads):
            self.workers.append(self._new_worker(index))
        for worker in self.workers:
            worker.start()
        for worker in self.workers:
            worker.ready.wait()
            if worker.crashed is not None:
                raise StartupError(f"worker {worker.index} failed to start: {worker.crashed}")
            if worker.startup_error is not None:
                # Every worker thread runs the app's start-up and fails alike: its
                # traceback is logged once, from the first worker.
                error = worker.startup_error
                if error.__cause__ is not None:
                    self._log_startup_exception(error.__cause__)
                raise StartupError(f"Application startup failed ({error}). Exiting.")
        if self._acceptor is not None:
            self._acceptor.start()
        self._banner()

    def _bind(self) -> None:
        config = self.config
        if config.accept == "reuseport" and config.fd is None:
            self.listeners = bind_tcp_group(config.host, config.port, config.backlog, config.threads)
        else:
            self.listeners = [bind_listener(config)]
        self.take_address(self.listeners[0], inherited=config.fd is not None)
        if config.accept == "queue":
            self._acceptor = AcceptQueue(self.listeners[0], self.workers, owns_listener=config.fd is None)
        elif config.fd is not None:
            self._bind_beside(self.listeners[0])

    def _bind_beside(self, inherited: socket.socket) -> None:
        """``--accept reuseport`` on an inherited socket (the reloader's, or systemd's): it
        serves thread 0, the other threads bind beside it."""
        if inherited.family == socket.AF_UNIX or not inherited.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT):
            raise BindError(22, f"--accept reuseport: the socket on fd {self.config.fd} is not a TCP socket with SO_REUSEPORT set; use --accept queue")
        for _ in range(self.config.threads - 1):
            self.listeners.append(bind_tcp(self.host, self.port, self.config.backlog, reuse_port=True))

    def _new_worker(self, index: int) -> WorkerThread:
        listener = None
        if self._acceptor is None:
            if index < len(self.listeners) and self.listeners[index].fileno() >= 0:
                listener = self.listeners[index]
            else:  # a replacement for a crashed worker: its socket went with its loop
                listener = bind_tcp(self.config.host, self.port, self.config.backlog, reuse_port=True)
                self.listeners[index] = listener
        # An inherited socket (--fd: thread 0's, see _bind_beside) outlives this server.
        owns = listener is not None and (self.config.fd is None or listener is not self.listeners[0])
        worker = WorkerThread(index, self.app, self.config.replace(interface=self.interface), listener, self.ssl_context, owns_listener=owns)
        worker.in_flight = self.in_flight
        return worker

    def _banner(self) -> None:
        plan = WorkerPlan(mode="threads", processes=1, threads=self.config.threads)
        log_banner(self.config, plan, self, self.gil, self.interface)

    # -- the main loop ---------------------------------------------------------------

    def _serve_forever(self) -> None:
        while True:
            try:
                kind, arg = self._events.get(timeout=self.lifecycle.timeout(time.monotonic(), 0.5))
            except queue.Empty:
                self._check_workers()
                if self.lifecycle.drain_ended(time.monotonic()):
                    self._events.put(("stop", False))
                continue
            if kind == "stop":
                self._shutdown(force=bool(arg))
                return
            if kind == "signal":
                self._handle_signal(arg)

    def _handle_signal(self, signum: int) -> None:
        if signum == signal.SIGUSR1:
            logger.info("Received SIGUSR1: reopened %d log file(s)", reopen_log_files())
            return
        action = self.lifecycle.stop_signal(signal.Signals(signum).name)  # "drain": until drain_ended
        if action == "stop":
            self._events.put(("stop", False))
        elif action == "force":
            self.exit_code = EXIT_FORCED
            if self._acceptor is not None and self._acceptor.is_alive():  # (its wake-up pipe closes with it)
                self._acceptor.stop(force=True)
            for worker in self.workers:
                worker.stop(force=True)

    def _check_workers(self) -> None:
        for index, worker in enumerate(self.workers):
            if worker.is_alive() or worker.startup_error is not None:
                continue
            logger.error("worker thread %d died (%r); starting a replacement", index, worker.crashed)
            replacement = self._new_worker(index)
            self.workers[index] = replacement
            if self._acceptor is not None:
                self._acceptor.reset(index)
            replacement.start()

    def _shutdown(self, force: bool) -> None:
        self.lifecycle.begin_stop()
        acceptor = self._acceptor
        if acceptor is not None and acceptor.is_alive():
            acceptor.stop(force)  # (it takes what is queued first, see AcceptQueue)
            # The workers stop only once it has returned: a connection it hands over to a
            # stopped worker would be closed unanswered. Its work is bounded (MAX_QUEUED);
            # a second signal forces it (_handle_signal).
            deadline = time.monotonic() + self.config.timeout_graceful_shutdown
            while acceptor.is_alive() and time.monotonic() < deadline:
                acceptor.join(0.2)
                self._drain_signals()
        if self._acceptor is not None:
            # Closed now, not after the drain: new clients are refused at once (or go to
            # another instance) instead of waiting in the backlog to be reset.
            for listener in self.listeners:
                listener.close()
        if not force:
            logger.log(self.lifecycle_log_level, "Waiting for in-flight requests to finish (up to %ss)", self.config.timeout_graceful_shutdown)
        for worker in self.workers:
            worker.stop(force=force)
        for worker in self.workers:
            # Graceful-stop timeout plus time for lifespan shutdown; a second signal forces.
            deadline = time.monotonic() + self.config.timeout_graceful_shutdown + 10
            while worker.is_alive() and time.monotonic() < deadline:
                worker.join(0.2)
                self._drain_signals()
        close_listeners(self.listeners, self.config.uds)
        logger.log(self.lifecycle_log_level, "Server stopped")

    def _drain_signals(self) -> None:
        """While waiting on workers, still act on a second SIGINT (force) and feed the watchdog."""
        self.lifecycle.notifier.tick(time.monotonic())
        try:
            while True:
                kind, arg = self._events.get_nowait()
                if kind == "signal":
                    self._handle_signal(arg)
        except queue.Empty:
            pass

    def _install_signal_handlers(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        return install_signal_handlers(SIGNALS, self._on_signal, keep_ignored=SIGNALS)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._events.put(("signal", signum))


if sys.platform == "win32":  # pragma: no cover
    raise ImportError("ftserver runs on POSIX systems only")
