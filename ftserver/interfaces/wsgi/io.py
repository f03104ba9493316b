"""The PEP 3333 streams an application gets in its environ ("Input and Error Streams",
"Optional Platform-Specific File Handling").

- ``WSGIInput`` (``wsgi.input``): the request body as the loop receives it, read by the
  handler thread; ``EmptyInput`` for a request without a body;
- ``ErrorStream`` (``wsgi.errors``): lines to the ``ftserver.error`` logger;
- ``FileWrapper`` (``wsgi.file_wrapper``): a file response, sent with ``sendfile`` if it can be.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ftserver.interfaces.wsgi.bridge import LoopInbox, held_lock

logger = logging.getLogger("ftserver.error")

#: Consumed request-body bytes reported to the driver in one go (flow control).
CONSUMED_REPORT = 64 * 1024


class ErrorStream:
    """``wsgi.errors``: text written by the application goes to the ``ftserver.error``
    logger, one record per line (PEP 3333 "Input and Error Streams"). One per handler
    thread; a partial line is kept (``pending``) until its newline, ``flush()`` or the
    request's end."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = ""

    def write(self, s: str) -> int:
        if type(s) is not str:
            raise TypeError(f"wsgi.errors.write() takes str, got {type(s).__name__}")
        text = self.pending + s
        if "\n" in text:
            *lines, text = text.split("\n")
            for line in lines:
                _log_line(line)
        self.pending = text
        return len(s)

    def writelines(self, seq: Iterable[str]) -> None:
        for s in seq:
            self.write(s)

    def flush(self) -> None:
        if self.pending:
            _log_line(self.pending)
            self.pending = ""


def _ignore(args: tuple[int, bool]) -> None:
    """(``WSGIInput`` reports outside the app's run)"""


def _log_line(line: str) -> None:
    """One ``wsgi.errors`` line to the ``ftserver.error`` logger's handlers.

    Not ``logger.error()``: since 3.13.4, ``Logger.handle`` and ``isEnabledFor`` drop a
    record that comes while any logger of the same thread is handling one, and an
    application's own log handler writing to ``wsgi.errors`` (Flask's default one, which
    also prints its error tracebacks) is exactly that. ``callHandlers`` has no such guard.
    """
    if not logger.disabled and logger.manager.disable < logging.ERROR >= logger.getEffectiveLevel():
        record = logger.makeRecord(logger.name, logging.ERROR, "wsgi.errors", 0, "%s", (line,), None)
        if logger.filter(record):
            logger.callHandlers(record)


