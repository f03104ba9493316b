"""The shared accept queue: one acceptor thread hands connections to worker threads."""

from __future__ import annotations

import logging
import os
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftserver.threads.worker import WorkerThread

logger = logging.getLogger("ftserver.error")

#: Seconds without a tick (once a second) after which a worker loop counts as blocked.
STALE_LOOP = 2.5
#: How long the acceptor leaves the listener alone when no worker can take a connection.
PAUSE = 0.25


class AcceptQueue(threading.Thread):
    """Accepts on the shared listener and gives each connection to the least-loaded worker.

    A worker's load is the connections sent to it (counted here, by this thread only)
    minus those it has closed (counted by the worker, by its thread only): no shared
    writes. The chosen worker's selector is woken through ``call_soon_threadsafe``.

    A worker whose loop has not ticked for ``STALE_LOOP`` seconds (the app blocks it) gets
    no new connection: they would wait behind the blocked code. When no worker can take
    one, the acceptor stops accepting for ``PAUSE`` seconds and leaves connections in the
    kernel's backlog, where another worker process sharing the listener (or this one's
    recovered loop, or its replacement) accepts them.
    """

    def __init__(self, listener: socket.socket, workers: Sequence[WorkerThread]) -> None:
        super().__init__(name="ftserver-acceptor", daemon=True)
        self.listener = listener
        self.workers = workers  # replaced in place by the server when a worker is respawned
        self.sent: dict[int, int] = {}
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def reset(self, index: int) -> None:
        """Forget the load of worker ``index`` (it was replaced by a fresh one)."""
        self.sent[index] = 0

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.listener, selectors.EVENT_READ)
        sel.register(self._wake_r, selectors.EVENT_READ)
        listening = True
        try:
            while not self._stopping:
                for key, _ in sel.select(None if listening else PAUSE):
                    if key.fileobj is self.listener and not self._accept_burst():
                        sel.unregister(self.listener)
                        listening = False
                        break
                else:
                    if not listening:  # paused long enough: look again
                        sel.register(self.listener, selectors.EVENT_READ)
                        listening = True
        finally:
            sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept_burst(self) -> bool:
        """Accept what is waiting; False when no worker can take a connection now."""
        listener = self.listener
        now = time.monotonic()  # the clock of the workers' loop.time()
        for _ in range(64):
            worker = self._pick(now)
            if worker is None:
                return False
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as exc:  # EMFILE and friends: log and retry on the next wake-up
                logger.error("accept() failed: %s", exc)
                return True
            sent = self.sent
            index = worker.index
            sent[index] = sent[index] + 1 if index in sent else 1
            # Hand over the bare descriptor: the worker wraps it in a socket object of its
            # own, so the object used on every recv/send is owned by the thread using it
            # (a socket created here would be a shared instance on 3.13t's hot path).
            worker.adopt(sock.detach(), listener.family)
        return True

    def _pick(self, now: float) -> WorkerThread | None:
        best = None
        best_load = 0
        sent = self.sent
        for worker in self.workers:
            if not worker.accepting:
                continue
            ctx = worker.ctx
            if ctx is None or now - ctx.now > STALE_LOOP:
                continue  # its loop is blocked
            # (Not sent.get(): from this thread, on a dict the main thread made, that
            # spins 40 sched_yield() calls on 3.13t; see docs/free-threading.md.)
            index = worker.index
            load = (sent[index] if index in sent else 0) - worker.stats.closed
            if best is None or load < best_load:
                best, best_load = worker, load
        return best
