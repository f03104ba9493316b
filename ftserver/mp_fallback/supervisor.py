"""The supervisor: starts the worker processes, keeps them healthy, and stops them.

It reads like Gunicorn's arbiter: signal handlers only append the signal number to a
queue (``signal.set_wakeup_fd`` wakes the loop); one loop in the main thread waits on the
wake-up pipe and the workers' status pipes, dispatches each signal to a ``handle_<name>``
method and checks the workers' health. Its only other thread (``--metrics``' listener)
takes no lock a forked child uses, so forking is safe. The lifecycle (ready, recycling, respawn limits, signals) is told in ``docs/supervisor.md``.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from ftserver.config import Config, WorkerPlan
from ftserver.logs import configure_logging_for, reopen_log_files
from ftserver.metrics import count_restart
from ftserver.mp_fallback.child import WorkerSpec, ignore_supervisor_signals, name_process
from ftserver.mp_fallback.layout import choose_layout, mode_note
from ftserver.mp_fallback.pidfile import PidFile
from ftserver.mp_fallback.process import State, WorkerProcess
from ftserver.mp_fallback.signals import SignalQueue
from ftserver.net import close_listeners, reserve_port, stop_listening
from ftserver.runtime import GILReport, free_threaded_build
from ftserver.service import Lifecycle, Notifier
from ftserver.startup import EXIT_FORCED, EXIT_OK, Listening, SupervisorError, bind_listener, log_banner
from ftserver.threads.accept import ProcessLoads
from ftserver.tls import server_context

logger = logging.getLogger("ftserver.error")

#: How often the loop wakes up to check the workers when nothing happens.
TICK = 0.25
#: A replacement that could not start is tried again after this long.
RETRY_DELAY = 1.0
#: After a forced stop (SIGQUIT), how long workers get before SIGKILL.
FORCE_GRACE = 5.0

class Supervisor(Listening):
    """Runs and watches the worker processes (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.config = config
        self.workers: list[WorkerProcess] = []
        self.listeners: list[socket.socket] = []
        self.port_holder: socket.socket | None = None
        self.loads: ProcessLoads | None = None  # with a shared listener: its acceptors take turns
        self.plan: WorkerPlan | None = None
        self.gil: GILReport | None = None  # from the preload import, or the first worker's
        self.interface: str | None = None
        self.app: Any = None  # the preloaded app
        self.booted = False  # every initial worker has been ready once
        self.stopping = False
        self.forced = False
        self.exit_code = EXIT_OK
        self.fatal: SupervisorError | None = None
        self.failures: collections.deque[float] = collections.deque()
        self.next_rss_sample = 0.0
        self._numbers = itertools.count(1)
        self.signals = SignalQueue()
        self.lifecycle = Lifecycle(config)  # --drain-delay, sd_notify (ftserver/service.py)
        self.reloading = False  # SIGHUP told systemd RELOADING=1: READY=1 once the new workers serve
        self._selector: selectors.BaseSelector | None = None
        self._gil_warned = False
        self._mode_note: tuple[int, str] | None = None
        self._plan_if_gil: WorkerPlan | None = None  # --mode auto: the first worker decides

    # -- public ------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; return the exit code (raise ``SupervisorError`` on failure)."""
        config = self.config
        if threading.current_thread() is not threading.main_thread():
            raise SupervisorError("the supervisor handles signals, so it runs in the main thread only; use supervisor=False (or Server.start()) elsewhere")
        configure_logging_for(config)
        name_process("ftserve master")
        self.lifecycle.notifier = Notifier.from_environment()  # (the workers neither notify nor feed the watchdog)
        with PidFile(config.pid_file):
            self._selector = selectors.DefaultSelector()
            self.signals.install(self._selector)
            try:
                server_context(config)  # TLS files checked before any fork: one line if unusable
                self._bind()
                self._load()
                self._boot()
                self._loop()
            finally:
                self._cleanup()
        if self.fatal is not None:
            raise self.fatal
        logger.info("Server stopped")
        return self.exit_code

    # -- start-up ----------------------------------------------------------------------

    def _bind(self) -> None:
        config = self.config
        if config.accept == "reuseport" and config.fd is None:
            # Each worker thread binds its own listener; we only hold the port.
            self.port_holder = reserve_port(config.host, config.port)
            self.take_address(self.port_holder, inherited=False)
            return
        listener = bind_listener(config)
        self.take_address(listener, inherited=config.fd is not None)
        if config.accept == "reuseport":
            # Inherited: each worker's thread 0 adopts it, the others bind beside it (Server._bind).
            self.port_holder = listener
        else:
            self.listeners = [listener]
            self.loads = ProcessLoads()

    def _load(self) -> None:
        """Decide the layout (``layout.py``), importing the app here with ``--preload``."""
        layout = choose_layout(self.config)
        self.plan, self._plan_if_gil = layout.plan, layout.plan_if_gil
        self.app, self.gil, self.interface = layout.app, layout.gil, layout.interface
        self._mode_note = layout.note

    def _boot(self) -> None:
        assert self.plan is not None
        logger.debug("starting %s", self.plan.describe())
        self.lifecycle.notifier.status(f"Starting {self.plan.describe()}")
        for _ in range(1 if self._plan_if_gil else self.plan.processes):
            self._spawn()  # (with _plan_if_gil, the others once the first has decided)

    def _on_booted(self) -> None:
        """Every initial worker is ready: tell the user."""
        self.booted = True
        config = self.config
        plan = self.plan
        assert plan is not None
        first = next((w for w in self.workers if w.ready_info), None)
        info = first.ready_info if first else {}
        report = self.gil or (GILReport.from_dict(info["gil"]) if info.get("gil") else None)
        interface = self.interface or info.get("interface", "?")
        pids = [w.pid for w in self.workers]
        if log_banner(config, plan, self, report, interface, worker_pids=pids, note=self._mode_note):
            self._gil_warned = True
        self.lifecycle.notifier.ready(f"Serving on {self.url}: {plan.describe()}")

    # -- workers -----------------------------------------------------------------------

    def _spawn(self, replaces: WorkerProcess | None = None) -> WorkerProcess:
        config = self.config
        plan = self.plan
        assert plan is not None and self._selector is not None
        child_config = config.replace(
            threads=plan.threads,
            port=self.port,
            uds=None,  # the supervisor binds and unlinks it: to the worker, an inherited listener
            uds_permissions=None,
            fd=config.fd if config.accept == "reuseport" else None,
            app=self.app if self.app is not None else config.app,
            factory=config.factory if self.app is None else False,
            pid_file=None,
        )
        jitter = random.randint(0, config.max_requests_jitter)
        spec = WorkerSpec(
            config=child_config,
            listeners=tuple(self.listeners),
            max_requests=None if config.max_requests is None else config.max_requests + jitter,
            supervisor_pid=os.getpid(),
            processes=plan.processes,
            loads=self.loads,
            plan_if_gil=self._plan_if_gil,
            load_slot=self.loads.free_slot({w.spec.load_slot for w in self.workers}) if self.loads else None,
        )
        worker = WorkerProcess(next(self._numbers), spec)
        worker.replaces = replaces
        if replaces is not None:
            replaces.replacement = worker
        worker.spawn(lambda: self._in_child(worker))
        self.workers.append(worker)
        self._selector.register(worker.status_fd, selectors.EVENT_READ, worker)
        logger.debug("started %r", worker)
        return worker

    def _in_child(self, me: WorkerProcess) -> None:
        """Right after fork, in the worker: drop what belongs to the supervisor."""
        self.signals.in_child()
        ignore_supervisor_signals()  # until the worker installs its own (mp_fallback/child.py)
        if self._selector is not None:
            self._selector.close()
        for other in self.workers:
            if other is not me:
                other.close_status()
                other.heartbeat.close()
        if self.port_holder is not None and self.config.fd is None:
            self.port_holder.close()  # (an inherited descriptor stays: the worker adopts it)

    def _active(self) -> list[WorkerProcess]:
        """Workers that count towards the worker total (not stopping, not a replacement)."""
        return [w for w in self.workers if w.state is not State.STOPPING and w.replaces is None]

    def _recycle(self, worker: WorkerProcess, reason: str) -> None:
        """Replace ``worker``: its replacement starts now, it stops once that one is ready."""
        if worker.recycle_reason is not None or worker.state is not State.SERVING or self.stopping:
            return
        worker.recycle_reason = reason
        count_restart(reason)
        logger.info("Recycling %r: %s; starting its replacement first", worker, reason)
        self._spawn(replaces=worker)

    def _stop_worker(self, worker: WorkerProcess) -> None:
        worker.terminate(time.monotonic() + self.config.kill_timeout)

    # -- the loop ----------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._selector is not None
        while True:
            for key, _ in self._selector.select(self.lifecycle.timeout(time.monotonic(), TICK)):
                if key.data is None:
                    self.signals.drain_wakeup()
                else:
                    self._read_status(key.data)
            while self.signals.pending:
                self._dispatch(self.signals.pending.popleft())
            self._reap()
            now = time.monotonic()
            if self.stopping:
                if not self.workers:
                    return
            else:
                self._check_health(now)
                self._check_lifecycle(now)
            self._enforce_deadlines(now)

    def _check_lifecycle(self, now: float) -> None:
        """The end of a --drain-delay; READY=1 once a reload's new workers all serve."""
        if self.lifecycle.drain_ended(now):
            self._begin_stop()
        elif self.reloading and not any(w.recycle_reason == "reload" and w.state is not State.STOPPING for w in self.workers):
            self.reloading = False
            self.lifecycle.notifier.ready(f"Serving on {self.url}: reloaded")

    def _dispatch(self, signum: int) -> None:
        name = signal.Signals(signum).name[3:].lower()
        handler: Callable[[], None] | None = getattr(self, f"handle_{name}", None)
        if handler is not None:
            handler()

    def _read_status(self, worker: WorkerProcess) -> None:
        messages = worker.read_messages()
        if messages is None:  # end of file: the process is exiting; _reap handles it
            self._unregister(worker)
            return
        for message in messages:
            event = message.get("event")
            if event == "ready":
                self._on_ready(worker, message)
            elif event == "failed":
                worker.failure = str(message.get("message"))
                worker.failure_code = int(message.get("code", 1))
                worker.failure_traceback = message.get("traceback")
            elif event == "retire":
                self._recycle(worker, str(message.get("reason", "asked to retire")))

    def _unregister(self, worker: WorkerProcess) -> None:
        if worker.status_fd >= 0 and self._selector is not None:
            try:
                self._selector.unregister(worker.status_fd)
            except KeyError:
                pass

    def _on_ready(self, worker: WorkerProcess, info: dict[str, Any]) -> None:
        if worker.state is not State.BOOTING:
            return
        now = time.monotonic()
        worker.state = State.SERVING
        worker.ready_at = now
        worker.ready_info = info
        lifetime = self.config.workers_lifetime
        if lifetime is not None:
            jitter = self.config.workers_lifetime_jitter
            jitter = lifetime / 10 if jitter is None else jitter
            worker.lifetime_deadline = now + lifetime + random.uniform(0, jitter)
        if self._plan_if_gil is not None:
            self._decided(worker, info)  # and start the other workers
        self._check_worker_gil(worker, info)
        old = worker.replaces
        if old is not None:
            worker.replaces = None
            old.replacement = None
            if old.state is not State.STOPPING:
                logger.info("%r is ready; stopping %r (%s)", worker, old, old.recycle_reason)
                self._stop_worker(old)
            return
        if self.booted:
            logger.info("%r is ready", worker)
        elif all(w.state is State.SERVING for w in self.workers):
            self._on_booted()

    def _decided(self, first: WorkerProcess, info: dict[str, Any]) -> None:
        """The first worker runs the plan that holds (``Layout``): start the others."""
        self.gil = GILReport.from_dict(info["gil"]) if info.get("gil") else None
        plan_if_gil, self._plan_if_gil = self._plan_if_gil, None
        if self.gil is not None and self.gil.after and plan_if_gil is not None:
            self.plan = plan_if_gil
            first.heartbeat.resize(plan_if_gil.threads)
            self._mode_note = mode_note(self.config, plan_if_gil, self.gil)
        for _ in range(self.plan.processes - len(self._active())):  # type: ignore[union-attr]
            self._spawn()

    def _check_worker_gil(self, worker: WorkerProcess, info: dict[str, Any]) -> None:
        """Threads mode decided the GIL was off; say so if this worker found it on."""
        gil = info.get("gil")
        plan = self.plan
        if not gil or plan is None or plan.threads == 1 or self._gil_warned or not free_threaded_build():
            return
        report = GILReport.from_dict(gil)
        if report.after and not (self.gil and self.gil.after):
            self._gil_warned = True
            logger.warning(
                "%r: %s; its %d threads will not run Python code in parallel (use --mode processes)",
                worker,
                report.describe(),
                plan.threads,
            )

    def _reap(self) -> None:
        for worker in list(self.workers):
            if worker.poll():
                self._on_exit(worker)

    def _on_exit(self, worker: WorkerProcess) -> None:
        if worker.status_fd >= 0:
            self._read_status(worker)  # a last "failed" message may still be in the pipe
        self._unregister(worker)
        self.workers.remove(worker)
        worker.release()
        if self.loads is not None:
            self.loads.release(worker.spec.load_slot)
        now = time.monotonic()
        if worker.state is State.STOPPING:
            if not worker.ready_at:
                how = logging.DEBUG  # stopped while starting: nothing to report
            else:
                how = logging.INFO if worker.exit_status == 0 or worker.forced else logging.WARNING
            logger.log(how, "%r stopped (%s)", worker, worker.describe_exit())
            if worker.replacement is not None:  # stopped (TTOU, shutdown) while being replaced
                worker.replacement.replaces = None
            return
        if self.stopping:
            return
        reason = worker.failure or worker.describe_exit()
        if worker.state is State.BOOTING:
            if not self.booted:
                if worker.failure_traceback and self.fatal is None:  # every process failed alike: log one
                    logger.error("Exception in application startup\n%s", worker.failure_traceback.rstrip("\n"))
                self._fail(SupervisorError(worker.failure or f"worker process could not start ({worker.describe_exit()})", worker.failure_code))
                return
            old = worker.replaces
            if old is not None:
                old.replacement = None
                if old.recycle_reason == "reload":
                    logger.error("Reload: a new worker could not start (%s); %r keeps serving", reason, old)
                    old.recycle_reason = None
                else:
                    logger.error("A replacement for %r could not start (%s); trying again", old, reason)
                    old.retry_reason = old.recycle_reason or "retry"
                    old.recycle_reason = None
                    old.retry_at = now + RETRY_DELAY
                self._count_failure(now, f"a new worker could not start: {reason}")
                return
            logger.error("%r could not start (%s)", worker, reason)
        else:
            logger.error("%r died unexpectedly (%s)", worker, reason)
            if worker.replacement is not None:  # its replacement is on the way already
                worker.replacement.replaces = None
                self._count_failure(now, f"{worker!r} died ({reason})")
                return
        if not self.config.respawn_failed_workers:
            self._fail(SupervisorError(f"{worker!r} died ({reason}); stopping the server (--no-respawn-failed-workers)"))
            return
        if self._count_failure(now, f"{worker!r} died ({reason})"):
            count_restart("died")
            self._spawn()

    def _count_failure(self, now: float, what: str) -> bool:
        """Record a failure; stop the server (and return False) past the crash-loop limit."""
        config = self.config
        failures = self.failures
        failures.append(now)
        while failures and failures[0] < now - config.respawn_window:
            failures.popleft()
        if len(failures) >= config.respawn_limit:
            self._fail(
                SupervisorError(
                    f"{len(failures)} worker failures within {config.respawn_window:g} s (the last: {what}): "
                    f"stopping instead of restarting them in a loop (--respawn-limit {config.respawn_limit}, "
                    f"--respawn-window {config.respawn_window:g})"
                )
            )
            return False
        return True

    def _fail(self, error: SupervisorError) -> None:
        if self.fatal is None:
            self.fatal = error
        self._begin_stop()

    def _check_health(self, now: float) -> None:
        config = self.config
        sample_rss = config.workers_max_rss is not None and now >= self.next_rss_sample
        if sample_rss:
            self.next_rss_sample = now + config.rss_sample_interval
        for worker in list(self.workers):
            if worker.state is State.BOOTING:
                if now - worker.spawned_at > config.startup_timeout and worker.failure is None:
                    worker.failure = f"not ready within --startup-timeout {config.startup_timeout:g} s"
                    logger.error("%r: %s: killing it", worker, worker.failure)
                    worker.kill()
                continue
            if worker.state is not State.SERVING:
                continue
            if config.heartbeat_timeout and worker.recycle_reason != "heartbeat":
                age = worker.heartbeat_age(now)
                if age > config.heartbeat_timeout:
                    logger.error("%r: an event loop has not run for %.1f s (blocked by the app?): replacing the worker", worker, age)
                    worker.recycle_reason = None  # a wedged worker takes precedence over a planned recycle
                    if worker.replacement is None:
                        self._recycle(worker, "heartbeat")
                    else:
                        worker.recycle_reason = "heartbeat"
                    continue
            if worker.recycle_reason is not None:
                continue
            if worker.retry_at is not None:
                if now >= worker.retry_at:
                    worker.retry_at = None
                    self._recycle(worker, worker.retry_reason)
                continue
            if worker.lifetime_deadline is not None and now >= worker.lifetime_deadline:
                self._recycle(worker, f"--workers-lifetime {config.workers_lifetime:g} s reached")
                continue
            if sample_rss:
                self._sample_rss(worker)

    def _sample_rss(self, worker: WorkerProcess) -> None:
        config = self.config
        assert config.workers_max_rss is not None
        rss = worker.rss()
        if rss is None:
            return
        limit = config.workers_max_rss * 2**20
        worker.rss_strikes = worker.rss_strikes + 1 if rss > limit else 0
        if worker.rss_strikes >= config.rss_samples:
            self._recycle(worker, f"RSS {rss / 2**20:.0f} MiB above --workers-max-rss {config.workers_max_rss:g} MiB in {worker.rss_strikes} samples")

    def _enforce_deadlines(self, now: float) -> None:
        for worker in self.workers:
            if worker.state is State.STOPPING and worker.stop_deadline and now > worker.stop_deadline:
                logger.warning("%r did not stop in time: killing it (SIGKILL)", worker)
                worker.kill()
                worker.stop_deadline = 0.0

    # -- signals -----------------------------------------------------------------------

    def handle_int(self) -> None:
        self._on_stop_signal("SIGINT")

    def handle_term(self) -> None:
        self._on_stop_signal("SIGTERM")

    def _on_stop_signal(self, name: str) -> None:
        action = self.lifecycle.stop_signal(name)  # "drain": keep serving until _check_lifecycle
        if action == "stop":
            self._begin_stop()
        elif action == "force":
            self._force_stop()

    def handle_quit(self) -> None:
        logger.warning("Received SIGQUIT: stopping now")
        self._force_stop()

    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.lifecycle.begin_stop()
        if self.fatal is None:
            logger.info("Waiting for in-flight requests to finish (up to %ss)", self.config.timeout_graceful_shutdown)
        if self.config.fd is None:  # (an inherited listener stays open for the next server)
            # New clients are refused at once, not queued to be reset once the workers are done.
            stop_listening(self.listeners, settle=bool(self.workers))
        for worker in self.workers:
            self._stop_worker(worker)

    def _force_stop(self) -> None:
        self.stopping = True
        self.lifecycle.begin_stop()
        self.forced = True
        self.exit_code = EXIT_FORCED
        deadline = time.monotonic() + min(FORCE_GRACE, self.config.kill_timeout)
        for worker in self.workers:
            worker.force(deadline)

    def handle_hup(self) -> None:
        if self.stopping or self.lifecycle.draining:
            return
        serving = [w for w in self._active() if w.state is State.SERVING]
        note = " (--preload: they run the app as imported at start)" if self.config.preload else ""
        logger.info("Received SIGHUP: reloading %d worker(s); new workers start before the old ones stop%s", len(serving), note)
        self.reloading = self.booted
        if self.booted:
            self.lifecycle.notifier.reloading(f"Reloading {len(serving)} worker(s)")
        for worker in serving:
            worker.recycle_reason = None
            if worker.replacement is None:
                self._recycle(worker, "reload")
            else:
                worker.recycle_reason = "reload"

    def handle_ttin(self) -> None:
        if self.stopping:
            return
        worker = self._spawn()
        logger.info("Received SIGTTIN: adding %r (%d workers)", worker, len(self._active()))

    def handle_ttou(self) -> None:
        if self.stopping:
            return
        active = self._active()
        if len(active) <= 1:
            logger.info("Received SIGTTOU: keeping the last worker")
            return
        victim = min(active, key=lambda w: w.number)  # the oldest, as Gunicorn does
        logger.info("Received SIGTTOU: stopping %r (%d workers)", victim, len(active) - 1)
        if victim.replacement is not None:
            self._stop_worker(victim.replacement)
        self._stop_worker(victim)

    def handle_usr1(self) -> None:
        count = reopen_log_files()
        logger.info("Received SIGUSR1: reopened %d log file(s); asking the workers to do the same", count)
        for worker in self.workers:
            worker.send_signal(signal.SIGUSR1)

    def handle_chld(self) -> None:
        self._reap()

    # -- the end -----------------------------------------------------------------------

    def _cleanup(self) -> None:
        """Make sure no worker outlives us, then release sockets and signals."""
        if self.workers:
            self._begin_stop()
            deadline = time.monotonic() + self.config.kill_timeout
            for worker in list(self.workers):
                while not worker.poll() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not worker.poll():
                    worker.kill()
                    os.waitpid(worker.pid, 0)
                worker.release()
            self.workers.clear()
        close_listeners(self.listeners, self.config.uds)
        if self.port_holder is not None:
            self.port_holder.close()
        self.signals.close()
        self.lifecycle.notifier.close()
        if self._selector is not None:
            self._selector.close()

