"""``--limit-concurrency N``: at most N requests in progress per worker process; beyond it a
request is answered ``503`` with ``Retry-After`` without running the application (Uvicorn's
option, per process as there).

A request is in progress from the moment its application is started until its response is
complete or its application has finished, whichever comes first (a WebSocket: until it is
over). The process-wide count is kept without a lock: each worker thread writes the number
of its own requests in progress into a slot of its own (``InFlight``, one cache line each),
and sums every slot when it starts a request. It counts the request in its own slot before
it sums: of two threads starting a request at the same instant at the limit, the later
writer sees both, so the limit is not passed (at worst both refuse, once). A thread's slot
is written only by that thread: nothing is locked and nothing shared is written twice.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from ftserver.interfaces.stream import AdapterWrapper

if TYPE_CHECKING:
    from ftserver.interfaces.stream import AppHost, Exchange, InterfaceAdapter

logger = logging.getLogger("ftserver.error")

#: ``Retry-After`` of a refused request, in seconds.
RETRY_AFTER = 1
#: A worker thread logs its refusals at most this often (seconds).
WARN_EVERY = 10.0
_BODY = b"Service Unavailable"
#: Slots one cache line apart (8 x 8 bytes), so that threads do not write the same line.
STRIDE = 8


class InFlight:
    """The requests in progress of every worker thread of this process: one slot each."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.memory = bytearray(8 * STRIDE * self.slots)

    def views(self, slot: int) -> tuple[memoryview, memoryview]:
        """(this thread's slot, every slot); call from the thread that uses them."""
        whole = memoryview(self.memory).cast("q")
        slot = min(slot, self.slots - 1)
        whole[slot * STRIDE] = 0  # (a replacement thread starts from nothing in progress)
        return whole[slot * STRIDE : slot * STRIDE + 1], whole[::STRIDE]

    def total(self) -> int:
        """Requests in progress in this process now."""
        return sum(memoryview(self.memory).cast("q")[::STRIDE])


class ConcurrencyLimit(AdapterWrapper):
    """A worker thread's adapter with the process-wide limit in front: ``start`` admits or
    refuses; the driver calls ``done`` when an exchange's response is complete and when its
    application has finished (the first call counts, the second is a no-op)."""

    def __init__(self, inner: InterfaceAdapter, host: AppHost, limit: int, in_flight: InFlight, slot: int) -> None:
        super().__init__(inner, host)
        self.open = inner.open  # type: ignore[method-assign]  # (the drivers call the inner one directly)
        self.open_websocket = inner.open_websocket  # type: ignore[method-assign]
        self.inner_start = inner.start
        # A copy made by this thread: every thread comparing with the config's own int object
        # would write its reference count on every request (3.13t: shared, atomic).
        self.limit = int(str(limit))
        self.mine, self.every = in_flight.views(slot)
        self.alone = in_flight.slots == 1  # one worker thread: its own count is the total
        self.active: set[Any] = set()  # this thread's exchanges in progress
        self.refused = 0  # since the last warning
        self.warned_at = -WARN_EVERY
        self.metrics = getattr(host, "metrics", None)
        self.body = bytes(bytearray(_BODY))  # (this thread's own, as every object of the answer)
        self.headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(_BODY)),
            (b"retry-after", b"%d" % RETRY_AFTER),
        ]

    def start(self, exchange: Any) -> None:
        active = self.active
        active.add(exchange)
        count = len(active)
        self.mine[0] = count
        if (count if self.alone else sum(self.every)) <= self.limit:
            self.inner_start(exchange)
            return
        active.discard(exchange)
        self.mine[0] = len(active)
        if self.metrics is not None:
            self.metrics.refused()
        self.refused += 1
        now = time.monotonic()
        if now - self.warned_at >= WARN_EVERY:
            logger.warning(
                "Exceeded --limit-concurrency %d: %d request(s) answered 503 (logged at most every %g s per worker thread)",
                self.limit, self.refused, WARN_EVERY,
            )
            self.warned_at, self.refused = now, 0
        self.refuse(exchange)

    def done(self, exchange: Exchange) -> None:
        """The exchange's response is complete, or its application finished."""
        active = self.active
        if exchange in active:
            active.discard(exchange)
            self.mine[0] = len(active)

    def refuse(self, exchange: Any) -> None:
        """Answer 503 in the application's place (as ``Exchange.internal_error`` answers 500)."""
        exchange.status = 503
        exchange.headers = self.headers
        if exchange.reason is not None:
            exchange.reason = None
        exchange.started = exchange.body_sent = exchange.complete = True
        exchange.response_bytes = len(self.body)
        stream = exchange.stream
        stream.send_body(exchange, self.body, False)
        stream.response_complete(exchange)
        stream.app_finished(exchange, None)
