"""ftserver: a production web server for Python, built for free-threaded CPython."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ftserver.version import __version__

__all__ = ["Config", "Server", "run", "__version__"]

if TYPE_CHECKING:
    from ftserver.api import run
    from ftserver.config import Config
    from ftserver.server import Server


def __getattr__(name: str) -> Any:
    # Lazy, so that `import ftserver` (e.g. by the pytest plugin) stays cheap.
    if name == "Config":
        from ftserver.config import Config

        return Config
    if name == "Server":
        from ftserver.server import Server

        return Server
    if name == "run":
        from ftserver.api import run

        return run
    raise AttributeError(f"module 'ftserver' has no attribute {name!r}")
