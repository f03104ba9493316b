"""Heartbeats: each worker thread's event loop stamps the time into shared memory.

The supervisor allocates one anonymous shared mapping per worker process before it
forks, with one slot (a C double) per thread. Each thread's *event loop* writes
``time.monotonic()`` into its slot once a second from a loop callback, so a loop that is
blocked (an app calling ``time.sleep`` or spinning in Python) stops stamping, and the
supervisor, reading the oldest stamp, sees it. A side thread would keep beating while
the loop is wedged; that is why the beat is a callback on the loop itself.

``CLOCK_MONOTONIC`` is system-wide, so a stamp written by the worker compares with the
supervisor's own ``time.monotonic()``.
"""

from __future__ import annotations

import asyncio
import mmap
import struct
import time

SLOT = struct.calcsize("d")
#: How often each loop stamps its slot.
INTERVAL = 1.0


class Heartbeat:
    """Shared stamps of one worker process: ``slots`` threads."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        # mmap(-1, ...) is MAP_SHARED | MAP_ANONYMOUS: the child's writes are seen here.
        self.memory = mmap.mmap(-1, SLOT * slots)
        self._format = f"{slots}d"

    def oldest(self) -> float:
        """The oldest stamp (0.0 while some thread has not beaten yet)."""
        return min(struct.unpack_from(self._format, self.memory))

    def resize(self, slots: int) -> None:
        """Read the first ``slots`` slots only (the process runs fewer threads than planned)."""
        self._format = f"{min(slots, self.slots)}d"

    def start(self, loop: asyncio.AbstractEventLoop, slot: int) -> None:
        """Beat slot ``slot`` from ``loop`` from now on; call from any thread."""
        loop.call_soon_threadsafe(_Beat, loop, self.memory, slot)

    def close(self) -> None:
        self.memory.close()


class _Beat:
    """Runs on one worker loop: stamps its own slot through a view owned by that thread."""

    __slots__ = ("loop", "view")

    def __init__(self, loop: asyncio.AbstractEventLoop, memory: mmap.mmap, slot: int) -> None:
        self.loop = loop
        self.view = memoryview(memory)[slot * SLOT : (slot + 1) * SLOT].cast("d")
        self.beat()

    def beat(self) -> None:
        self.view[0] = time.monotonic()
        if not self.loop.is_closed():
            self.loop.call_later(INTERVAL, self.beat)
