"""Run an app on a free port for the duration of a test.

>>> from ftserver.testing import serve
>>> with serve(app) as server:          # doctest: +SKIP
...     httpx.get(server.url + "/")

The server runs in a background thread of the current process (so it shares the
test's imports and state), binds port 0 on 127.0.0.1 (safe under pytest-xdist), and is
drained and stopped when the block exits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ftserver.config import Config
from ftserver.server import Server


class RunningServer:
    """Handle on a server started by :func:`serve`."""

    def __init__(self, server: Server) -> None:
        self.server = server

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:41234``."""
        return self.server.url

    def stats(self) -> dict[str, int]:
        return self.server.stats()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}>"


@contextlib.contextmanager
def serve(app: str | Callable[..., Any], **options: Any) -> Iterator[RunningServer]:
    """Start ``app`` with ``Config`` ``options`` (defaults: port 0, 1 thread, quiet logs)."""
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    options.setdefault("threads", 1)
    options.setdefault("log_level", "warning")
    options.setdefault("timeout_graceful_shutdown", 5.0)
    server = Server(Config(app=app, **options))
    server.start()
    try:
        yield RunningServer(server)
    finally:
        server.stop()
