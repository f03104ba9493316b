"""Run application coroutines without creating an asyncio Task per request.

Creating an ``asyncio.Task`` per request costs about a third of the throughput of a
hello-world server on 3.13t (and registers every task in interpreter-wide sets). Most
requests never really suspend: the app builds a response from data already received and
returns. So each request's coroutine is first *stepped directly* from the protocol
callback. While it is stepped, a parked "host" task is made the loop's current task, so
``asyncio.current_task()`` — which anyio, Starlette, ``asyncio.timeout`` and friends rely
on — returns a real Task. If the coroutine does suspend, the rest of it is handed to that
same host task, so the task the app saw is the one that finishes it (cancel scopes stay
consistent). Hosts are kept in a per-thread pool and reused across requests.
"""

from __future__ import annotations

import asyncio
import contextvars
import types
from asyncio import CancelledError
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any, Protocol

from ftserver.interfaces.stream import await_app

_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task


class Finishing(Protocol):
    """What ``Stepper.step`` runs an app for: told once when the app is done (an exchange)."""

    def app_done(self, exc: BaseException | None) -> None:
        """The app returned (``None``) or raised ``exc``."""


class _Job:
    """The suspended remainder of one app coroutine, awaited by a host task."""

    __slots__ = ("coro", "ctx", "yielded", "owner", "cancel_pending")

    def __init__(self, coro: Coroutine[Any, Any, Any], ctx: contextvars.Context, yielded: Any, owner: Finishing) -> None:
        self.coro = coro
        self.ctx = ctx
        self.yielded = yielded
        self.owner = owner
        self.cancel_pending = False

    def __await__(self) -> Generator[Any, None, None]:
        # Delegate like ``yield from coro``, but every step of the app runs in the
        # request's own context rather than the host task's.
        coro, run = self.coro, self.ctx.run
        send, throw = coro.send, coro.throw
        yielded = self.yielded
        if self.cancel_pending:
            # The host was cancelled while the app was being stepped directly: deliver the
            # cancellation where a Task would, at the future the app is waiting on.
            if isinstance(yielded, asyncio.Future):
                yielded.cancel()
            else:
                try:
                    yielded = run(throw, CancelledError())
                except StopIteration:
                    return
        while True:
            try:
                yield yielded
            except BaseException as exc:
                try:
                    yielded = run(throw, exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = run(send, None)
                except StopIteration:
                    return


@types.coroutine
def _runner(coro: Awaitable[Any]) -> Generator[Any, None, None]:
    """``coro`` inside a generator that returns ``None``: ``next(runner, runner)`` steps it
    and, when the app returns, gives back ``runner`` instead of raising ``StopIteration``
    (no exception object and traceback per request: about 100 ns on 3.13t)."""
    yield from coro  # type: ignore[misc]


async def _run_as_task(coro: Coroutine[Any, Any, Any], owner: Finishing) -> None:
    try:
        await coro
    except BaseException as exc:  # noqa: BLE001 - reported like a stepped coroutine's
        owner.app_done(exc)
    else:
        owner.app_done(None)


class _Host:
    __slots__ = ("task", "job", "parked")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.job: _Job | None = None
        self.parked: asyncio.Future[None] | None = None


class Stepper:
    """Per-thread runner of app coroutines (one per worker event loop; never shared)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, context: contextvars.Context) -> None:
        self.loop = loop
        self.context = context  # the thread's; each request runs in a copy of it
        self.idle: list[_Host] = []
        self.hosts: set[_Host] = set()
        self.closed = False

    def step(self, coro: Awaitable[Any], owner: Finishing) -> None:
        """Step ``coro`` (a coroutine, or any other awaitable) now, in a copy of the
        thread's context; if it suspends, a host task finishes it. ``owner.app_done(exc)``
        is called exactly once, with the exception the coroutine raised or ``None`` (a
        method called, not a callback passed: no bound method is made per request)."""
        if type(coro) is not CoroutineType:
            coro = await_app(coro)
        ctx = self.context.copy()
        idle = self.idle
        host = idle.pop() if idle else self._new_host()
        loop = self.loop
        task = host.task
        try:
            _enter_task(loop, task)
        except RuntimeError:
            # Called from inside a running task (not from a protocol callback, e.g. from
            # a host's app_done): a plain Task is the correct, if slower, way to run it.
            idle.append(host)
            loop.create_task(_run_as_task(coro, owner), context=ctx)
            return
        runner = _runner(coro)
        try:
            yielded = ctx.run(next, runner, runner)
        except BaseException as exc:  # noqa: BLE001 - reported to the protocol, which answers 500
            _leave_task(loop, task)
            if not task.cancelling():  # type: ignore[union-attr]
                idle.append(host)
            # (in the block: ``exc`` is unbound at its end, so this frame, which its
            # traceback holds, does not hold it: no cycle for the GC)
            owner.app_done(exc)
            return
        _leave_task(loop, task)
        if yielded is not runner:  # suspended: a host task goes on with it
            host.job = _Job(runner, ctx, yielded, owner)
            parked = host.parked
            if parked is not None and not parked.done():
                parked.set_result(None)
            return
        if not task.cancelling():  # type: ignore[union-attr]
            idle.append(host)
        # else: the app cancelled its task and finished anyway; the pending cancellation
        # ends this host when it parks.
        owner.app_done(None)

    def _new_host(self) -> _Host:
        host = _Host()
        host.task = self.loop.create_task(self._host_main(host), name="ftserver-app")
        self.hosts.add(host)
        return host

    async def _host_main(self, host: _Host) -> None:
        loop = self.loop
        task = host.task
        assert task is not None
        try:
            while True:
                job = host.job
                if job is None:
                    if self.closed:
                        return
                    host.parked = parked = loop.create_future()
                    try:
                        await parked
                    except CancelledError:
                        if host.job is None:
                            return  # cancelled while idle: loop shutdown, or retired (see run)
                        host.job.cancel_pending = True
                    continue
                exc: BaseException | None = None
                try:
                    await job
                except BaseException as e:  # noqa: BLE001 - CancelledError included: the app did not handle it
                    exc = e
                host.job = None
                job.owner.app_done(exc)
                exc = None  # (its traceback holds this frame: no cycle once the host retires)
                if task.cancelling():
                    # Leftover cancellation requests would confuse the next request's
                    # asyncio.timeout / cancel scopes: retire this host.
                    return
                self.idle.append(host)
        finally:
            self.hosts.discard(host)
            if host in self.idle:
                self.idle.remove(host)

    def close(self) -> None:
        """Stop parked hosts; hosts running an app finish it first, unless cancelled."""
        self.closed = True
        for host in list(self.idle):
            parked = host.parked
            if parked is not None and not parked.done():
                parked.set_result(None)
        self.idle.clear()

    def cancel_all(self) -> None:
        """Cancel every host, including those running apps (forced shutdown)."""
        self.closed = True
        for host in list(self.hosts):
            if host.task is not None:
                host.task.cancel()