class FileWrapper:
    """``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling").

    Returned by the application as its response, it is sent with ``sendfile`` when the
    file is a regular file opened in binary mode and the connection a plain (not TLS)
    socket; otherwise it is iterated, ``blksize`` bytes per read. ``close()`` closes the
    file.
    """

    __slots__ = ("filelike", "blksize")

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        size = self.blksize
        while True:
            data = read(size)
            if not data:
                return
            yield data

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class WSGIInput:
    """``wsgi.input``: the request body as it arrives (PEP 3333 "Input and Error Streams").

    The loop thread feeds chunks (``feed``/``end``/``fail``); the handler thread reads.
    ``read(size)`` returns ``size`` bytes unless the body ends first; ``read()`` the rest;
    ``readline(limit)``, ``readlines(hint)`` and iteration split lines. The end is the
    Content-Length or the last chunk of a chunked body, so reading past it returns
    ``b""`` and never blocks. A client that disconnects mid-body makes reads raise
    ``ClientDisconnected`` (an ``OSError``); one that stalls for ``--timeout-io``,
    ``TimeoutError``.
    """

    __slots__ = (
        "_lock",
        "_chunks",
        "_done",
        "_error",
        "_waiter",
        "_consumed",
        "_inbox",
        "_buf",
        "_unreported",
        "timed_out",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: Any = None  # a held lock the handler waits on, released by the loop
        # Handler-side state. ``consumed((nbytes, want_more))`` is posted to the loop: the
        # handler took ``nbytes`` more, and waits for more if ``want_more`` (``attach``).
        self._consumed: Callable[[tuple[int, bool]], None] = _ignore
        self._inbox: LoopInbox | None = None
        self._buf = b""
        self._unreported = 0
        self.timed_out = False  # the client stalled for --timeout-io: the rest will not come

    # -- loop side ---------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        with self._lock:
            self._chunks.append(data)
            waiter = self._waiter
            self._waiter = None
        if waiter is not None:
            waiter.release()

    def end(self) -> None:
        with self._lock:
            self._done = True
            waiter = self._waiter
            self._waiter = None
        if waiter is not None:
            waiter.release()

    def fail(self, error: BaseException, timed_out: bool = False) -> None:
        """Reads raise ``error`` once the bytes already received are taken; ``timed_out``:
        the client stalled for ``--timeout-io`` (the driver's body timeout)."""
        with self._lock:
            if self._error is None:
                self._error = error
                self.timed_out = timed_out
            waiter = self._waiter
            self._waiter = None
        if waiter is not None:
            waiter.release()

    # -- handler side ------------------------------------------------------------------

    def attach(self, inbox: LoopInbox, consumed: Callable[[tuple[int, bool]], None]) -> None:
        """On the handler thread, before the app reads: where to post, and what."""
        self._inbox = inbox
        self._consumed = consumed

    def detach(self) -> None:
        """On the handler thread, once the app is done: reports go nowhere (and the input no
        longer refers to its exchange, which refers to it: no cycle for the GC)."""
        self._consumed = _ignore

    def _take(self) -> bytes:
        """The next received bytes (all that are buffered), ``b""`` at the end of the body."""
        lock = self._lock
        while True:
            with lock:
                chunks = self._chunks
                if chunks:
                    data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                    chunks.clear()
                elif self._done:
                    return b""
                elif self._error is not None:
                    raise self._error
                else:
                    data = None
                    waiter = self._waiter = held_lock()
            if data is not None:
                self._unreported += len(data)
                if self._unreported >= CONSUMED_REPORT:
                    self._inbox.post(self._consumed, (self._unreported, False))  # type: ignore[union-attr]
                    self._unreported = 0
                return data
            # Nothing buffered: report what was consumed (the driver resumes reading) and
            # ask for more (100 Continue if the client waits for it). The wait ends with
            # data, the end, or an error: a client that stalls meets the driver's body
            # timeout, which fails this input with a TimeoutError.
            self._inbox.post(self._consumed, (self._unreported, True))  # type: ignore[union-attr]
            self._unreported = 0
            waiter.acquire()

    def read(self, size: int | None = -1) -> bytes:
        buf = self._buf
        if size is None or size < 0:
            parts = [buf]
            while True:
                data = self._take()
                if not data:
                    break
                parts.append(data)
            self._buf = b""
            return b"".join(parts)
        if len(buf) < size:
            parts = [buf]
            have = len(buf)
            while have < size:
                data = self._take()
                if not data:
                    break
                parts.append(data)
                have += len(data)
            buf = b"".join(parts)
        self._buf = buf[size:]
        return buf[:size]

    def readline(self, limit: int | None = -1) -> bytes:
        if limit is None:
            limit = -1
        buf: bytes | bytearray = self._buf
        start = 0
        while True:
            end = buf.find(b"\n", start) + 1
            if end:
                break
            if 0 <= limit <= len(buf):
                end = limit
                break
            start = len(buf)
            data = self._take()
            if not data:
                end = len(buf)
                break
            if type(buf) is bytes:
                buf = bytearray(buf)
            buf += data  # a long line gathers in a bytearray: linear, not quadratic
        if 0 <= limit < end:
            end = limit
        line = bytes(buf[:end])
        self._buf = bytes(buf[end:])
        return line

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class EmptyInput:
    """``wsgi.input`` of a request without a body (one per handler thread)."""

    __slots__ = ()

    timed_out = False  # as ``WSGIInput.timed_out``: there is nothing to wait for

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, limit: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())
