"""What runs inside a forked worker process: the threads-mode ``Server`` on inherited
sockets, reporting to the supervisor through a pipe and stamping a heartbeat
(docs/supervisor.md, "Worker processes").
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftserver.config import Config, WorkerPlan
from ftserver.logs import reopen_log_files
from ftserver.mp_fallback.heartbeat import Heartbeat
from ftserver.server import Server
from ftserver.startup import EXIT_FORCED, as_startup_failure, exit_code_for, install_signal_handlers
from ftserver.threads.accept import AcceptQueue, ProcessLoads
from ftserver.threads.worker import RequestLimitStats, WorkerThread

logger = logging.getLogger("ftserver.error")

#: What a worker ignores: a CTRL+C or a hang-up at the terminal reaches the whole process
#: group, and the supervisor decides (it tells the workers with SIGTERM).
SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH)


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process runs; built by the supervisor, read by the forked child."""

    #: The child's configuration: ``threads`` per process; ``app`` is the preloaded
    #: callable with ``--preload``, else the import string (imported in the child).
    config: Config
    #: Listening sockets bound by the supervisor (shared listener or Unix socket); empty
    #: with ``--accept reuseport``, where each thread binds its own (the supervisor holds
    #: the port).
    listeners: tuple[socket.socket, ...]
    #: Requests after which the worker asks to be replaced (``--max-requests`` + jitter).
    max_requests: int | None
    supervisor_pid: int
    #: How many worker processes serve the app (WSGI's ``wsgi.multiprocess`` when > 1).
    processes: int = 1
    #: The loads of the processes sharing ``listeners``, and this process's slot there.
    loads: ProcessLoads | None = None
    load_slot: int | None = None
    #: ``--mode auto``, the first worker: run this plan's one thread instead if importing
    #: the app turned the GIL on (``Layout.plan_if_gil``; the supervisor starts the rest).
    plan_if_gil: WorkerPlan | None = None


