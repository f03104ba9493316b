"""The supervisor's signals, as Gunicorn's arbiter takes them: a handler only appends the
signal number to a queue, and ``signal.set_wakeup_fd`` writes to a pipe that wakes the
loop's ``select``; the loop then dispatches each signal to a ``handle_<name>`` method.
"""

from __future__ import annotations

import collections
import os
import selectors
import signal
from collections.abc import Callable
from typing import Any

from ftserver.startup import install_signal_handlers

HANDLED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGCHLD,
)


class SignalQueue:
    """The signals received and not yet handled, and the wake-up pipe that says so."""

    def __init__(self) -> None:
        self.pending: collections.deque[int] = collections.deque()
        self.read_fd = self.write_fd = -1
        self._restore: Callable[[], None] = lambda: None

    def install(self, selector: selectors.BaseSelector) -> None:
        """Handle ``HANDLED_SIGNALS``; the pipe's end is registered in ``selector`` with
        ``None`` as its data."""
        self.read_fd, self.write_fd = os.pipe()
        for fd in (self.read_fd, self.write_fd):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        selector.register(self.read_fd, selectors.EVENT_READ, None)

        def handler(signum: int, frame: Any) -> None:
            self.pending.append(signum)

        # (SIGINT or SIGTERM ignored at start, as in a background job, stays ignored.)
        self._restore = install_signal_handlers(HANDLED_SIGNALS, handler, keep_ignored=(signal.SIGINT, signal.SIGTERM))

    def drain_wakeup(self) -> None:
        """Empty the pipe (the signals themselves are in ``pending``)."""
        try:
            while os.read(self.read_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def in_child(self) -> None:
        """Right after fork, in a worker: the default handlers, and none of the pipe."""
        signal.set_wakeup_fd(-1)
        self._close_pipe()
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)

    def close(self) -> None:
        """Put the previous handlers back and close the pipe."""
        signal.set_wakeup_fd(-1)
        self._restore()
        self._close_pipe()

    def _close_pipe(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                os.close(fd)
        self.read_fd = self.write_fd = -1
