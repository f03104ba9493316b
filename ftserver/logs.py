"""Logging set-up: ``ftserver.error`` for the server, ``ftserver.access`` for requests.

Both go to the terminal (stderr / stdout) unless ``--log-file`` / ``--access-log-file``
name files. Files are opened in append mode and reopened on SIGUSR1 (``reopen_log_files``),
so that logrotate can move them away and signal the server (its ``postrotate`` step).
Worker processes inherit the open files from the supervisor; each process reopens its own.
"""

from __future__ import annotations

import logging
import sys

from ftserver.config import ConfigError

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
ACCESS_DATEFMT = "%Y-%m-%d %H:%M:%S"
ACCESS_FORMAT = logging.Formatter("%(asctime)s %(message)s", ACCESS_DATEFMT)
#: One access-log line: client, method, target, HTTP version, status, body bytes, duration.
ACCESS_MESSAGE = '%s - "%s %s HTTP/%s" %d %d %.2fms'
#: A response the server gave to bytes that never made a request (a malformed or stalled head).
ACCESS_NO_REQUEST = '%s - "-" %d %d %.2fms'


class _LineWriter:
    """For our access-log handlers: write whole lines, a batch at a time.

    A record through ``logging`` costs ~40 µs on 3.13t (caller lookup, ``LogRecord``,
    formatter, the handler's lock, a flush per record): as much as the request itself.
    Worker threads format the line themselves and hand over a batch per loop iteration
    (``WorkerHost.write_access_line``), written under the handler's lock, so
    ``reopen()`` and other writers still never interleave with it.
    """

    def write_lines(self, lines: list[str]) -> None:
        self.acquire()  # type: ignore[attr-defined]
        try:
            stream = self.stream  # type: ignore[attr-defined]
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except Exception:  # noqa: BLE001 - as logging does: a broken log never stops the server
            sys.stderr.write(f"ftserver: could not write {len(lines)} access log line(s)\n")
        finally:
            self.release()  # type: ignore[attr-defined]


class AccessStreamHandler(_LineWriter, logging.StreamHandler):  # type: ignore[type-arg]
    """The access log on a stream (stdout)."""


class ReopenableFileHandler(_LineWriter, logging.FileHandler):
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
        handler: logging.Handler = _open_log_file(log_file, "log") if log_file else logging.StreamHandler(sys.stderr)
        handler.setFormatter(ERROR_FORMAT)
        error.addHandler(handler)
        error.propagate = False
    if not access.handlers:
        handler = _open_log_file(access_log_file, "access log") if access_log_file else AccessStreamHandler(sys.stdout)
        handler.setFormatter(ACCESS_FORMAT)
        access.addHandler(handler)
        access.propagate = False


def _open_log_file(path: str, what: str) -> ReopenableFileHandler:
    try:
        return ReopenableFileHandler(path)
    except OSError as exc:  # one readable line at start-up, as for --pid-file
        raise ConfigError(f"cannot write {what} file {path}: {exc.strerror or exc}") from None


def access_line_writer(logger: logging.Logger) -> _LineWriter | None:
    """The handler that workers may write formatted access lines to directly: the one we
    installed, when it is the access logger's only destination. ``None`` when the access
    log is off or the application's logging configuration added handlers, filters or
    another format: each line then goes through ``logger.info`` as a normal record."""
    if not logger.isEnabledFor(logging.INFO) or logger.filters or logger.propagate:
        return None
    if len(logger.handlers) != 1:
        return None
    handler = logger.handlers[0]
    if not isinstance(handler, _LineWriter) or handler.filters or handler.formatter is not ACCESS_FORMAT:  # type: ignore[attr-defined]
        return None
    if handler.level > logging.INFO:  # type: ignore[attr-defined]
        return None
    return handler


def reopen_log_files() -> int:
    """Reopen every log file our loggers write to (SIGUSR1); return how many."""
    count = 0
    for name in ("ftserver.error", "ftserver.access"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, ReopenableFileHandler):
                handler.reopen()
                count += 1
    return count
