"""The shared accept queue: one acceptor thread hands connections to worker threads,
and ``ProcessLoads``, through which worker processes sharing one listener take turns.
"""

from __future__ import annotations

import mmap
import os
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ftserver.net import CONNECTION_ERRORS, SETTLE, AcceptBackoff, refuse_new_connections

if TYPE_CHECKING:
    from ftserver.threads.worker import WorkerThread

#: Seconds without a tick (once a second) after which a worker loop counts as blocked.
STALE_LOOP = 2.5
#: How long the acceptor leaves the listener alone when no worker can take a connection.
PAUSE = 0.25
#: How long an acceptor over its share (``ProcessLoads``) leaves the listener to the others.
SHARE_PAUSE = 0.05
#: How often an acceptor whose workers are all at ``--limit-max-connections`` looks again.
FULL_PAUSE = 0.02
#: At most this many connections are taken from the queue on stop (Linux caps a listen
#: backlog at net.core.somaxconn: 4096 by default).
MAX_QUEUED = 4096


class ProcessLoads:
    """The open connections of each worker process sharing one listener, in shared memory.

    Every process's acceptor is woken by each new connection; the first to run used to
    take them all in one burst (under wrk -c64 on 4 processes: 53, 7, 0 and 4). Now an
    acceptor takes a connection only while its process is at most ``SLACK`` connections
    above the least loaded process that is accepting, and otherwise leaves the listener
    alone for ``SHARE_PAUSE`` s: another process takes it. The least loaded process always
    accepts, so a connection never waits for lack of a taker.

    The supervisor makes the table before it forks and gives each worker process a slot
    (``None`` when all are taken: that process accepts as before). A slot holds the load
    its process published, or ``IDLE`` (a free slot, a process booting, pausing or
    stopping: not counted). Only its process writes a slot (and the supervisor, once that
    process has exited). A published load is never below the true one (connections that
    closed since count until the next publication), so a stale value can only make the
    others accept more, never stall them.
    """

    SLOTS = 64
    IDLE = 2**62
    #: How many connections a process may be above the least loaded one and still accept.
    SLACK = 2

    def __init__(self) -> None:
        # mmap(-1, ...) is MAP_SHARED | MAP_ANONYMOUS: what one process writes, all see.
        self.memory = mmap.mmap(-1, 8 * self.SLOTS)
        self.view = memoryview(self.memory).cast("q")
        for slot in range(self.SLOTS):
            self.view[slot] = self.IDLE

    def free_slot(self, taken: set[int | None]) -> int | None:
        """A slot no process in ``taken`` holds (the supervisor's choice at fork)."""
        return next((slot for slot in range(self.SLOTS) if slot not in taken), None)

    def release(self, slot: int | None) -> None:
        """Free the slot of a process that has exited."""
        if slot is not None:
            self.view[slot] = self.IDLE

    def share(self, slot: int | None) -> ProcessShare | None:
        """The handle one worker process's acceptor publishes and compares through."""
        return None if slot is None else ProcessShare(self.view, slot, self.IDLE)


class ProcessShare:
    """One process's slot of ``ProcessLoads``: used by its acceptor thread only."""

    __slots__ = ("before", "after", "mine", "idle")

    def __init__(self, view: memoryview, slot: int, idle: int) -> None:
        self.before = view[:slot]
        self.after = view[slot + 1 :]
        self.mine = view[slot : slot + 1]
        self.idle = idle

    def publish(self, load: int) -> None:
        self.mine[0] = load

    def withdraw(self) -> None:
        """Not accepting (paused, stopping): the others do not wait for this process."""
        self.mine[0] = self.idle

    def over_share(self, load: int) -> bool:
        """Whether another accepting process is enough less loaded to take this connection."""
        lowest = min(min(self.before, default=self.idle), min(self.after, default=self.idle))
        return load > lowest + ProcessLoads.SLACK


