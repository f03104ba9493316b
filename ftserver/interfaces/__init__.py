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


def detect_interface(app: Any, configured: str, name: str = "the app") -> str:
    """The interface to serve ``app`` with: ``configured`` unless it is ``auto``.

    ``auto``: an object with ``__rsgi__`` is RSGI; a coroutine function (or an object whose
    ``__call__`` is one) is ASGI; a plain callable taking two positional arguments
    (``environ, start_response``) is WSGI; an app that cannot be ASGI 3 (a factory, a class,
    an ASGI 2 app, a plain function of ``scope, receive, send``) is refused with a
    ``ConfigError`` naming the fix (see ``not_asgi3``); anything else is taken to be ASGI.
    ``asgi3`` is ``asgi``; ``asgi2`` is returned as it is (``serve_as`` wraps the app).
    """
    if configured == "asgi3":
        interface = "asgi"
    elif configured != "auto":
        interface = configured
    elif hasattr(app, "__rsgi__"):
        interface = "rsgi"
    elif _is_async_callable(app) and not inspect.isclass(app):
        interface = "asgi"
    elif _positional_arity(app) == 2 and not inspect.isclass(app):
        interface = "wsgi"
    else:
        problem = not_asgi3(app)
        if problem:
            raise ConfigError(f"{name} {problem}")
        interface = "asgi"
    if interface not in AVAILABLE and interface != "asgi2":
        hint = {
            "wsgi": "the app looks like a WSGI app (it takes 2 arguments: environ, start_response)",
            "rsgi": "the app looks like an RSGI app (it has __rsgi__)",
        }
        what = hint[interface] + "; " if configured == "auto" else ""
        raise ConfigError(f"{what}the {interface.upper()} interface is not available in this version")
    return interface


def not_asgi3(app: Any) -> str:
    """Why ``app`` (neither RSGI, nor async, nor WSGI) cannot be an ASGI 3 app, with the
    option that fixes it; empty when it may be one (an object whose plain ``__call__`` of
    three arguments returns an awaitable, a callable whose signature is unknown...)."""
    arity = _positional_arity(app)
    if inspect.isclass(app):
        if arity == 3 and hasattr(app, "__await__"):
            return ""  # ASGI 3 as a class: instantiated with (scope, receive, send), awaited
        if arity == 1:
            return "is a class taking (scope): an ASGI 2 app; serve it with --interface asgi2"
        return f"is a class, not an app: create the app in its module (app = {app.__name__}()), or pass --factory to have it called"
    if arity == 0:
        return "takes no arguments: it looks like an app factory; pass --factory to call it and serve what it returns"
    if arity == 1:
        return "takes one argument (scope): an ASGI 2 app; serve it with --interface asgi2"
    if arity == 3 and inspect.isfunction(_unwrap_partial(app)):
        return (
            "is a plain function of 3 arguments, not async: an ASGI 3 app is `async def app(scope, receive, send)`"
            " (--interface asgi serves it anyway if it returns an awaitable)"
        )
    return ""


def serve_as(app: Any, interface: str) -> tuple[Any, str]:
    """``app`` and ``interface`` as an adapter serves them: an ASGI 2 app wrapped into ASGI 3
    (once: a wrapped app given again is left as it is)."""
    if interface != "asgi2":
        return app, interface
    from ftserver.interfaces.asgi import ASGI2App

    return (app if isinstance(app, ASGI2App) else ASGI2App(app)), "asgi"


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


def _unwrap_partial(obj: Any) -> Any:
    while hasattr(obj, "func") and hasattr(obj, "args"):  # functools.partial
        obj = obj.func
    return obj


def _is_async_callable(obj: Any) -> bool:
    obj = _unwrap_partial(obj)
    return inspect.iscoroutinefunction(obj) or inspect.iscoroutinefunction(getattr(obj, "__call__", None))


def _positional_arity(obj: Any) -> int | None:
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None  # (*args): any number
    return len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)])
