"""Start-up steps shared by the in-process ``Server``, the supervisor and the reloader.

Loading the app while watching the GIL, binding the listening socket, naming the address,
the banner, installing signal handlers, and how a failed start-up becomes an exit code:
each is written here once. ``docs/supervisor.md`` tells how the processes fit together.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

from ftserver.config import Config, ConfigError, WorkerPlan
from ftserver.interfaces import detect_interface, serve_as
from ftserver.loading import AppImportError, AppLoadError, import_app
from ftserver.net import BindError, bind_tcp, bind_unix, listen_url, listener_from_fd
from ftserver.runtime import GILReport, free_threaded_build, python_build, watch_gil
from ftserver.version import __version__

logger = logging.getLogger("ftserver.error")

EXIT_OK = 0
#: A second SIGINT/SIGTERM (or SIGQUIT) cut the in-flight requests off.
EXIT_FORCED = 1
#: The app could not be loaded, the configuration was refused or the address was taken.
EXIT_APP_ERROR = 1
#: The server could not start: lifespan startup failed, a worker died at start...
EXIT_STARTUP_FAILED = 3


class StartupError(RuntimeError):
    """The server could not start (lifespan startup failed, a worker died at start...)."""


class SupervisorError(RuntimeError):
    """The server could not start, or had to stop; the message says why."""

    def __init__(self, message: str, exit_code: int = EXIT_APP_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: What ``ftserve`` reports as one line ("Error: ...") and an exit code, not a traceback.
STARTUP_FAILURES = (SupervisorError, AppLoadError, ConfigError, BindError, StartupError, AppImportError)


def exit_code_for(failure: BaseException) -> int:
    """The exit code of a process that stopped on ``failure`` (one of ``STARTUP_FAILURES``)."""
    if isinstance(failure, SupervisorError):
        return failure.exit_code
    if isinstance(failure, StartupError):
        return EXIT_STARTUP_FAILED
    return EXIT_APP_ERROR


def as_startup_failure(exc: BaseException, app: object, startup_error: BaseException | None) -> BaseException | None:
    """What to report for ``exc``, raised by a server's ``run()``.

    A known start-up failure is reported as it is; the app's own error while it was
    imported (the server's ``startup_error``: a SyntaxError, an exception at import) as an
    ``AppImportError`` that shows the app's traceback; anything else is ``None``: a bug of
    ours, whose traceback must show.
    """
    if isinstance(exc, STARTUP_FAILURES):
        return exc
    if exc is startup_error:
        return AppImportError(app, exc)
    return None


# -- the app -----------------------------------------------------------------------------


class LoadedApp(NamedTuple):
    app: Any
    #: Whether importing the app turned the GIL on (and which module did).
    gil: GILReport
    #: ``config.interface``, with ``auto`` resolved for this app.
    interface: str


def load_app(config: Config) -> LoadedApp:
    """Import ``config.app`` (or take the object given), watching whether that turns the
    GIL on, and decide which interface it speaks."""
    target = config.app
    if isinstance(target, str):
        app, gil = watch_gil(lambda: import_app(target, factory=config.factory, app_dir=config.app_dir))
        name = f'App "{target}"'
    else:
        app, gil = watch_gil(lambda: target)
        name = f"The app {target!r}"
    app, interface = serve_as(app, detect_interface(app, config.interface, name))
    return LoadedApp(app, gil, interface)


# -- the address -------------------------------------------------------------------------


class Listening:
    """Where a server listens, as the log and the Python API name it: ``host`` and
    ``port``, or ``uds`` for a Unix socket. As configured until ``take_address`` reads the
    bound socket."""

    def __init__(self, config: Config) -> None:
        self.host = config.host
        self.port = config.port
        self.uds = config.uds
        self.scheme = "https" if config.tls else "http"

    @property
    def url(self) -> str:
        return listen_url(self.host, self.port, self.uds, self.scheme)

    def take_address(self, sock: socket.socket, *, inherited: bool) -> None:
        """The port that port 0 picked; the whole address of an ``inherited`` socket."""
        address = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            self.uds = address
        elif inherited:
            self.host, self.port = address[:2]
        else:
            self.port = address[1]


def bind_listener(config: Config, *, reuse_port: bool = False) -> socket.socket:
    """The one listening socket that threads (or worker processes) accept from: the one
    inherited on ``--fd``, the Unix socket ``--uds``, or TCP on ``--host``/``--port``
    (``reuse_port``: others will bind the same port beside it)."""
    if config.fd is not None:  # systemd socket activation, the reloader
        return listener_from_fd(config.fd)
    if config.uds:
        return bind_unix(config.uds, config.backlog, config.uds_permissions)  # type: ignore[arg-type]  # (an int once validated)
    return bind_tcp(config.host, config.port, config.backlog, reuse_port=reuse_port)


# -- the banner --------------------------------------------------------------------------


def log_banner(
    config: Config,
    plan: WorkerPlan,
    where: Listening,
    gil: GILReport | None,
    interface: str,
    *,
    worker_pids: list[int] | None = None,
    note: tuple[int, str] | None = None,
) -> bool:
    """Log the banner (build, GIL, interface, layout), then ``note`` (level, message), a
    warning if the GIL keeps the threads from running in parallel, and "Listening on".

    ``worker_pids``: the supervisor's worker processes (``None``: this process serves).
    Returns whether the GIL warning was logged.
    """
    accept = "unix socket" if where.uds else f"accept: {config.accept}"
    workers = ""
    if worker_pids is not None:
        workers = f", worker{'' if len(worker_pids) == 1 else 's'} {', '.join(map(str, worker_pids))}"
    logger.info(
        "ftserver %s | %s | %s | %s | mode: %s | %s (threads: %d, from %s; %s) | http1: %s | pid %d%s",
        __version__,
        python_build(),
        gil.describe() if gil else "",
        interface.upper(),
        plan.mode,
        plan.describe(),
        config.threads,
        config.threads_from,
        accept,
        config.http1,
        os.getpid(),
        workers,
    )
    if note is not None:
        logger.log(*note)
    warned = False
    if gil is not None and gil.after and plan.threads > 1:
        warned = True
        if worker_pids is None:
            threads = f"the {plan.threads} worker threads"
            hint = " Use a free-threaded build (python3.13t) for parallel threads."
        else:
            threads = f"the {plan.threads} threads of each worker"
            hint = " Use a free-threaded build (python3.13t), or more --workers."
        logger.warning(
            "The GIL is enabled (%s): %s will not run Python code in parallel.%s",
            gil.describe(),
            threads,
            "" if free_threaded_build() else hint,
        )
    logger.info("Listening on %s (press CTRL+C to quit)", where.url)
    return warned


# -- signals -----------------------------------------------------------------------------


def install_signal_handlers(
    signals: Iterable[int],
    handler: Callable[[int, Any], None],
    *,
    keep_ignored: Collection[int] = (),
) -> Callable[[], None]:
    """Point ``signals`` at ``handler`` and return a function that puts the previous
    handlers back. The handler should only enqueue: one loop acts, as in Gunicorn's arbiter.

    A signal of ``keep_ignored`` that is ignored when we start (the reloader's child
    ignores SIGINT, and so does a background job) stays ignored.
    """
    previous: dict[int, Any] = {}
    for signum in signals:
        if signum in keep_ignored and signal.getsignal(signum) is signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)

    def restore() -> None:
        for signum, old in previous.items():
            signal.signal(signum, old)

    return restore
