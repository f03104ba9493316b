"""Plain (non-TLS) connections driven straight from the worker's selector: ``WorkerLoop``
calls ``SocketTransport`` (an ``asyncio.Transport`` with asyncio's contract, plus
``sendfile``) with no ``Handle`` or ready queue per event (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
import struct
import sys
import termios
import time
from selectors import EVENT_READ, EVENT_WRITE
from typing import Any

logger = logging.getLogger("ftserver.error")

#: Bytes asked of ``recv`` per read event. ``recv`` allocates this much and then shrinks
#: it to what came: 64 KiB rather than asyncio's 256 KiB saves about 0.25 µs per read on
#: 3.13t (a whole request is one small read), and a large body still comes 64 KiB a read.
READ_SIZE = 64 * 1024
#: asyncio's default write-buffer limits.
HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024
#: The most bytes one ``os.sendfile`` call is asked for.
SENDFILE_CHUNK = 1 << 30
#: The ioctl that reads a socket's unacknowledged send queue (Linux's SIOCOUTQ).
_OUTQ = getattr(termios, "TIOCOUTQ", 0x5411)
#: A dropped write buffer at least this large asks the allocator to give memory back.
RELEASE_SIZE = 1 << 20


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, where it matters: builds with the GIL allocate through
    glibc, which keeps freed heap memory (measured: 50 dropped 8 MiB buffers, +271 MB
    until trimmed, +9 MB after); free-threaded builds allocate through mimalloc, which
    returns it by itself as the thread goes on allocating."""
    if getattr(sys, "_is_gil_enabled", lambda: True)() and sys.platform.startswith("linux"):
        try:
            import ctypes

            return ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            pass
    return None


_trim = _malloc_trim()
_trimmed_at = 0.0


def release_memory() -> None:
    """Give freed heap memory back to the system (at most once a second, any thread)."""
    global _trimmed_at
    now = time.monotonic()
    if _trim is not None and now - _trimmed_at >= 1.0:
        _trimmed_at = now
        _trim(0)


class WorkerLoop(asyncio.SelectorEventLoop):
    """A selector event loop that runs ``SocketTransport`` events without a ``Handle``."""

    def _process_events(self, event_list: list[Any]) -> None:
        for key, mask in event_list:
            data = key.data
            if type(data) is not tuple:  # our transports (SocketTransport, TLSTransport)
                try:
                    # Only what is still registered: an earlier callback in this batch may
                    # have paused reading or closed the connection.
                    # (1 and 2: selectors.EVENT_READ and EVENT_WRITE, as constants rather
                    # than global loads, once per event)
                    if mask & 1 and data._events & 1:
                        data._read_ready()
                    if mask & 2 and data._events & 2:
                        data._write_ready()
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # noqa: BLE001 - one connection's failure, never the loop's
                    # (BaseException too, as asyncio's Handle: a CancelledError escaping
                    # data_received must not end the worker's loop.)
                    logger.error("error on a connection; closing it", exc_info=exc)
                    data._force_close(exc)
                continue
            # asyncio's own registrations: (reader, writer) handles, as in BaseSelectorEventLoop.
            reader, writer = data
            if mask & EVENT_READ and reader is not None:
                if reader._cancelled:
                    self._remove_reader(key.fileobj)
                else:
                    self._add_callback(reader)
            if mask & EVENT_WRITE and writer is not None:
                if writer._cancelled:
                    self._remove_writer(key.fileobj)
                else:
                    self._add_callback(writer)


