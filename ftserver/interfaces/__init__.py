"""Application interfaces (ASGI 3, WSGI, RSGI) on top of the shared stream contract.

``detect_interface`` decides which interface an app speaks; ``make_adapter`` builds the
per-worker-thread adapter for it (inside that thread).
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from ftserver.config import ConfigError

if TYPE_CHECKING:
    from ftserver.config import Config
    from ftserver.interfaces.stream import AppHost, InterfaceAdapter

#: Interfaces this version serves (``auto`` resolves to one of them).
AVAILABLE = ("asgi", "wsgi", "rsgi")


def detect_interface(app: Any, configured: str) -> str:
    """The interface to serve ``app`` with: ``configured`` unless it is ``auto``.

    ``auto``: an object with ``__rsgi__`` is RSGI; a coroutine function (or an object whose
    ``__call__`` is one) is ASGI; a plain callable taking two positional arguments
    (``environ, start_response``) is WSGI; anything else is taken to be ASGI.
    """
    if configured != "auto":
        interface = configured
    elif hasattr(app, "__rsgi__"):
        interface = "rsgi"
    elif _is_async_callable(app):
        interface = "asgi"
    elif _positional_arity(app) == 2:
        interface = "wsgi"
    else:
        interface = "asgi"
    if interface not in AVAILABLE:
        hint = {
            "wsgi": "the app looks like a WSGI app (it takes 2 arguments: environ, start_response)",
            "rsgi": "the app looks like an RSGI app (it has __rsgi__)",
        }
        what = hint[interface] + "; " if configured == "auto" else ""
        raise ConfigError(f"{what}the {interface.upper()} interface is not available in this version")
    return interface


def make_adapter(interface: str, app: Any, config: Config, host: AppHost, label: str = "") -> InterfaceAdapter:
    """The adapter for the worker thread ``host`` stands for; call it from that thread."""
    if interface == "asgi":
        from ftserver.interfaces.asgi import ASGIAdapter

        return ASGIAdapter(app, config, host, label)
    if interface == "wsgi":
        from ftserver.interfaces.wsgi import WSGIAdapter

        return WSGIAdapter(app, config, host, label)
    if interface == "rsgi":
        from ftserver.interfaces.rsgi import RSGIAdapter

        return RSGIAdapter(app, config, host, label)
    raise ConfigError(f"interface {interface!r} is not available")


def _is_async_callable(obj: Any) -> bool:
    while hasattr(obj, "func") and hasattr(obj, "args"):  # functools.partial
        obj = obj.func
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(getattr(obj, "__call__", None))


def _positional_arity(obj: Any) -> int | None:
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
