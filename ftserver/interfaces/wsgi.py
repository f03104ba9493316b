"""WSGI (PEP 3333) on the stream contract: handlers run on a pool of blocking threads.

Each worker thread (one event loop) owns a ``WSGIAdapter`` with ``--blocking-threads``
handler threads. The loop parses requests and hands each ``WSGIExchange`` to the pool
through a queue; a handler thread builds the environ, calls the application and iterates
its response. Everything that touches the connection goes back to the loop through the
worker's ``LoopInbox``: one ``call_soon_threadsafe`` wakes the loop for a whole batch of
calls, so a small response costs one wake-up (head, body and end travel together).

What crosses threads, and how:

- request body: the loop appends received chunks to the exchange's ``WSGIInput`` (a
  lock-protected deque) and wakes a handler that waits for them; the handler reports what it
  consumed so the driver resumes reading (``body_consumed``) and asks for more
  (``want_body``, which also sends ``100 Continue``). The body is never buffered whole:
  at most the driver's read window (256 KiB) waits in memory.
- response: the handler posts the head and body chunks to the loop. After each
  ``WRITE_WINDOW`` bytes, or when the transport is paused, it waits until the loop has
  written them and the transport has drained (write backpressure).
- the end: the last body chunk and the end of the response go in one post; the iterable's
  ``close()`` runs on the handler thread afterwards (always, also after errors).

A stalled client (no body bytes, or not reading the response) makes the waiting handler
give up after ``--timeout-io`` seconds with a ``TimeoutError`` (an ``OSError``), so handler
threads are never parked for ever.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import os
import queue
import re
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ftserver import __version__
from ftserver.interfaces.asgi import ClientDisconnected, _origin_form
from ftserver.interfaces.stream import ConnectionInfo, HTTPStream
from ftserver.protocols.http1 import reason_phrase

if TYPE_CHECKING:
    from ftserver.config import Config
    from ftserver.protocols.events import Request

logger = logging.getLogger("ftserver.error")

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
#: A response status as the driver takes it: the code, and the app's reason phrase
#: (``None`` when it is the standard one, or absent).
Status = tuple[int, bytes | None]

#: Response bytes a handler hands to the loop before it waits for them to be written.
WRITE_WINDOW = 256 * 1024
#: Consumed request-body bytes reported to the driver in one go (flow control).
CONSUMED_REPORT = 64 * 1024
#: Bytes per ``loop.sendfile`` call, so that a stalled client is noticed between calls.
SENDFILE_SEGMENT = 1024 * 1024

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UNSAFE_VALUE_RE = re.compile(r"[\r\n\x00]")
_STATUS_RE = re.compile(r"([0-9]{3})(?: (.*))?", re.DOTALL)
# reason-phrase = *( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4), in a latin-1 str.
_REASON_PHRASE_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_search_unsafe = _UNSAFE_VALUE_RE.search

_allocate_lock = threading.Lock

#: What a client whose request body stalled for --timeout-io gets (then the close).
_BODY_TIMEOUT_RESPONSE: tuple[Status, list[tuple[bytes, bytes]], bytes] = (
    (408, None),
    [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
    b"request body not received in time\n",
)


class LoopInbox:
    """Calls from handler threads to run on the worker's event loop, in order, batched.

    ``post`` appends under a lock and wakes the loop only when no batch is scheduled yet,
    so a burst of posts (from one handler or several) costs one ``call_soon_threadsafe``.
    """

    __slots__ = ("loop", "lock", "items", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.items: list[tuple[Callable[[Any], None], Any]] = []
        self.scheduled = False

    def post(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Run ``fn(arg)`` on the loop (from any thread)."""
        with self.lock:
            self.items.append((fn, arg))
            if self.scheduled:
                return
            self.scheduled = True
        try:
            self.loop.call_soon_threadsafe(self.run)
        except RuntimeError:  # the loop is closed: the worker is gone, nobody to answer
            pass

    def run(self) -> None:
        lock = self.lock
        while True:
            with lock:
                items = self.items
                if not items:
                    self.scheduled = False
                    return
                self.items = []
            for fn, arg in items:
                try:
                    fn(arg)
                except Exception:  # noqa: BLE001 - one exchange's failure must not stop the others
                    logger.exception("internal error while handling a WSGI response")


