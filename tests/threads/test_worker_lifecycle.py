"""Worker threads: a dying worker is logged and replaced; connections spread over threads."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic


@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_dead_worker_is_replaced(accept):
    with serve(basic.hello, threads=2, accept=accept) as running:
        server = running.server
        victim = server.workers[0]
        # Stopping its loop from outside kills the worker thread, as a bug in it would.
        victim.loop.call_soon_threadsafe(victim.loop.stop)
        victim.join(5)
        assert not victim.is_alive()
        deadline = time.monotonic() + 10
        while server.workers[0] is victim and time.monotonic() < deadline:
            time.sleep(0.05)
        replacement = server.workers[0]
        assert replacement is not victim
        assert replacement.ready.wait(5) and replacement.is_alive()
        for _ in range(6):
            assert httpx.get(running.url).text == "Hello, world!"
    assert isinstance(victim.crashed, RuntimeError)


def test_queue_spreads_connections_over_threads():
    names: list[str] = []

    async def app(scope, receive, send):
        if scope["type"] == "http":
            names.append(threading.current_thread().name)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    with serve(app, threads=3, accept="queue") as running:
        clients = [httpx.Client(base_url=running.url) for _ in range(6)]
        try:
            for client in clients:  # six connections open at once
                client.get("/")
        finally:
            for client in clients:
                client.close()
    assert len(set(names)) == 3
