"""Logging set-up: ``ftserver.error`` for the server, ``ftserver.access`` for requests.

Both go to the terminal (stderr / stdout) unless ``--log-file`` / ``--access-log-file``
name files. Files are opened in append mode and reopened on SIGUSR1 (``reopen_log_files``),
so that logrotate can move them away and signal the server (its ``postrotate`` step).
Worker processes inherit the open files from the supervisor; each process reopens its own.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
from typing import Any

from ftserver.config import Config, ConfigError

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
#: The access log's formatter with ``--access-log-format`` (the line carries its own time, ``%(t)s``).
ACCESS_RAW_FORMAT = logging.Formatter("%(message)s")
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


def configure_logging(
    level: str,
    access_log: bool,
    log_file: str | None = None,
    access_log_file: str | None = None,
    *,
    log_config: str | None = None,
    access_log_format: str | None = None,
) -> None:
    """Install handlers on our loggers unless the user configured them already.

    ``access_log_file`` turns the access log on (there is no point naming a file otherwise).
    ``log_config`` (``--log-config``) is applied first: it decides the handlers and formats
    of what it configures; a level it leaves unset on our loggers is ``level`` (the server
    log) and INFO (the access log, when on), and a logger of ours it leaves with nowhere to
    write (no handler, none up the hierarchy) gets our own handler, so nothing is lost.
    """
    error = logging.getLogger("ftserver.error")
    access = logging.getLogger("ftserver.access")
    if log_config is not None:
        apply_log_config(log_config)
    if log_config is None or error.level == logging.NOTSET:
        error.setLevel(LEVELS[level])
    if log_config is None or access.level == logging.NOTSET:
        access.setLevel(logging.INFO if access_log or access_log_file else logging.WARNING)
    if not (error.hasHandlers() if log_config else error.handlers):
        handler: logging.Handler = _open_log_file(log_file, "log") if log_file else logging.StreamHandler(sys.stderr)
        handler.setFormatter(ERROR_FORMAT)
        error.addHandler(handler)
        error.propagate = False
    if not (access.hasHandlers() if log_config else access.handlers):
        handler = _open_log_file(access_log_file, "access log") if access_log_file else AccessStreamHandler(sys.stdout)
        handler.setFormatter(ACCESS_RAW_FORMAT if access_log_format else ACCESS_FORMAT)
        access.addHandler(handler)
        access.propagate = False


def configure_logging_for(config: Config, files: bool = True) -> None:
    """``configure_logging`` with a ``Config``'s options (``files=False``: not its log files)."""
    configure_logging(
        config.log_level,
        config.access_log,
        config.log_file if files else None,
        config.access_log_file if files else None,
        log_config=config.log_config,
        access_log_format=config.access_log_format,
    )


def _open_log_file(path: str, what: str) -> ReopenableFileHandler:
    try:
        return ReopenableFileHandler(path)
    except OSError as exc:  # one readable line at start-up, as for --pid-file
        raise ConfigError(f"cannot write {what} file {path}: {exc.strerror or exc}") from None


def access_line_writer(logger: logging.Logger, raw: bool = False) -> _LineWriter | None:
    """The handler that workers may write formatted access lines to directly: the one we
    installed, when it is the access logger's only destination. ``None`` when the access
    log is off or the application's logging configuration added handlers, filters or
    another format: each line then goes through ``logger.info`` as a normal record.
    ``raw``: the lines come from ``--access-log-format`` (no time prefix)."""
    if not logger.isEnabledFor(logging.INFO) or logger.filters or logger.propagate:
        return None
    if len(logger.handlers) != 1:
        return None
    handler = logger.handlers[0]
    expected = ACCESS_RAW_FORMAT if raw else ACCESS_FORMAT
    if not isinstance(handler, _LineWriter) or handler.filters or handler.formatter is not expected:  # type: ignore[attr-defined]
        return None
    if handler.level > logging.INFO:  # type: ignore[attr-defined]
        return None
    return handler


def apply_log_config(path: str) -> None:
    """Apply ``--log-config``: a ``dictConfig`` in JSON (``.json``) or YAML (``.yaml``,
    ``.yml``; needs PyYAML), else a ``fileConfig`` (``.ini``, ``.conf``...). A file that
    cannot be read or applied is a ``ConfigError`` (one line at start-up)."""
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                _dict_config(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise ConfigError(f"log_config: {path!r} is YAML, which needs PyYAML (pip install pyyaml); or write it as JSON") from None
            with open(path, encoding="utf-8") as file:
                _dict_config(yaml.safe_load(file))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - json/yaml/configparser/dictConfig errors alike
        raise ConfigError(f"log_config: cannot apply {path!r}: {exc}") from None


def _dict_config(config: Any) -> None:
    """``dictConfig``, except that loggers the file does not name keep working
    (``disable_existing_loggers`` defaults to false here: our own loggers exist already)."""
    if not isinstance(config, dict):
        raise ConfigError(f"log_config: must hold a mapping (a dictConfig), got {type(config).__name__}")
    config.setdefault("disable_existing_loggers", False)
    logging.config.dictConfig(config)


_said: dict[tuple[str, int], object] = {}
_said_lock = threading.Lock()


def first_in_process(what: str, about: object) -> bool:
    """True the first time in this process that ``what`` is said of ``about`` (an object
    kept alive here, so its id is not reused): for a start-up line every worker thread would
    log. Not for the request path (a lock)."""
    with _said_lock:
        first = (what, id(about)) not in _said
        _said[(what, id(about))] = about
    return first


def reopen_log_files() -> int:
    """Reopen every log file our loggers write to (SIGUSR1); return how many."""
    count = 0
    for name in ("ftserver.error", "ftserver.access"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, ReopenableFileHandler):
                handler.reopen()
                count += 1
    return count
