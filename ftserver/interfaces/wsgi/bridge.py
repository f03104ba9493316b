"""What crosses between an event loop and the blocking threads next to it, nothing WSGI-specific.

- ``LoopInbox``: calls from any thread to run on the loop, in order, one wake-up per batch;
- ``JobQueue``: work from the loop for a pool of threads that park on their own locks;
- ``held_lock()``: the one-shot wait every cross-thread hand-over uses (one side waits on
  the held lock with a timeout, the other releases it).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("ftserver.error")

_allocate_lock = threading.Lock


def held_lock() -> Any:
    """A new lock, already acquired: the thread that waits for something acquires it
    again (with a timeout) and the thread that brings it releases it."""
    lock = _allocate_lock()
    lock.acquire()
    return lock


class LoopInbox:
    """Calls from handler threads to run on the worker's event loop, in order, batched.

    ``post`` appends under a lock and wakes the loop only when no batch is scheduled yet,
    so a burst of posts (from one handler or several) costs one ``call_soon_threadsafe``.
    """

    __slots__ = ("loop", "lock", "items", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.items: list[tuple[Callable[[Any], None], Any]] = []
        self.scheduled = False

    def post(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` on the loop (from any thread)."""
        with self.lock:
            self.items.append((fn, arg))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.run)
        except RuntimeError:  # the loop is closed: the worker is gone, nobody to answer
            pass

    def run(self) -> None:
        """On the loop: run the posted calls, batch after batch, until none is left."""
        lock = self.lock
        while True:
            with lock:
                items = self.items
                if not items:
                    self.scheduled = False
                    return
                self.items = []
            for fn, arg in items:
                try:
                    fn(arg)
                except Exception:  # noqa: BLE001 - one exchange's failure must not stop the others
                    logger.exception("internal error while handling a WSGI response")


class JobQueue:
    """Requests waiting for a handler thread of one worker.

    A parked handler is woken only when no other handler is already on its way to the
    queue: a burst of quick requests is taken by handlers that are running or waking
    rather than waking one thread per request (each wake-up is a context switch). A
    handler that takes a job and sees more queued wakes the next one, so slow requests
    still spread over the whole pool at once. The most recently parked handler wakes
    first (its caches are warm).
    """

    __slots__ = ("_lock", "_jobs", "_parked", "_waking")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: collections.deque[Any] = collections.deque()
        self._parked: list[Any] = []  # the held wake locks of parked handlers
        self._waking = 0  # handlers woken that have not looked at the queue yet

    def put(self, job: Any) -> None:
        """Queue ``job`` (from any thread) and wake a parked handler if none is on its way."""
        with self._lock:
            self._jobs.append(job)
            if self._waking or not self._parked:
                return
            self._waking += 1
            waker = self._parked.pop()
        waker.release()

    def get(self, parker: Any, timeout: float) -> Any:
        """The next job; ``parker`` is the caller's own lock, held (``held_lock()``).
        Raises ``queue.Empty`` after ``timeout`` seconds without a job."""
        lock = self._lock
        jobs = self._jobs
        with lock:
            found = bool(jobs)
            if found:
                job = jobs.popleft()
                waker = self._next_waker()
            else:
                self._parked.append(parker)
        if found:
            if waker is not None:
                waker.release()
            return job
        while True:
            if not parker.acquire(timeout=timeout):
                with lock:
                    if parker in self._parked:
                        self._parked.remove(parker)
                        raise queue.Empty
                parker.acquire()  # we were picked just now: take the wake-up
            with lock:
                self._waking -= 1
                found = bool(jobs)
                if found:
                    job = jobs.popleft()
                    waker = self._next_waker()
                else:  # another handler took it first: park again
                    self._parked.append(parker)
            if found:
                if waker is not None:
                    waker.release()
                return job

    def _next_waker(self) -> Any:
        """With the lock held, after taking a job: wake one more if work is left."""
        if self._jobs and self._parked and not self._waking:
            self._waking += 1
            return self._parked.pop()
        return None