class AcceptQueue(threading.Thread):
    """Accepts on the shared listener and gives each connection to the least-loaded worker.

    A worker's load is the connections sent to it (counted here, by this thread only)
    and not yet taken, plus those it holds (counted by the worker, by its thread only): no
    shared writes. The chosen worker's selector is woken through ``call_soon_threadsafe``.

    A worker whose loop has not ticked for ``STALE_LOOP`` seconds (the app blocks it) gets
    no new connection: they would wait behind the blocked code. When no worker can take
    one, the acceptor stops accepting for ``PAUSE`` seconds and leaves connections in the
    kernel's backlog, where another worker process sharing the listener (or this one's
    recovered loop, or its replacement) accepts them. With ``share`` (a worker process
    among several), it also leaves them to a less loaded process (``ProcessLoads``).

    A worker at ``--limit-max-connections`` (``max_connections``: counted here as its load)
    gets no new connection until it is down to its ``resume_at``; when every worker is full
    the connections wait in the kernel's queue (``FULL_PAUSE``), none is accepted that no
    worker could take.

    With ``limit`` (a worker process's ``--max-requests``), it counts the requests its
    process served before each accept (once per connection, not per request); at the
    limit it calls ``on_limit`` and stops accepting for good (``retire``): the connections
    waiting are left to the other processes and to the replacement.

    On a graceful ``stop`` it takes the connections still queued before it returns (the
    server closes the listener next, which would reset them) and gives them to its workers,
    blocked or not: they are served during the drain. With ``owns_listener`` it first makes
    the listener refuse new connections (``refuse_new_connections``) and keeps accepting for
    ``SETTLE`` seconds; a listener shared with other processes is the supervisor's to close
    (it refuses new connections on it before it stops the workers), and one inherited
    (``--fd``) outlives this server: its queue waits for the next one.
    """

    def __init__(
        self,
        listener: socket.socket,
        workers: Sequence[WorkerThread],
        share: ProcessShare | None = None,
        limit: int | None = None,
        on_limit: Callable[[int], None] | None = None,
        owns_listener: bool = False,
    ) -> None:
        super().__init__(name="ftserver-acceptor", daemon=True)
        self.listener = listener
        self.workers = workers  # replaced in place by the server when a worker is respawned
        self.share = share
        self.limit = limit
        self.on_limit = on_limit
        self.owns_listener = owns_listener
        self.retired = False
        self.sent: dict[int, int] = {}
        self.full: set[int] = set()  # workers at --limit-max-connections (remade by run())
        self.backoff = AcceptBackoff()
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self._force = False

    def stop(self, force: bool = False) -> None:
        """Stop accepting; unless ``force``, take what is queued first (see the class)."""
        self._force = force
        self._stopping = True
        self._wake()

    def retire(self) -> None:
        """Stop accepting for good (the process is to be replaced); thread-safe."""
        self.retired = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def reset(self, index: int) -> None:
        """Forget the load of worker ``index`` (it was replaced by a fresh one)."""
        self.sent[index] = 0

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        self.full = set()  # (made by this thread, which alone uses it)
        share = self.share
        pause = 0.0  # > 0: leave the listener alone that long, then watch it again
        try:
            while not self._stopping:
                if self.retired:
                    if share is not None:
                        share.withdraw()
                    if sel.select():  # the wake-up pipe: a stop (or another retire)
                        os.read(self._wake_r, 64)
                    continue
                if pause:
                    sel.select(pause)  # only the wake-up pipe (a stop) ends it early
                    pause = 0.0
                    continue
                listener = sel.register(self.listener, selectors.EVENT_READ)
                while not pause and not self._stopping and not self.retired:
                    if any(key is listener for key, _ in sel.select()):
                        pause = self._accept_burst()
                sel.unregister(self.listener)
            if not self._force and (self.owns_listener or not self.retired):
                self._empty_queue()  # (retired: the replacement takes them from a shared one)
        finally:
            if share is not None:
                share.withdraw()
            sel.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _accept_burst(self) -> float:
        """Accept what is waiting; the seconds to leave the listener alone (0.0: none)."""
        listener = self.listener
        share = self.share
        now = time.monotonic()  # the clock of the workers' loop.time()
        limit = self.limit
        for _ in range(64):
            if limit is not None:
                served = sum(worker.stats.requests for worker in self.workers)
                if served >= limit:
                    self.retired = True
                    if self.on_limit is not None:
                        self.on_limit(served)
                    return PAUSE
            worker, load = self._pick(now)
            if worker is None:
                if share is not None:
                    share.withdraw()
                return FULL_PAUSE if self.full else PAUSE
            if share is not None:
                share.publish(load)
                if share.over_share(load):
                    return SHARE_PAUSE
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return 0.0
            except OSError as exc:
                if exc.errno in CONNECTION_ERRORS:
                    continue
                if share is not None:
                    share.withdraw()
                return self.backoff.failed(exc)  # EMFILE and friends
            if self.backoff.since:
                self.backoff.recovered()
            self._hand_over(sock, worker)
        return 0.0

    def _hand_over(self, sock: socket.socket, worker: WorkerThread) -> None:
        sent = self.sent
        index = worker.index
        sent[index] = sent[index] + 1 if index in sent else 1
        # Hand over the bare descriptor: the worker wraps it in a socket object of its
        # own, so the object used on every recv/send is owned by the thread using it
        # (a socket created here would be a shared instance on 3.13t's hot path).
        worker.adopt(sock.detach(), self.listener.family)

    def _empty_queue(self) -> None:
        """Stopping: hand the connections still queued on the listener to the workers."""
        listener = self.listener
        settle_until = time.monotonic() + SETTLE if self.owns_listener and refuse_new_connections(listener) else 0.0
        taken = 0
        while taken < MAX_QUEUED and not self._force:  # a bound: a shared listener still takes new connections
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                left = settle_until - time.monotonic()
                if left <= 0:
                    return
                self._wait_readable(left)
                continue
            except OSError as exc:
                if exc.errno in CONNECTION_ERRORS:
                    continue
                return
            worker, _load = self._pick(0.0, stopping=True)
            if worker is None:
                sock.close()
                continue
            taken += 1
            self._hand_over(sock, worker)

    def _wait_readable(self, timeout: float) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.listener, selectors.EVENT_READ)
            sel.select(timeout)

    def _pick(self, now: float, stopping: bool = False) -> tuple[WorkerThread | None, int]:
        """The least loaded worker that can take a connection, and this process's load
        (``stopping``: blocked loops too; what is queued is served once they run again)."""
        best = None
        best_load = 0
        total = 0
        sent = self.sent
        for worker in self.workers:
            # (Not sent.get(): from this thread, on a dict the main thread made, that
            # spins 40 sched_yield() calls on 3.13t; see docs/free-threading.md.)
            index = worker.index
            # In transit (handed over, not yet taken), then held (set up, or being set up).
            load = (sent[index] if index in sent else 0) - worker.stats.adopted + worker.open_connections()
            total += load
            if not worker.accepting:
                continue
            cap = worker.max_connections
            if cap is not None and not stopping:
                if index in self.full:
                    if load > worker.resume_at:
                        continue
                    self.full.discard(index)
                elif load >= cap:
                    self.full.add(index)
                    continue
            ctx = worker.ctx
            if ctx is None or (now - ctx.now > STALE_LOOP and not stopping):
                continue  # its loop is blocked
            if best is None or load < best_load:
                best, best_load = worker, load
        return best, total
