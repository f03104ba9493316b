"""Lifespan runs once per worker thread, with state shared into request scopes."""

from __future__ import annotations

import logging
import threading

import httpx
import pytest

from ftserver.server import StartupError
from ftserver.testing import serve


def make_app(events: list, fail: bool = False):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    scope["state"]["thread"] = threading.current_thread().name
                    events.append("startup")
                    if fail:
                        await send({"type": "lifespan.startup.failed", "message": "no database"})
                        return
                    await send({"type": "lifespan.startup.complete"})
                else:
                    events.append("shutdown")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        else:
            body = scope["state"]["thread"].encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

    return app


def test_lifespan_per_thread_and_state():
    events: list = []
    with serve(make_app(events), threads=2, lifespan="on") as server:
        assert events == ["startup", "startup"]
        thread = httpx.get(server.url).text
        assert thread.startswith("ftserver-worker-")
    assert events == ["startup", "startup", "shutdown", "shutdown"]


def test_lifespan_startup_failure_stops_server():
    with pytest.raises(StartupError, match="no database"):
        with serve(make_app([], fail=True), lifespan="on"):
            pass


async def no_lifespan_app(scope, receive, send):
    assert scope["type"] == "http", "this app does not do lifespan"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def test_lifespan_auto_tolerates_apps_without_it():
    with serve(no_lifespan_app, lifespan="auto") as server:
        assert httpx.get(server.url).status_code == 204


def test_an_app_without_lifespan_is_logged_once_not_once_per_thread(caplog):
    async def app(scope, receive, send):  # a fresh app: not said before in this process
        await no_lifespan_app(scope, receive, send)

    caplog.set_level(logging.INFO, logger="ftserver.error")
    with serve(app, threads=4, lifespan="auto", log_level="info") as server:
        assert httpx.get(server.url).status_code == 204
    said = [r for r in caplog.records if "'lifespan' protocol appears unsupported" in r.getMessage()]
    assert len(said) == 1, said


def test_lifespan_on_with_unsupporting_app_fails():
    with pytest.raises(StartupError):
        with serve(no_lifespan_app, lifespan="on"):
            pass


def test_lifespan_off_is_not_called():
    events: list = []
    with serve(make_app(events), lifespan="off") as server:
        # no lifespan, so no state in the scope: this app fails on it and gets a 500
        assert httpx.get(server.url).status_code == 500
    assert events == []