class SocketTransport(asyncio.Transport):
    """An asyncio transport over a connected non-blocking socket, for ``WorkerLoop``."""

    __slots__ = (
        "_loop",
        "_selector",
        "_sock",
        "_fd",
        "_protocol",
        "_buffer",
        "_events",
        "_reading",
        "_read_eof",
        "_write_eof",
        "_closing",
        "_lost",
        "_paused",
        "_high",
        "_low",
        "_waiter",
        "_sending",
        "sent_late",
    )

    def __init__(self, loop: WorkerLoop, sock: socket.socket, protocol: asyncio.Protocol) -> None:
        extra: dict[str, Any] = {"socket": sock}
        for name, get in (("peername", sock.getpeername), ("sockname", sock.getsockname)):
            try:
                extra[name] = get()
            except OSError:  # already disconnected: the protocol sees no address
                pass
        super().__init__(extra)
        self._loop = loop
        self._selector = loop._selector  # type: ignore[attr-defined]
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._buffer = bytearray()
        self._events = 0  # what the selector has registered for our fd
        self._reading = True  # not paused by the protocol
        self._read_eof = False
        self._write_eof = False
        self._closing = False
        self._lost = False  # connection_lost is scheduled (or done)
        self._paused = False  # the protocol was told pause_writing()
        self._high = HIGH_WATER
        self._low = LOW_WATER
        self._waiter: asyncio.Future[None] | None = None  # sendfile waiting for writability
        self._sending = False  # sendfile owns the socket: writes queue behind the file
        #: Bytes sent after waiting (from the buffer, or by ``sendfile``): the write progress a
        #: send timeout watches (bytes sent at once by ``write`` are not counted: no cost there).
        self.sent_late = 0

    def start(self) -> None:
        """``connection_made``, then read events (call once, on the loop's thread)."""
        self._protocol.connection_made(self)
        self._update()

    # -- events from WorkerLoop ----------------------------------------------------

    def _read_ready(self) -> None:
        try:
            data = self._sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._force_close(exc)
            return
        if data:
            self._protocol.data_received(data)
            return
        self._read_eof = True
        self._update()
        if not self._protocol.eof_received():
            self.close()

    def _write_ready(self) -> None:
        buffer = self._buffer
        if buffer and not self._sending:
            try:
                sent = self._sock.send(buffer)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._force_close(exc)
                return
            del buffer[:sent]
            self.sent_late += sent
            if self._paused and len(buffer) <= self._low:
                self._resume_protocol()  # (it may write more: the buffer is looked at after)
            if buffer:
                return
            if self._closing:
                self._connection_lost(None)
                return
            if self._write_eof:
                self._shutdown_write()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        self._update()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Hand the connection to another protocol (HTTP/1.1 → HTTP/2, a WebSocket ``Upgrade``)."""
        self._protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # -- asyncio.ReadTransport -----------------------------------------------------

    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._update()

    def resume_reading(self) -> None:
        if not self._reading:
            self._reading = True
            self._update()

    # -- asyncio.WriteTransport ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._write_eof:
            raise RuntimeError("write() after write_eof()")
        if not data or self._closing:
            return  # (asyncio still queues bytes written after close(); nothing needs that)
        buffer = self._buffer
        if not buffer and not self._sending:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._force_close(exc)
                return
            if sent == len(data):
                return
            buffer += memoryview(data)[sent:]
            self._update()
        else:
            buffer += data  # (while sending a file: it goes once the file has)
        if not self._paused and len(buffer) > self._high:
            self._pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._write_eof:
            return
        self._write_eof = True
        if not self._buffer and not self._sending:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def write_waiting(self) -> bool:
        """Whether bytes wait for the socket to become writable (buffered, or a file being
        sent): ``write_progress()`` then shows whether the client reads."""
        return bool(self._buffer) or self._waiter is not None

    def write_progress(self) -> int:
        """A count that grows while the client takes what waits for it: ``sent_late`` less
        the bytes the kernel still holds unacknowledged. (The kernel reports a socket
        writable only once much of its queue has gone, which for a slow reader can take
        longer than any timeout: its own queue shows the progress meanwhile.)"""
        try:
            queued = struct.unpack("i", fcntl.ioctl(self._fd, _OUTQ, b"\0\0\0\0"))[0]
        except OSError:
            queued = 0
        return self.sent_late - queued

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        # As asyncio: a buffer already above the new high-water mark pauses the protocol
        # now, not at the next write (there may be none). Lowering the low-water mark
        # resumes nothing: that waits for the buffer to drain.
        if not self._paused and len(self._buffer) > high:
            self._pause_protocol()

    # -- flow control: what asyncio's _FlowControlMixin does -------------------------
    #
    # A protocol whose pause_writing()/resume_writing() raises is reported to the loop's
    # exception handler and the connection carries on, as with asyncio's transports (the
    # flag stays as set: a failed pause is still followed by a resume). Only these rare
    # calls pay for the try.

    def _pause_protocol(self) -> None:
        self._paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - asyncio's rule, CancelledError included
            self._flow_control_failed("protocol.pause_writing() failed", exc)

    def _resume_protocol(self) -> None:
        self._paused = False
        try:
            self._protocol.resume_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001
            self._flow_control_failed("protocol.resume_writing() failed", exc)

    def _flow_control_failed(self, message: str, exc: BaseException) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )

    # -- closing ---------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; close once what is buffered has been sent."""
        if self._closing:
            return
        self._closing = True
        if self._buffer and not self._sending:
            self._update()  # write events only, until the buffer is empty
        else:
            # (A file being sent is cut short, as with asyncio: its sendfile raises.)
            self._connection_lost(None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("connection error: %r", exc)
        if len(self._buffer) >= RELEASE_SIZE:
            self._loop.call_soon(release_memory)
        self._buffer.clear()
        self._closing = True
        self._connection_lost(exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        """Unregister now; the socket closes and the protocol hears of it from the loop
        (asyncio's order: ``connection_lost`` never runs inside ``close()``)."""
        if self._lost:
            return
        self._lost = True
        self._set_events(0)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(ConnectionError("connection closed"))
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: BaseException | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()
            self._protocol = None  # type: ignore[assignment]  # (it refers to us: no cycle for the GC)

    # -- selector registration -----------------------------------------------------

    def _update(self) -> None:
        if self._lost:
            return
        events = 0
        if self._reading and not (self._closing or self._read_eof):
            events = EVENT_READ
        if (self._buffer and not self._sending) or self._waiter is not None:
            events |= EVENT_WRITE
        self._set_events(events)

    def _set_events(self, events: int) -> None:
        current = self._events
        if events == current:
            return
        if not current:
            self._selector.register(self._fd, events, self)
        elif not events:
            self._selector.unregister(self._fd)
        else:
            self._selector.modify(self._fd, events, self)
        self._events = events

    # -- sendfile --------------------------------------------------------------------

    async def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send ``count`` bytes of ``file`` from ``offset`` (to its end if ``None``) with
        ``os.sendfile``, after what is already buffered; returns the bytes sent and leaves
        the file position after them (as ``loop.sendfile``). Raises ``ConnectionError``
        if the connection closes meanwhile."""
        source = file.fileno()
        while self._buffer:
            await self._writable()
        sent = 0
        self._sending = True
        try:
            while count is None or sent < count:
                if self._closing:
                    raise ConnectionError("connection closed")
                size = SENDFILE_CHUNK if count is None else min(count - sent, SENDFILE_CHUNK)
                try:
                    done = os.sendfile(self._fd, source, offset + sent, size)
                except (BlockingIOError, InterruptedError):
                    await self._writable()
                    continue
                except OSError as exc:
                    self._force_close(exc)
                    raise ConnectionError(f"sendfile failed: {exc}") from exc
                if not done:  # the end of the file
                    break
                sent += done
                self.sent_late += done
        finally:
            self._sending = False
            if sent:
                file.seek(offset + sent)
            if not self._lost:
                if self._buffer:
                    self._update()  # what was written meanwhile
                elif self._write_eof:
                    self._shutdown_write()
        return sent

    def _writable(self) -> asyncio.Future[None]:
        if self._lost:
            raise ConnectionError("connection closed")
        waiter = self._waiter
        if waiter is None:
            self._waiter = waiter = self._loop.create_future()
            self._update()
        return waiter