class JobQueue:
    """Requests waiting for a handler thread of one worker.

    A parked handler is woken only when no other handler is already on its way to the
    queue: a burst of quick requests is taken by handlers that are running or waking
    rather than waking one thread per request (each wake-up is a context switch). A
    handler that takes a job and sees more queued wakes the next one, so slow requests
    still spread over the whole pool at once. The most recently parked handler wakes
    first (its caches are warm).
    """

    __slots__ = ("_lock", "_jobs", "_parked", "_waking")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: collections.deque[Any] = collections.deque()
        self._parked: list[Any] = []  # the held wake locks of parked handlers
        self._waking = 0  # handlers woken that have not looked at the queue yet

    def put(self, job: Any) -> None:
        with self._lock:
            self._jobs.append(job)
            if self._waking or not self._parked:
                return
            self._waking += 1
            waker = self._parked.pop()
        waker.release()

    def get(self, parker: Any, timeout: float) -> Any:
        """The next job; ``parker`` is the caller's own lock, held. Raises ``queue.Empty``
        after ``timeout`` seconds without a job."""
        lock = self._lock
        jobs = self._jobs
        with lock:
            found = bool(jobs)
            if found:
                job = jobs.popleft()
                waker = self._next_waker()
            else:
                self._parked.append(parker)
        if found:
            if waker is not None:
                waker.release()
            return job
        while True:
            if not parker.acquire(timeout=timeout):
                with lock:
                    if parker in self._parked:
                        self._parked.remove(parker)
                        raise queue.Empty
                parker.acquire()  # we were picked just now: take the wake-up
            with lock:
                self._waking -= 1
                found = bool(jobs)
                if found:
                    job = jobs.popleft()
                    waker = self._next_waker()
                else:  # another handler took it first: park again
                    self._parked.append(parker)
            if found:
                if waker is not None:
                    waker.release()
                return job

    def _next_waker(self) -> Any:
        """With the lock held, after taking a job: wake one more if work is left."""
        if self._jobs and self._parked and not self._waking:
            self._waking += 1
            return self._parked.pop()
        return None


class ErrorStream:
    """``wsgi.errors``: text written by the application goes to the ``ftserver.error``
    logger, one record per line (PEP 3333 "Input and Error Streams"). One per handler
    thread; a partial line is kept until its newline, ``flush()`` or the request's end."""

    __slots__ = ("_partial",)

    def __init__(self) -> None:
        self._partial = ""

    def write(self, s: str) -> int:
        if type(s) is not str:
            raise TypeError(f"wsgi.errors.write() takes str, got {type(s).__name__}")
        text = self._partial + s
        if "\n" in text:
            *lines, text = text.split("\n")
            for line in lines:
                logger.error("%s", line)
        self._partial = text
        return len(s)

    def writelines(self, seq: Iterable[str]) -> None:
        for s in seq:
            self.write(s)

    def flush(self) -> None:
        if self._partial:
            logger.error("%s", self._partial)
            self._partial = ""


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

    __slots__ = ("_exchange", "_lock", "_chunks", "_done", "_error", "_waiter", "_buf", "_unreported", "_timeout")

    def __init__(self, exchange: WSGIExchange) -> None:
        self._exchange = exchange
        self._lock = threading.Lock()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: Any = None  # a held lock the handler waits on, released by the loop
        # Handler-side state.
        self._buf = b""
        self._unreported = 0
        self._timeout = 60.0

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

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = error
            waiter = self._waiter
            self._waiter = None
        if waiter is not None:
            waiter.release()

    # -- handler side ------------------------------------------------------------------

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
                    waiter = self._waiter = _allocate_lock()
                    waiter.acquire()
            if data is not None:
                self._unreported += len(data)
                if self._unreported >= CONSUMED_REPORT:
                    self._exchange.post_consumed(self._unreported, False)
                    self._unreported = 0
                return data
            # Nothing buffered: report what was consumed (the driver resumes reading) and
            # ask for more (100 Continue if the client waits for it).
            self._exchange.post_consumed(self._unreported, True)
            self._unreported = 0
            if not waiter.acquire(timeout=self._timeout):
                with lock:
                    if self._waiter is waiter:  # not woken meanwhile: the client stalled
                        self._waiter = None
                        self._error = TimeoutError(f"request body: no data received for {self._timeout:g} s")
                        self._exchange.read_timed_out = True

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


