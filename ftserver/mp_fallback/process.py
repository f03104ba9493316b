"""The supervisor's handle on one forked worker process.

Workers are created with ``os.fork()`` (never spawn): the child inherits the listening
sockets and, with ``--preload``, the imported app, so nothing is pickled. The supervisor
is single-threaded when it forks (its loop runs in the main thread only), which is what
makes fork safe here. Without ``--preload`` the child imports the app itself, so every
new worker (a respawn, a SIGHUP reload) runs the code as it is on disk now.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from ftserver.mp_fallback.child import WorkerSpec, run_worker
from ftserver.mp_fallback.heartbeat import Heartbeat

logger = logging.getLogger("ftserver.error")


class State(enum.Enum):
    BOOTING = "booting"  # forked, not ready yet
    SERVING = "serving"  # ready: listening, lifespan startup done
    STOPPING = "stopping"  # asked to stop (SIGTERM, or SIGQUIT when forced)


class WorkerProcess:
    """One forked worker process, seen from the supervisor.

    The supervisor drives it through this small interface: ``spawn``, ``read_messages``,
    ``terminate`` / ``kill``, ``heartbeat_age``, ``rss``, ``poll``.
    """

    def __init__(self, number: int, spec: WorkerSpec) -> None:
        self.number = number  # 1, 2, 3... in spawn order: how the logs name a worker
        self.spec = spec
        self.pid = 0
        self.state = State.BOOTING
        self.heartbeat = Heartbeat(spec.config.threads or 1)
        self.status_fd = -1
        self.spawned_at = 0.0
        self.ready_at = 0.0
        self.stop_deadline = 0.0  # SIGKILL after this (STOPPING)
        self.forced = False
        self.ready_info: dict[str, Any] = {}
        self.failure: str | None = None  # what the child said when it could not start
        self.failure_code = 1
        self.failure_traceback: str | None = None  # the app's start-up exception, formatted
        self.exit_status: int | None = None  # os.waitstatus_to_exitcode() once reaped
        # Recycling: the worker this one replaces, or the one replacing it.
        self.replaces: WorkerProcess | None = None
        self.replacement: WorkerProcess | None = None
        self.recycle_reason: str | None = None
        self.retry_at: float | None = None  # when to try again a replacement that failed
        self.retry_reason = ""
        self.lifetime_deadline: float | None = None
        self.rss_strikes = 0
        self._buffer = b""

    def __repr__(self) -> str:
        return f"worker {self.number} (pid {self.pid})"

    # -- life cycle ------------------------------------------------------------------

    def spawn(self, in_child: Callable[[], None]) -> None:
        """Fork; the child calls ``in_child`` (close the supervisor's descriptors) and runs."""
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                os.close(read_fd)
                in_child()
                code = run_worker(self.spec, write_fd, self.heartbeat)
            except BaseException:  # noqa: BLE001 - a bug: show it, then leave
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.pid = pid
        self.status_fd = read_fd
        self.spawned_at = time.monotonic()

    def read_messages(self) -> list[dict[str, Any]] | None:
        """Messages that arrived on the status pipe; ``None`` at end of file."""
        try:
            data = os.read(self.status_fd, 65536)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if not data:
            return None
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        messages = []
        for line in lines:
            try:
                messages.append(json.loads(line))
            except ValueError:
                logger.warning("%r sent an unreadable status line: %r", self, line[:200])
        return messages

    def close_status(self) -> None:
        if self.status_fd >= 0:
            os.close(self.status_fd)
            self.status_fd = -1

    def terminate(self, deadline: float) -> None:
        """Graceful stop (SIGTERM); SIGKILL once ``deadline`` (monotonic) has passed."""
        if self.state is not State.STOPPING:
            self.state = State.STOPPING
            self.stop_deadline = deadline
            self.send_signal(signal.SIGTERM)

    def force(self, deadline: float) -> None:
        """Stop now (SIGQUIT: in-flight requests are cut off); SIGKILL after ``deadline``."""
        self.state = State.STOPPING
        self.forced = True
        self.stop_deadline = min(self.stop_deadline or deadline, deadline)
        self.send_signal(signal.SIGQUIT)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def poll(self) -> bool:
        """Reap the process if it has exited; True once it has."""
        if self.exit_status is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by someone else: we cannot know how it ended
            self.exit_status = 1
            self.failure = self.failure or "exit status lost"
            return True
        if pid == 0:
            return False
        self.exit_status = os.waitstatus_to_exitcode(status)
        return True

    def describe_exit(self) -> str:
        code = self.exit_status
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def release(self) -> None:
        """Free the supervisor's resources for this worker (after it was reaped)."""
        self.close_status()
        self.heartbeat.close()

    # -- health ----------------------------------------------------------------------

    def heartbeat_age(self, now: float) -> float:
        """Seconds since the least recent beat of any of its threads' loops."""
        oldest = self.heartbeat.oldest()
        return now - oldest if oldest else now - self.ready_at

    def rss(self) -> int | None:
        """Resident set size in bytes (``None`` if the process is gone); needs psutil."""
        import psutil  # imported by the supervisor at start when --workers-max-rss is set

        try:
            return int(psutil.Process(self.pid).memory_info().rss)
        except psutil.Error:
            return None

    def descriptors(self) -> list[int]:
        """The supervisor-side descriptors a later child must close."""
        return [self.status_fd] if self.status_fd >= 0 else []
