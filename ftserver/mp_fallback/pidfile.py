"""``--pid-file``: the server's process id in a file, written at start and removed at exit.

Used by the supervisor and by ``--no-supervisor`` alike (``ftserver.api.serve``).
"""

from __future__ import annotations

import logging
import os

from ftserver.startup import SupervisorError

logger = logging.getLogger("ftserver.error")


class PidFile:
    """``--pid-file``: written at start, removed at exit; refuses a live process's file."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.written = False

    def __enter__(self) -> PidFile:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        path = self.path
        if path is None:
            return
        other = self._read()
        if other is not None and other != os.getpid() and _pid_exists(other):
            raise SupervisorError(f"pid file {path} names a running process (pid {other}): is the server already running? Stop it, or remove the file if that process is not ftserve")
        if other is not None:
            logger.info("pid file %s was stale (pid %d is not running): replacing it", path, other)
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w") as f:
                f.write(f"{os.getpid()}\n")
            os.replace(temporary, path)
        except OSError as exc:
            raise SupervisorError(f"cannot write pid file {path}: {exc.strerror}") from None
        self.written = True

    def release(self) -> None:
        if self.written and self.path is not None and self._read() == os.getpid():
            try:
                os.unlink(self.path)
            except OSError:
                pass
        self.written = False

    def _read(self) -> int | None:
        try:
            with open(self.path) as f:  # type: ignore[arg-type]
                text = f.read().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SupervisorError(f"cannot read pid file {self.path}: {exc.strerror}") from None
        try:
            return int(text)
        except ValueError:
            raise SupervisorError(f"pid file {self.path} does not hold a process id ({text[:40]!r}); remove it or choose another --pid-file") from None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