class StatusChannel:
    """The child's end of its pipe to the supervisor: one JSON object per line.

    Messages are far below PIPE_BUF, so each write is atomic.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, event: str, **fields: Any) -> None:
        data = (json.dumps({"event": event, **fields}) + "\n").encode()
        try:
            os.write(self.fd, data)
        except OSError:  # the supervisor is gone; we notice through the parent pid
            pass


class WorkerProcessServer(Server):
    """``Server`` as run inside a worker process (see the module docstring)."""

    lifecycle_log_level = logging.DEBUG  # the supervisor tells the story

    def __init__(self, spec: WorkerSpec, status: StatusChannel, heartbeat: Heartbeat) -> None:
        super().__init__(spec.config)
        self.spec = spec
        self.status = status
        self.heartbeat = heartbeat
        self._beating: set[int] = set()  # ids of the WorkerThreads whose loops beat
        self._retire_sent = False
        self._retire_lock = threading.Lock()  # the acceptor thread or the main thread retires
        self._limit_lock = threading.Lock()  # worker threads crossing their thresholds (RequestLimitStats)
        self._ready_sent = False
        self._retire_pending: str | None = None  # reached before "ready": sent right after it
        self._stopping = False
        self.processes = spec.processes
        #: The app's start-up exception, for the supervisor to log once for all processes.
        self.startup_traceback: str | None = None

    # -- start-up: inherited sockets, and "ready" instead of the banner ------------------

    def _log_startup_exception(self, exc: BaseException) -> None:
        self.startup_traceback = "".join(traceback.format_exception(exc))[-32768:]

    def _bind(self) -> None:
        plan = self.spec.plan_if_gil
        if plan is not None and self.gil is not None and self.gil.after:  # (the app is loaded)
            self.config = self.config.replace(threads=plan.threads)
            self.processes = plan.processes
        if not self.spec.listeners:
            super()._bind()  # --accept reuseport: this process's own listeners
            return
        self.listeners = list(self.spec.listeners)
        loads = self.spec.loads
        share = loads.share(self.spec.load_slot) if loads else None
        self._acceptor = AcceptQueue(self.listeners[0], self.workers, share, self.spec.max_requests, self._retire)
        self.take_address(self.listeners[0], inherited=False)

    def _new_worker(self, index: int) -> WorkerThread:
        worker = super()._new_worker(index)
        worker.multiprocess = self.processes > 1
        if self.spec.max_requests is not None:
            worker.count_requests(self._count_requests)
        return worker

    def _banner(self) -> None:
        self._start_heartbeats()
        gil = self.gil
        with self._retire_lock:  # "ready" first: the supervisor ignores a booting worker's "retire"
            self.status.send(
                "ready",
                interface=self.interface,
                threads=len(self.workers),
                gil=gil.as_dict() if gil else None,
            )
            self._ready_sent = True
            if self._retire_pending is not None:
                self.status.send("retire", reason=self._retire_pending)
        logger.debug("worker ready: %d thread(s)", len(self.workers))

    def _start_heartbeats(self) -> None:
        for worker in self.workers:
            if id(worker) not in self._beating and worker.loop is not None and worker.is_alive():
                self.heartbeat.start(worker.loop, worker.index)
                self._beating.add(id(worker))

    # -- the main loop's periodic check --------------------------------------------------

    def _check_workers(self) -> None:
        super()._check_workers()  # replaces a dead thread in place
        if self.started.is_set():
            self._start_heartbeats()  # ...and the replacement beats too
        if os.getppid() != self.spec.supervisor_pid and not self._stopping:
            logger.warning("the supervisor (pid %d) is gone: stopping", self.spec.supervisor_pid)
            self._stopping = True
            self._events.put(("stop", False))
        limit = self.spec.max_requests
        if limit is not None and not self._retire_sent:
            served = sum(w.stats.requests for w in self.workers)
            if served >= limit:  # (a fallback: RequestLimitStats tells as soon as it is reached)
                self._retire(served)

    def _count_requests(self) -> None:
        """A worker thread's request counter reached its threshold (``RequestLimitStats``): sum
        the counters; at ``--max-requests`` retire, else share out what is left as new
        thresholds. A share is the requests left divided by the threads, rounded up, so the
        counters cannot add up to the limit without one of them crossing its threshold:
        the limit is seen at the request that reaches it (give or take the requests the
        other threads finish meanwhile), keep-alive traffic included."""
        limit = self.spec.max_requests
        assert limit is not None
        with self._limit_lock:
            workers = list(self.workers)
            counts = [worker.stats.requests for worker in workers]
            left = limit - sum(counts)
            if left > 0:
                share = -(-left // len(workers))
                for worker, count in zip(workers, counts):
                    stats = worker.stats
                    if isinstance(stats, RequestLimitStats):
                        stats.threshold = count + share
        if left <= 0 and not self._retire_sent:
            self._retire(limit - left)

    def _retire(self, served: int) -> None:
        """``--max-requests`` reached: stop accepting (the connections waiting go to the other
        processes and to the replacement), close the open connections after their current
        response (``connection: close``), and ask the supervisor for a replacement."""
        reason = f"--max-requests reached ({served} requests served)"
        with self._retire_lock:
            if self._retire_sent:
                return
            self._retire_sent = True
            if self._ready_sent:
                self.status.send("retire", reason=reason)
            else:
                self._retire_pending = reason
        if self._acceptor is not None:
            self._acceptor.retire()
        for worker in self.workers:
            loop = worker.loop
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(close_connections, worker)
                except RuntimeError:  # its loop closed meanwhile
                    pass

    # -- signals -------------------------------------------------------------------------

    def _install_signal_handlers(self) -> Callable[[], None]:
        ignore_supervisor_signals()
        install_signal_handlers((signal.SIGTERM, signal.SIGQUIT, signal.SIGUSR1), self._on_signal)
        return lambda: None  # the process ends with the server

    def _handle_signal(self, signum: int) -> None:
        if signum == signal.SIGUSR1:
            reopen_log_files()
        elif signum == signal.SIGTERM:
            # Idempotent: under systemd (KillMode=control-group) or `kill -TERM -PGID` the
            # worker gets SIGTERM from there *and* from the supervisor; forcing is SIGQUIT's job.
            if not self._stopping:
                self._stopping = True
                self._events.put(("stop", False))
        elif signum == signal.SIGQUIT:
            self.exit_code = EXIT_FORCED
            if self._acceptor is not None and self._acceptor.is_alive():  # (its wake-up pipe closes with it)
                self._acceptor.stop(force=True)
            for worker in self.workers:
                worker.stop(force=True)
            if not self._stopping:
                self._stopping = True
                self._events.put(("stop", True))


def run_worker(spec: WorkerSpec, status_fd: int, heartbeat: Heartbeat) -> int:
    """The body of a forked worker process; returns its exit code."""
    name_process("ftserve worker")
    status = StatusChannel(status_fd)
    server = WorkerProcessServer(spec, status, heartbeat)
    try:
        return server.run()
    except Exception as exc:
        # The app's own error (a SyntaxError, an exception at import) shows its traceback, not ours.
        failure = as_startup_failure(exc, spec.config.app, server.startup_error)
        if failure is None:
            raise  # ours: run_worker's caller prints the traceback
        code = exit_code_for(failure)
        status.send("failed", message=str(failure).rstrip("\n"), code=code, traceback=server.startup_traceback)
        return code
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass


def close_connections(worker: WorkerThread) -> None:
    """On ``worker``'s loop: close each connection after its response in progress (or after
    a short linger if idle), as a graceful stop does, while the thread keeps running."""
    ctx = worker.ctx
    if ctx is not None:
        for protocol in list(ctx.connections):
            protocol.shutdown()


def ignore_supervisor_signals() -> None:
    """Ignore ``SUPERVISOR_SIGNALS`` in this worker process."""
    for signum in SUPERVISOR_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def name_process(name: str) -> None:
    """Name this process for ``ps -o comm``/``top``/``pgrep`` (Linux ``comm``, 15 bytes).

    The command line (``ps aux``, ``ps -f``) stays the supervisor's: rewriting it needs
    ``setproctitle`` (no free-threaded wheel) or ``prctl(PR_SET_MM)`` (privileged).
    """
    try:
        with open("/proc/self/comm", "w") as f:
            f.write(name[:15])
    except OSError:  # not Linux
        pass