class _EmptyInput:
    """``wsgi.input`` of a request without a body."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, limit: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


class HandlerContext:
    """What one handler thread needs; created in that thread, used only by it."""

    __slots__ = (
        "app",
        "inbox",
        "loop",
        "base",
        "header_keys",
        "response_names",
        "statuses",
        "errors",
        "empty_input",
        "timeout",
        "context",
    )

    def __init__(self, adapter: WSGIAdapter) -> None:
        self.app = adapter.app
        self.inbox = adapter.inbox
        self.loop = adapter.loop
        self.timeout = adapter.timeout_io
        self.errors = ErrorStream()
        self.empty_input = _EmptyInput()
        self.base: Environ = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": adapter.multiprocess,
            "wsgi.run_once": False,
            "wsgi.errors": self.errors,
            "wsgi.file_wrapper": FileWrapper,
            # Reading wsgi.input to its end is safe (it stops at the end of the body), so
            # chunked uploads work in frameworks that honour this (Werkzeug/Flask; Django
            # reads CONTENT_LENGTH bytes only).
            "wsgi.input_terminated": True,
            "SCRIPT_NAME": adapter.root_path,
            "SERVER_SOFTWARE": f"ftserver/{__version__}",
        }
        self.header_keys: dict[bytes, str] = {}  # b"user-agent" -> "HTTP_USER_AGENT"
        # What start_response has validated before: "Content-Type" -> b"Content-Type",
        # "200 OK" -> (200, None), "200 Fine" -> (200, b"Fine") (an app uses few names and
        # statuses; caches stay small).
        self.response_names: dict[str, bytes] = {}
        self.statuses: dict[str, Status] = {}
        self.context = contextvars.copy_context()

    def header_key(self, name: bytes) -> str:
        """The environ key for header ``name`` (lower-case bytes); ``""`` to leave it out.

        A name with ``_`` is left out: it would share its key with the ``-`` spelling and
        could pass for a header a proxy in front vouches for (as nginx and Gunicorn do).
        """
        if name == b"content-type":
            key = "CONTENT_TYPE"
        elif name == b"content-length":
            key = "CONTENT_LENGTH"
        elif b"_" in name:
            key = ""
        else:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(self.header_keys) < 512:
            self.header_keys[name] = key
        return key

    def response_name(self, name: Any) -> bytes:
        """A response header name from the app, checked (a str holding a token) and encoded."""
        if type(name) is not str:
            raise TypeError(f"WSGI: header names must be str, got {name!r}")
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"WSGI: header name {name!r} is not a token")
        encoded = name.encode("latin-1")
        if len(self.response_names) < 512:
            self.response_names[name] = encoded
        return encoded

    def parse_status(self, status: Any) -> Status:
        """The code (200-999) and reason phrase of a PEP 3333 status string ("200 OK").

        The reason goes to the client as the app wrote it, as other PEP 3333 servers do
        (``None`` when it is the standard phrase, or absent: the writer's own then). It may
        not hold CR, LF or other control characters (RFC 9112 §4; PEP 3333 "The
        start_response() Callable"): a status that does is the app's error, like a
        malformed one.
        """
        if type(status) is not str:
            raise TypeError(f"WSGI: status must be a str, got {type(status).__name__}")
        match = _STATUS_RE.fullmatch(status)
        if match is None:
            raise ValueError(f"WSGI: status must be 'NNN reason', got {status!r}")
        code = int(match.group(1))
        if code < 200:
            raise ValueError(f"WSGI: an informational (1xx) status cannot be the response status: {status!r}")
        text = match.group(2)
        reason = None
        if text is not None:
            if _REASON_PHRASE_RE.fullmatch(text) is None:
                raise ValueError(
                    "WSGI: a reason phrase holds tabs, spaces, visible characters and latin-1"
                    f" obs-text, no CR, LF or other control characters (RFC 9112 §4): {status!r}"
                )
            reason = text.encode("latin-1")
            if reason == reason_phrase(code):
                reason = None
        parsed = (code, reason)
        if len(self.statuses) < 256:
            self.statuses[status] = parsed
        return parsed


class WSGIExchange:
    """One request/response exchange of a WSGI application (PEP 3333).

    Created and fed on the loop thread (the ``Exchange`` contract of
    ``ftserver.interfaces.stream``); ``handle`` runs on a handler thread, and methods named
    ``_loop_*`` run on the loop, posted through the ``LoopInbox``. Attributes the driver
    reads (``status``, ``headers``, ``started``, ...) are written on the loop only.
    """

    __slots__ = (
        # loop side (the driver's view)
        "stream",
        "request",
        "info",
        "input",
        "complete",
        "disconnected",
        "started",
        "body_sent",
        "status",
        "headers",
        "response_bytes",
        "reported",
        "task",
        "body_received",
        "body_complete",
        "held",
        "held_progress",
        "held_timer",
        # written by one side, read by the other
        "stopped",
        "read_timed_out",
        "sendfile_progress",
        # handler side
        "ctx",
        "is_head",
        "out_status",
        "out_headers",
        "headers_sent",
        "window",
    )

    def __init__(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> None:
        self.stream = stream
        self.request = request
        self.info = info
        self.input: WSGIInput | None = None if body_done else WSGIInput(self)
        self.complete = False
        self.disconnected = False
        self.started = False
        self.body_sent = False
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.response_bytes = 0
        self.reported = False  # stream.app_finished was called
        self.task: asyncio.Task[None] | None = None
        self.body_received = 0
        self.body_complete = body_done
        # While the body is read on the loop before the app gets a thread: the adapter.
        self.held: WSGIAdapter | None = None
        self.held_progress = 0.0  # loop time of the last body bytes while held
        self.held_timer: asyncio.TimerHandle | None = None
        self.stopped = False  # no more response data is wanted: client gone or response failed
        self.read_timed_out = False
        self.sendfile_progress = 0
        self.out_status: Status = (0, None)
        self.out_headers: list[tuple[bytes, bytes]] | None = None
        self.headers_sent = False
        self.window = 0

    # -- driver side (loop thread) -----------------------------------------------------

    def run(self, worker: Any) -> None:
        """Queue the request for a handler thread, or first read its body here.

        A handler thread reading a body from a slow (or malicious, "slow POST") client would
        be held for as long as the client likes; a few such clients would hold them all.
        So a body of up to ``--wsgi-body-buffer`` bytes is read on the loop, where waiting
        costs only the bytes, before the app runs (``_release``); a longer one is handed
        over after that many bytes. A client that waits for ``100 Continue`` gets it now.
        """
        adapter = worker.interface
        limit = adapter.body_buffer
        if (
            self.body_complete
            or not limit
            or self.body_received >= limit
            or (self.request.content_length or 0) > limit
        ):
            adapter.jobs.put(self)
            return
        self.held = adapter
        loop = adapter.loop
        self.held_progress = loop.time()
        self.held_timer = loop.call_later(adapter.timeout_io, self._held_check)
        self.stream.want_body(self)

    def on_body(self, data: bytes) -> None:
        self.input.feed(data)  # type: ignore[union-attr]
        self.body_received += len(data)
        held = self.held
        if held is not None:
            if self.body_received >= held.body_buffer:
                self._release()
            else:
                self.held_progress = held.loop.time()  # type: ignore[union-attr]

    def on_body_end(self) -> None:
        self.body_complete = True
        if self.input is not None:
            self.input.end()
        if self.held is not None:
            self._release()

    def on_disconnect(self) -> None:
        self.disconnected = True
        self.stopped = True
        if self.held is not None:  # never handed over: no app runs for it
            self._unhold()
        if self.input is not None:
            self.input.fail(ClientDisconnected("client disconnected before the request body was complete"))

    def _release(self) -> None:
        adapter = self.held
        self._unhold()
        adapter.jobs.put(self)  # type: ignore[union-attr]

    def _unhold(self) -> None:
        # Cancelled, the timer lets go of this exchange now rather than --timeout-io later.
        self.held = None
        timer = self.held_timer
        if timer is not None:
            self.held_timer = None
            timer.cancel()

    def _held_check(self) -> None:
        """``--timeout-io`` after the body was last seen growing: 408 if it still has not."""
        adapter = self.held
        if adapter is None:
            return
        loop = adapter.loop
        idle = loop.time() - self.held_progress  # type: ignore[union-attr]
        if idle < adapter.timeout_io:
            self.held_timer = loop.call_later(adapter.timeout_io - idle, self._held_check)  # type: ignore[union-attr]
            return
        self._unhold()
        self.read_timed_out = True
        logger.info("request body from %s: no data for %g s (408)", self.info.client, adapter.timeout_io)
        self._loop_end(_BODY_TIMEOUT_RESPONSE)

    # -- the application (handler thread) ----------------------------------------------

    def handle(self, ctx: HandlerContext) -> None:
        """Run the application for this request on the calling handler thread."""
        self.ctx = ctx
        self.is_head = self.request.method == "HEAD"
        ctx.context.copy().run(self._handle, ctx)
        if ctx.errors._partial:
            ctx.errors.flush()

    def _handle(self, ctx: HandlerContext) -> None:
        result = None
        error: BaseException | None = None
        try:
            result = ctx.app(self._environ(ctx), self.start_response)
            self._respond(result)
        except BaseException as exc:  # noqa: BLE001 - the app's mistake: a 500 or a close
            error = exc
        if result is not None:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:  # noqa: BLE001
                    if error is None and self.headers_sent and not self.stopped:
                        # The response went out complete; only the clean-up failed.
                        logger.error("Exception in close() of the WSGI response iterable", exc_info=exc)
                    else:
                        error = error or exc
        if error is None:
            return
        if self.read_timed_out and not self.headers_sent and not self.disconnected:
            # The app gave up on a stalled request body: say so, and close the connection.
            logger.info("request body from %s timed out: %s", self.info.client, error)
            self.headers_sent = True
            ctx.inbox.post(self._loop_end, _BODY_TIMEOUT_RESPONSE)
            return
        ctx.inbox.post(self._loop_finished, error)

    def _environ(self, ctx: HandlerContext) -> Environ:
        """The environ of PEP 3333 "environ Variables" for this request."""
        request = self.request
        info = self.info
        environ = ctx.base.copy()
        target = request.target
        if target[:1] != b"/":
            target = _origin_form(target)
        raw_path, _, query = target.partition(b"?")
        if b"%" in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        # Native strings hold the bytes as latin-1 (PEP 3333 "Unicode Issues"): a UTF-8
        # path arrives as its bytes, which the app decodes (as Werkzeug and Django do).
        environ["PATH_INFO"] = raw_path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["REQUEST_URI"] = request.target.decode("latin-1")
        environ["REQUEST_METHOD"] = request.method
        environ["SERVER_PROTOCOL"] = "HTTP/1.1" if request.http_version == "1.1" else "HTTP/" + request.http_version
        environ["wsgi.url_scheme"] = scheme = info.scheme
        environ["wsgi.input"] = self.input if self.input is not None else ctx.empty_input
        if self.input is not None:
            self.input._timeout = ctx.timeout
        keys = ctx.header_keys
        for name, value in request.headers:
            key = keys.get(name)
            if key is None:
                key = ctx.header_key(name)
            if not key:
                continue
            text = value.decode("latin-1")
            if key in environ:
                # Repeated fields combine as one comma-separated list (RFC 9110 §5.3);
                # cookies with "; " (RFC 6265 §5.4).
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + text
            else:
                environ[key] = text
        server = info.server
        if server is not None and server[1] is not None:
            environ["SERVER_NAME"] = server[0]
            environ["SERVER_PORT"] = str(server[1])
        else:  # a Unix socket: the Host header is the best name there is
            name = environ.get("HTTP_HOST") or "localhost"
            head, sep, port = name.rpartition(":")
            if sep and port.isdigit():
                name = head
            else:
                port = "443" if scheme == "https" else "80"
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port
        client = info.client
        if client is not None:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        return environ

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``: keep the status and headers until the first body
        bytes. With ``exc_info`` it replaces them, unless they were sent: then the
        exception is raised again (the app cannot take back what the client has)."""
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.out_headers is not None:
            raise AssertionError("WSGI: start_response() called a second time without exc_info")
        ctx = self.ctx
        parsed = ctx.statuses.get(status) if type(status) is str else None
        if parsed is None:
            parsed = ctx.parse_status(status)
        names = ctx.response_names
        encoded = []
        for name, value in headers:
            encoded_name = names.get(name) if type(name) is str else None
            if encoded_name is None:
                encoded_name = ctx.response_name(name)
            if type(value) is not str:
                raise TypeError(f"WSGI: header values must be str, got {value!r} for {name!r}")
            if _search_unsafe(value) is not None:
                raise ValueError(f"WSGI: header {name!r} has a value with CR, LF or NUL")
            encoded.append((encoded_name, value.encode("latin-1")))
        self.out_status = parsed
        self.out_headers = encoded
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333 ``write()``: the data is on its way (or buffered) when this returns."""
        if type(data) is not bytes:
            data = _as_bytes(data)
        if self.out_headers is None:
            raise AssertionError("WSGI: write() called before start_response()")
        if data:
            self._send(data)

    def _respond(self, result: Iterable[bytes]) -> None:
        kind = type(result)
        if (kind is list or kind is tuple) and len(result) == 1 and not self.headers_sent:  # type: ignore[arg-type]
            # The whole body is known: head, body and end in one hop, with a content-length.
            body = result[0]  # type: ignore[index]
            if type(body) is not bytes:
                body = _as_bytes(body)
            self._finish(body, len(body))
            return
        if kind is FileWrapper and not self.headers_sent:
            if self._try_sendfile(result):  # type: ignore[arg-type]
                return
        for data in result:
            if type(data) is not bytes:
                data = _as_bytes(data)
            if data:
                if self.out_headers is None:
                    raise AssertionError("WSGI: the response iterable yielded data before start_response()")
                self._send(data)
        self._finish(b"")

    def _send(self, data: bytes) -> None:
        if self.stopped:
            self._raise_stopped()
        inbox = self.ctx.inbox
        if self.is_head:
            data = b""
        if self.headers_sent:
            inbox.post(self._loop_send, data)
        else:
            self.headers_sent = True
            headers = self.out_headers
            if self.read_timed_out:  # the rest of the body will not come: do not wait for it
                headers = [*headers, (b"connection", b"close")]  # type: ignore[misc]
            inbox.post(self._loop_start, (self.out_status, headers, data))
        self.window += len(data)
        if self.window > WRITE_WINDOW or self.stream.write_paused:
            self._sync()

    def _finish(self, body: bytes, length: int | None = None) -> None:
        """The last body bytes and the end of the response; ``length``: the whole body's
        length when it is known before anything was sent."""
        if self.stopped:
            self._raise_stopped()
        if self.is_head:
            body = b""
        if self.headers_sent:
            self.ctx.inbox.post(self._loop_end, body)
            return
        headers = self.out_headers
        if headers is None:
            raise RuntimeError("WSGI: the application returned without calling start_response()")
        if self.is_head and length is not None and not _has_field(headers, b"content-length"):
            # The same head a GET would get (RFC 9110 §9.3.2): the writer only declares the
            # length of bodies it sends, and a HEAD response has none.
            headers = [*headers, (b"content-length", str(length).encode("ascii"))]
        if self.read_timed_out:
            headers = [*headers, (b"connection", b"close")]
        self.headers_sent = True
        self.ctx.inbox.post(self._loop_end, (self.out_status, headers, body))

    def _sync(self) -> None:
        """Wait until the loop has written what this handler posted and the transport is
        no longer paused (write backpressure)."""
        waiter = _allocate_lock()
        waiter.acquire()
        self.ctx.inbox.post(self._loop_drain, waiter)
        if not waiter.acquire(timeout=self.ctx.timeout):
            self.ctx.inbox.post(self._loop_give_up, self.ctx.timeout)
            raise TimeoutError(f"the client did not read the response for {self.ctx.timeout:g} s")
        self.window = 0
        if self.stopped:
            self._raise_stopped()

    def _raise_stopped(self) -> None:
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        raise ConnectionAbortedError("the response was aborted (see the error above)")

    def _try_sendfile(self, wrapper: FileWrapper) -> bool:
        """Send a file response with ``sendfile``; False when that cannot be done."""
        headers = self.out_headers
        if headers is None or self.info.scheme != "http":
            return False
        filelike = wrapper.filelike
        try:
            if "b" not in getattr(filelike, "mode", "b"):
                return False
            fd = filelike.fileno()
            info = os.fstat(fd)
            offset = filelike.tell()
        except (AttributeError, OSError, ValueError):
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        count = max(0, info.st_size - offset)
        if _has_field(headers, b"transfer-encoding"):
            return False  # the app wants it chunked: the writer must frame every byte
        if self.is_head:
            self._finish(b"", count)
            return True
        if not _has_field(headers, b"content-length"):
            headers = [*headers, (b"content-length", str(count).encode("ascii"))]
        if self.stopped:
            self._raise_stopped()
        self.headers_sent = True
        waiter = _allocate_lock()
        waiter.acquire()
        self.ctx.inbox.post(self._loop_sendfile, (self.out_status, headers, filelike, offset, count, waiter))
        timeout = self.ctx.timeout
        progress = -1
        while not waiter.acquire(timeout=timeout):
            if self.sendfile_progress == progress:
                # Not one segment went out for a whole timeout: the client stalled.
                self.ctx.inbox.post(self._loop_give_up, timeout)
                waiter.acquire(timeout=timeout)
                raise TimeoutError(f"the client did not read the response for {timeout:g} s")
            progress = self.sendfile_progress
        if self.stopped:
            self._raise_stopped()
        return True

    def post_consumed(self, nbytes: int, want_more: bool) -> None:
        self.ctx.inbox.post(self._loop_consumed, (nbytes, want_more))

    # -- posted to the loop ------------------------------------------------------------

    def _loop_start(self, args: tuple[Status, list[tuple[bytes, bytes]], bytes]) -> None:
        if self.reported:
            return
        (self.status, reason), self.headers, data = args
        self.started = True
        self.response_bytes += len(data)
        try:
            self.stream.send_body(self, data, True, reason)
        except Exception as exc:  # noqa: BLE001 - e.g. a header the writer refuses
            self._loop_abort(exc)

    def _loop_send(self, data: bytes) -> None:
        if self.reported:
            return
        self.response_bytes += len(data)
        try:
            self.stream.send_body(self, data, True)
        except Exception as exc:  # noqa: BLE001 - e.g. more body than the Content-Length
            self._loop_abort(exc)

    def _loop_end(self, args: bytes | tuple[Status, list[tuple[bytes, bytes]], bytes]) -> None:
        if self.reported:
            return
        if type(args) is tuple:
            (self.status, reason), self.headers, body = args
            self.started = True
        else:
            body = args  # type: ignore[assignment]
            reason = None  # (the head has gone)
        self.response_bytes += len(body)
        self.body_sent = True
        try:
            self.stream.send_body(self, body, False, reason)
        except Exception as exc:  # noqa: BLE001
            self._loop_abort(exc)
            return
        self.complete = True
        self.reported = True
        self.stream.response_complete(self)

    def _loop_finished(self, error: BaseException | None) -> None:
        """The handler is done without completing the response."""
        if self.reported:
            return
        self.reported = True
        self.stopped = True
        self.stream.app_finished(self, error)

    def _loop_abort(self, exc: BaseException) -> None:
        """The driver refused part of the response: answer 500 or close, stop the handler."""
        self.stopped = True
        if not self.reported:
            self.reported = True
            self.stream.app_finished(self, exc)

    def _loop_give_up(self, timeout: float) -> None:
        """The client stopped reading: stop sending and drop the connection (closing
        would wait for the unread bytes to be written)."""
        logger.info("client %s read nothing for %g s: connection dropped", self.info.client, timeout)
        task = self.task
        if task is not None:
            task.cancel()
        self.disconnected = True  # as good as gone: the driver closes instead of answering
        self._loop_abort(ClientDisconnected("the client stopped reading the response"))
        self.stream.abort()

    def _loop_consumed(self, args: tuple[int, bool]) -> None:
        if self.complete or self.reported:
            return
        nbytes, want_more = args
        stream = self.stream
        if nbytes:
            stream.body_consumed(self, nbytes)
        if want_more:
            stream.want_body(self)

    def _loop_drain(self, waiter: Any) -> None:
        stream = self.stream
        if stream.write_paused and not stream.closed and not self.stopped:
            self.task = self.ctx.loop.create_task(self._drain(waiter))
        else:
            waiter.release()

    async def _drain(self, waiter: Any) -> None:
        try:
            await self.stream.drain()
        finally:
            self.task = None
            waiter.release()

    def _loop_sendfile(self, args: tuple[Status, list[tuple[bytes, bytes]], Any, int, int, Any]) -> None:
        (status, reason), headers, file, offset, count, waiter = args
        if self.reported:
            waiter.release()
            return
        self.status = status
        self.headers = headers
        self.started = True
        self.task = self.ctx.loop.create_task(self._sendfile(file, offset, count, waiter, reason))

    async def _sendfile(self, file: Any, offset: int, count: int, waiter: Any, reason: bytes | None) -> None:
        stream = self.stream
        try:
            sent = await stream.send_file(self, file, offset, min(count, SENDFILE_SEGMENT), reason)  # type: ignore[attr-defined]
            total = sent
            while sent and total < count and not self.stopped:
                self.sendfile_progress = total
                sent = await stream.send_file(self, file, offset + total, min(count - total, SENDFILE_SEGMENT))  # type: ignore[attr-defined]
                total += sent
            self.response_bytes = total
            if not self.reported:
                self.body_sent = True
                stream.send_body(self, b"", False)
                self.complete = True
                self.reported = True
                stream.response_complete(self)
        except BaseException as exc:  # noqa: BLE001 - a disconnect, a cancel after a stall
            if self.disconnected or isinstance(exc, OSError):
                exc = ClientDisconnected(f"client disconnected during sendfile: {exc!r}")
            self._loop_abort(exc)
        finally:
            self.task = None
            waiter.release()


def _has_field(headers: list[tuple[bytes, bytes]], name: bytes) -> bool:
    return any(field.lower() == name for field, _ in headers)


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"WSGI: response body data must be bytes, got {type(data).__name__}")


class WSGIAdapter:
    """WSGI on one worker thread: a pool of ``--blocking-threads`` handler threads.

    ``wsgi.multiprocess`` is the worker context's ``multiprocess`` attribute (False in
    threads mode; the process mode sets it); ``wsgi.multithread`` is always True.
    """

    exchange_class = WSGIExchange

    def __init__(self, app: WSGIApp, config: Config, label: str = "") -> None:
        self.app = app
        self.size = config.blocking_threads
        self.timeout_io = config.timeout_io
        self.body_buffer = config.wsgi_body_buffer
        self.timeout_shutdown = config.timeout_graceful_shutdown
        self.root_path = config.root_path
        self.label = label
        self.jobs = JobQueue()
        self.threads: list[threading.Thread] = []
        self.multiprocess = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.inbox: LoopInbox | None = None

    async def startup(self, worker: Any) -> None:
        self.loop = asyncio.get_running_loop()
        self.inbox = LoopInbox(self.loop)
        self.multiprocess = bool(getattr(worker, "multiprocess", False))
        prefix = threading.current_thread().name
        for index in range(self.size):
            thread = threading.Thread(target=self._serve, name=f"{prefix}-wsgi-{index}", daemon=True)
            thread.start()
            self.threads.append(thread)

    async def shutdown(self, worker: Any) -> None:
        """Stop the handler threads once they are idle; the loop keeps serving their
        last posts meanwhile. A thread still busy after ``--timeout-graceful-shutdown``
        is left behind (it is a daemon thread) with a warning."""
        for _ in self.threads:
            self.jobs.put(None)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_shutdown
        while any(t.is_alive() for t in self.threads) and loop.time() < deadline:
            await asyncio.sleep(0.02)
        busy = [t.name for t in self.threads if t.is_alive()]
        if busy:
            logger.warning("WSGI handler threads still running at shutdown%s: %s", self.label, ", ".join(busy))

    def _serve(self) -> None:
        ctx = HandlerContext(self)
        get = self.jobs.get
        parker = _allocate_lock()
        parker.acquire()
        loop = self.loop
        assert loop is not None
        while True:
            try:
                exchange = get(parker, 5.0)
            except queue.Empty:
                if loop.is_closed():  # the worker thread crashed: it will not stop us
                    return
                continue
            if exchange is None:
                return
            try:
                exchange.handle(ctx)
            except BaseException as exc:  # noqa: BLE001 - never lose a handler thread
                logger.critical("internal error in a WSGI handler thread", exc_info=exc)
                try:
                    ctx.inbox.post(exchange._loop_finished, exc)
                except Exception:  # noqa: BLE001
                    pass
