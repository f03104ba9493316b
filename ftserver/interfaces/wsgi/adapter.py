"""WSGI on one worker thread: the pool of blocking handler threads and what each one runs.

The loop queues each ``WSGIExchange`` on the adapter's ``JobQueue``; a handler thread takes
it and runs it with its own ``Handler`` (``exchange.py``); what goes back to the loop goes
through the adapter's ``LoopInbox``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import TYPE_CHECKING

from ftserver.interfaces.stream import AppHost, InterfaceAdapter
from ftserver.interfaces.wsgi.bridge import JobQueue, LoopInbox, held_lock
from ftserver.interfaces.wsgi.environ import HandlerContext, WSGIApp
from ftserver.interfaces.wsgi.exchange import Handler, WSGIExchange

if TYPE_CHECKING:
    from ftserver.config import Config

logger = logging.getLogger("ftserver.error")


class WSGIAdapter(InterfaceAdapter):
    """WSGI on one worker thread: a pool of ``--blocking-threads`` handler threads.

    ``wsgi.multiprocess`` is the worker context's ``multiprocess`` attribute (False in
    threads mode; the process mode sets it); ``wsgi.multithread`` is always True.
    """

    def __init__(self, app: WSGIApp, config: Config, host: AppHost, label: str = "") -> None:
        super().__init__(host)
        # One exchange class: the class itself is ``open`` (no call of ours per request).
        self.open = WSGIExchange  # type: ignore[method-assign,assignment]
        self.app = app
        self.size = config.blocking_threads
        self.timeout_io = config.timeout_io
        self.body_buffer = config.wsgi_body_buffer
        self.timeout_shutdown = config.timeout_graceful_shutdown
        self.root_path = config.root_path
        self.label = label
        self.jobs = JobQueue()
        self.threads: list[threading.Thread] = []
        self.multiprocess = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inbox: LoopInbox | None = None

    def start(self, exchange: WSGIExchange) -> None:
        if exchange.body_complete:  # the usual request: nothing to hold back
            self.jobs.put(exchange)
        else:
            exchange.run(self)

    async def startup(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.inbox = LoopInbox(self.loop)
        self.multiprocess = self.host.multiprocess
        prefix = threading.current_thread().name
        for index in range(self.size):
            thread = threading.Thread(target=self._serve, name=f"{prefix}-wsgi-{index}", daemon=True)
            thread.start()
            self.threads.append(thread)

    async def shutdown(self) -> None:
        """Stop the handler threads once they are idle; the loop keeps serving their
        last posts meanwhile. A thread still busy after ``--timeout-graceful-shutdown``
        is left behind (it is a daemon thread) with a warning."""
        for _ in self.threads:
            self.jobs.put(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_shutdown
        while any(t.is_alive() for t in self.threads) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        busy = [t.name for t in self.threads if t.is_alive()]
        if busy:
            logger.warning("WSGI handler threads still running at shutdown%s: %s", self.label, ", ".join(busy))

    def _serve(self) -> None:
        """A handler thread: take exchanges from the queue and run them, until told to stop."""
        handler = Handler(HandlerContext(self))
        get = self.jobs.get
        parker = held_lock()
        loop = self.loop
        assert loop is not None
        while True:
            try:
                exchange = get(parker, 5.0)
            except queue.Empty:
                if loop.is_closed():  # the worker thread crashed: it will not stop us
                    return
                continue
            if exchange is None:
                return
            try:
                handler.handle(exchange)
            except BaseException as exc:  # noqa: BLE001 - never lose a handler thread
                logger.critical("internal error in a WSGI handler thread", exc_info=exc)
                try:
                    handler.ctx.inbox.post(exchange.loop_finished, exc)
                except Exception:  # noqa: BLE001
                    pass
