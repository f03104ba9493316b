"""The server's configuration: one frozen dataclass, validated once at start-up."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

from ftserver.protocols.limits import Limits

Interface = Literal["auto", "asgi", "wsgi", "rsgi"]
HTTP1Mode = Literal["fast", "h11"]
AcceptMode = Literal["queue", "reuseport"]
LifespanMode = Literal["auto", "on", "off"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]

INTERFACES = ("auto", "asgi", "wsgi", "rsgi")
HTTP1_MODES = ("fast", "h11")
ACCEPT_MODES = ("queue", "reuseport")
LIFESPAN_MODES = ("auto", "on", "off")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and why."""


def default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Config:
    """Everything the server needs to run. Build it once; it validates itself.

    ``app`` is an ASGI, WSGI or RSGI callable or an import string ``"module:attribute"``
    (``"module:factory"`` with ``factory=True``).
    """

    app: str | Callable[..., Any]
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    threads: int = field(default_factory=default_threads)
    interface: Interface = "auto"
    http1: HTTP1Mode = "fast"
    accept: AcceptMode = "queue"
    backlog: int = 2048
    lifespan: LifespanMode = "auto"
    log_level: LogLevel = "info"
    access_log: bool = False
    root_path: str = ""
    timeout_graceful_shutdown: float = 30.0
    timeout_keep_alive: float = 5.0
    blocking_threads: int = 8
    timeout_io: float = 60.0
    factory: bool = False
    app_dir: str | None = "."
    server_header: bool = True
    date_header: bool = True
    limit_request_line: int = 8190
    limit_request_headers: int = 65536
    limit_request_fields: int = 100
    limit_request_body: int | None = None
    fd: int | None = None
    reload: bool = False
    reload_dirs: tuple[str, ...] = ()
    reload_includes: tuple[str, ...] = ()
    reload_excludes: tuple[str, ...] = ()
    reload_delay: float = 0.25

    def __post_init__(self) -> None:
        if isinstance(self.app, str):
            module, sep, attr = self.app.partition(":")
            if not sep or not module or not attr:
                raise ConfigError(f'app: import string must be "module:attribute", got {self.app!r}')
        elif not callable(self.app) and not hasattr(self.app, "__rsgi__"):
            raise ConfigError(f"app: must be a callable (or an RSGI object) or an import string, got {type(self.app).__name__}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535 (0 picks a free port), got {self.port}")
        if self.threads < 1:
            raise ConfigError(f"threads: must be at least 1, got {self.threads}")
        _choice("interface", self.interface, INTERFACES)
        _choice("http1", self.http1, HTTP1_MODES)
        _choice("accept", self.accept, ACCEPT_MODES)
        _choice("lifespan", self.lifespan, LIFESPAN_MODES)
        _choice("log_level", self.log_level, LOG_LEVELS)
        if self.uds is not None and self.accept == "reuseport":
            raise ConfigError("accept: 'reuseport' needs a TCP listener; use --accept queue with --uds")
        if self.backlog < 1:
            raise ConfigError(f"backlog: must be at least 1, got {self.backlog}")
        if self.timeout_graceful_shutdown < 0:
            raise ConfigError(f"timeout_graceful_shutdown: must be >= 0, got {self.timeout_graceful_shutdown}")
        if self.timeout_keep_alive <= 0:
            raise ConfigError(f"timeout_keep_alive: must be > 0, got {self.timeout_keep_alive}")
        if self.blocking_threads < 1:
            raise ConfigError(f"blocking_threads: must be at least 1, got {self.blocking_threads}")
        if self.timeout_io <= 0:
            raise ConfigError(f"timeout_io: must be > 0, got {self.timeout_io}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(f"root_path: must start with '/' and not end with '/', got {self.root_path!r}")
        for name in ("limit_request_line", "limit_request_headers", "limit_request_fields"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.limit_request_body is not None and self.limit_request_body < 0:
            raise ConfigError(f"limit_request_body: must be >= 0, got {self.limit_request_body}")
        if self.fd is not None and (self.fd < 0 or self.uds is not None):
            raise ConfigError(f"fd: must be a file descriptor number >= 0 and not combined with uds, got {self.fd}")
        self._validate_reload()

    def _validate_reload(self) -> None:
        for name in ("reload_dirs", "reload_includes", "reload_excludes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
                raise ConfigError(f"{name}: must be a sequence of non-empty strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))  # frozen: normalise lists once, here
        for path in self.reload_dirs:
            if not os.path.isdir(path):
                raise ConfigError(f"reload_dirs: {path!r} is not a directory")
        if not self.reload_delay > 0:
            raise ConfigError(f"reload_delay: must be > 0 seconds, got {self.reload_delay}")
        if self.reload and not isinstance(self.app, str):
            raise ConfigError('reload: needs the app as an import string "module:attribute" (the server process imports it afresh on each change)')

    @property
    def limits(self) -> Limits:
        return Limits(
            max_request_line=self.limit_request_line,
            max_header_bytes=self.limit_request_headers,
            max_headers=self.limit_request_fields,
            max_body_size=self.limit_request_body,
        )

    def replace(self, **changes: Any) -> Config:
        return replace(self, **changes)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {value!r}")
