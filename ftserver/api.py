"""The entry points that run a server as ``ftserve`` does: ``run()`` (``ftserver.run``)
and ``serve()``, which the command line calls once it has built the ``Config``.

They pick the process layout: the reloader (``--reload``), this very process
(``--no-supervisor``: ``Server``) or the supervisor and its worker processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ftserver.config import Config
from ftserver.envfile import load_env_file
from ftserver.logs import configure_logging_for
from ftserver.metrics import MetricsEndpoint
from ftserver.mp_fallback.pidfile import PidFile
from ftserver.mp_fallback.supervisor import Supervisor
from ftserver.reloader import Reloader
from ftserver.server import Server
from ftserver.service import activated_socket
from ftserver.startup import as_startup_failure


def run(app: str | Callable[..., Any], **options: Any) -> int:
    """Serve ``app`` (an ASGI callable or ``"module:attr"``) as ``ftserve`` does, until
    stopped; return the exit code. Call it from the main thread: the supervisor forks the
    worker processes and handles signals (``supervisor=False`` runs threads mode in this
    process, like ``Server.run``).

    With ``reload=True`` (development) this process becomes the reloader and the server
    runs in a child process, restarted when a watched file changes (``ftserver.reloader``).
    """
    return serve(Config(app=app, **options))


def serve(config: Config) -> int:
    """Run ``config`` as ``ftserve`` does; return the exit code.

    A start-up failure raises one of ``ftserver.startup.STARTUP_FAILURES`` (the app's own
    error at import as an ``AppImportError``); ``exit_code_for`` gives its exit code.
    """
    if config.env_file is not None:
        load_env_file(config.env_file)  # before the app is imported, here or in the workers
    config, activation = activated_socket(config)  # systemd's LISTEN_FDS: served instead of binding
    if activation is not None:
        configure_logging_for(config)
        logging.getLogger("ftserver.error").info("%s", activation)
    if config.reload:
        return Reloader(config).run()  # the server process it runs serves the metrics
    if not config.metrics:
        return _serve(config)
    configure_logging_for(config)  # before the endpoint's first line
    endpoint = MetricsEndpoint(config.metrics_host, config.metrics_port)
    try:
        endpoint.start()
        return _serve(config)
    finally:
        endpoint.close()


def _serve(config: Config) -> int:
    if config.supervisor:
        return Supervisor(config).run()
    configure_logging_for(config)
    with PidFile(config.pid_file):
        server = Server(config)
        try:
            return server.run()
        except Exception as exc:
            failure = as_startup_failure(exc, config.app, server.startup_error)
            if failure is None or failure is exc:
                raise
            raise failure from exc
