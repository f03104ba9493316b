"""Logging set-up: ``ftserver.error`` for the server, ``ftserver.access`` for requests."""

from __future__ import annotations

import logging
import sys

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}


def configure_logging(level: str, access_log: bool) -> None:
    """Install stderr handlers on our loggers unless the user configured them already."""
    error = logging.getLogger("ftserver.error")
    access = logging.getLogger("ftserver.access")
    error.setLevel(LEVELS[level])
    access.setLevel(logging.INFO if access_log else logging.WARNING)
    if not error.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
        error.addHandler(handler)
        error.propagate = False
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        access.addHandler(handler)
        access.propagate = False
