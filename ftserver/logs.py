"""Logging set-up: ``ftserver.error`` for the server, ``ftserver.access`` for requests.

Both go to the terminal (stderr / stdout) unless ``--log-file`` / ``--access-log-file``
name files. Files are opened in append mode and reopened on SIGUSR1 (``reopen_log_files``),
so that logrotate can move them away and signal the server (its ``postrotate`` step).
Worker processes inherit the open files from the supervisor; each process reopens its own.
"""

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

ERROR_FORMAT = logging.Formatter("%(asctime)s [%(process)d] %(levelname)s: %(message)s", "%Y-%m-%d %H:%M:%S")
ACCESS_FORMAT = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")


class ReopenableFileHandler(logging.FileHandler):
    """A log file that ``reopen()`` closes and opens again under the same name."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename, mode="a", encoding="utf-8")

    def reopen(self) -> None:
        self.acquire()  # emit() holds the same lock: no record is written to a closed stream
        try:
            old = self.stream
            self.stream = self._open()
            if old is not None:
                old.close()
        finally:
            self.release()


def configure_logging(level: str, access_log: bool, log_file: str | None = None, access_log_file: str | None = None) -> None:
    """Install handlers on our loggers unless the user configured them already.

    ``access_log_file`` turns the access log on (there is no point naming a file otherwise).
    """
    error = logging.getLogger("ftserver.error")
    access = logging.getLogger("ftserver.access")
    error.setLevel(LEVELS[level])
    access.setLevel(logging.INFO if access_log or access_log_file else logging.WARNING)
    if not error.handlers:
        handler: logging.Handler = ReopenableFileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
        handler.setFormatter(ERROR_FORMAT)
        error.addHandler(handler)
        error.propagate = False
    if not access.handlers:
        handler = ReopenableFileHandler(access_log_file) if access_log_file else logging.StreamHandler(sys.stdout)
        handler.setFormatter(ACCESS_FORMAT)
        access.addHandler(handler)
        access.propagate = False


def reopen_log_files() -> int:
    """Reopen every log file our loggers write to (SIGUSR1); return how many."""
    count = 0
    for name in ("ftserver.error", "ftserver.access"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, ReopenableFileHandler):
                handler.reopen()
                count += 1
    return count
