"""``SocketTransport`` against asyncio's transport contract, one connection at a time: a
``WorkerLoop`` in the test's thread, a real TCP connection over loopback, and a protocol
that records what it is told."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ftserver.threads.sockets import SocketTransport, WorkerLoop

PATTERN = bytes(range(251)) * 4  # a prime-length pattern: misplaced bytes show


class Recorder(asyncio.Protocol):
    """Records the calls, in order; behaviour is set per test."""

    def __init__(self, keep_open_on_eof: bool = False) -> None:
        self.calls: list[str] = []
        self.data = bytearray()
        self.lost: list[BaseException | None] = []
        self.transport: Any = None
        self.keep_open_on_eof = keep_open_on_eof
        self.on_data: Any = None

    def connection_made(self, transport: Any) -> None:
        self.calls.append("made")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.on_data is not None:
            self.on_data(data)

    def eof_received(self) -> bool:
        self.calls.append("eof")
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.calls.append("pause")

    def resume_writing(self) -> None:
        self.calls.append("resume")

    def connection_lost(self, exc: BaseException | None) -> None:
        self.calls.append("lost")
        self.lost.append(exc)


@pytest.fixture
def loop() -> Iterator[WorkerLoop]:
    loop = WorkerLoop()
    yield loop
    loop.close()


def connect(loop: WorkerLoop, protocol: asyncio.Protocol) -> tuple[SocketTransport, socket.socket]:
    """A transport on the server side of a fresh loopback TCP connection; the client socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
    server.setblocking(False)
    transport = SocketTransport(loop, server, protocol)
    transport.start()
    return transport, client


def run_until(loop: WorkerLoop, condition: Any, timeout: float = 10.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    loop.run_until_complete(asyncio.wait_for(wait(), timeout))


async def in_thread(func: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)


def read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def test_connection_lost_once_and_after_close_returns(loop):
    protocol = Recorder()
    transport, client = connect(loop, protocol)
    transport.close()
    assert protocol.calls == ["made"]  # not from inside close()
    transport.close()
    transport.abort()
    run_until(loop, lambda: protocol.lost)
    loop.run_until_complete(asyncio.sleep(0.01))
    assert protocol.calls == ["made", "lost"] and protocol.lost == [None]
    assert transport.is_closing()
    assert client.recv(10) == b""
    client.close()


def test_slow_reader_pause_resume_and_every_byte_in_order(loop):
    protocol = Recorder()
    transport, client = connect(loop, protocol)
    body = PATTERN * 8000  # 8 MB: far more than the socket buffers hold
    transport.write(body)
    assert "pause" in protocol.calls
    assert transport.get_write_buffer_size() > 64 * 1024

    def slow_read() -> bytes:
        received = bytearray()
        while len(received) < len(body):
            received += client.recv(65536)
        return bytes(received)

    received = loop.run_until_complete(in_thread(slow_read))
    assert received == body
    run_until(loop, lambda: "resume" in protocol.calls)
    assert protocol.calls == ["made", "pause", "resume"]
    assert transport.get_write_buffer_size() == 0
    transport.close()
    run_until(loop, lambda: protocol.lost)
    client.close()


def test_close_delivers_the_buffered_bytes_before_the_fin(loop):
    protocol = Recorder()
    transport, client = connect(loop, protocol)
    body = PATTERN * 16_000
    transport.write(body)
    assert transport.get_write_buffer_size()  # what the socket did not take is buffered
    transport.close()
    transport.write(b"ignored after close")
    received = loop.run_until_complete(in_thread(read_to_eof, client))
    assert received == body
    run_until(loop, lambda: protocol.lost)
    assert protocol.lost == [None]
    client.close()


def test_abort_drops_the_buffer_and_closes_at_once(loop):
    protocol = Recorder()
    transport, client = connect(loop, protocol)
    body = PATTERN * 16_000
    transport.write(body)
    assert transport.get_write_buffer_size()
    transport.abort()
    run_until(loop, lambda: protocol.lost)
    assert protocol.calls == ["made", "pause", "lost"] and protocol.lost == [None]
    try:
        received = read_to_eof(client)
    except ConnectionResetError:
        received = b""
    assert len(received) < len(body)
    client.close()


def test_reset_by_the_peer_is_connection_lost_with_the_error(loop):
    protocol = Recorder()
    transport, client = connect(loop, protocol)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST
    run_until(loop, lambda: protocol.lost)
    assert isinstance(protocol.lost[0], ConnectionError)
    assert "eof" not in protocol.calls


def test_half_close_keeps_our_side_open_when_the_protocol_asks(loop):
    protocol = Recorder(keep_open_on_eof=True)
    transport, client = connect(loop, protocol)
    client.sendall(b"request")
    client.shutdown(socket.SHUT_WR)
    run_until(loop, lambda: "eof" in protocol.calls)
    transport.resume_reading()  # after EOF: no more reads, no second eof_received
    loop.run_until_complete(asyncio.sleep(0.05))
    assert protocol.calls == ["made", "eof"] and bytes(protocol.data) == b"request"
    transport.write(b"response")
    transport.close()
    assert loop.run_until_complete(in_thread(read_to_eof, client)) == b"response"
    run_until(loop, lambda: protocol.lost)
    assert protocol.calls == ["made", "eof", "lost"]
    client.close()


def test_half_close_closes_when_the_protocol_does_not_ask(loop):
    protocol = Recorder(keep_open_on_eof=False)
    transport, client = connect(loop, protocol)
    client.shutdown(socket.SHUT_WR)
    run_until(loop, lambda: protocol.lost)
    assert protocol.calls == ["made", "eof", "lost"] and protocol.lost == [None]
    assert client.recv(10) == b""
    client.close()


def test_write_eof_after_the_buffer(loop):
    protocol = Recorder()
    transport, client = connect(loop, protocol)
    body = PATTERN * 16_000
    transport.write(body)
    assert transport.get_write_buffer_size()
    transport.write_eof()
    with pytest.raises(RuntimeError):
        transport.write(b"more")
    assert loop.run_until_complete(in_thread(read_to_eof, client)) == body
    client.sendall(b"still readable")
    run_until(loop, lambda: protocol.data == b"still readable")
    transport.close()
    run_until(loop, lambda: protocol.lost)
    client.close()


# -- write flow control, side by side with asyncio's own transport ---------------------
#
# Each of these runs on SocketTransport and on the transport asyncio itself makes for the
# same kind of socket (``loop.connect_accepted_socket``): asyncio's is the reference, so a
# test that passes on "asyncio" and fails on "ftserver" is a difference to fix.


def connect_either(loop: WorkerLoop, protocol: asyncio.Protocol, kind: str) -> tuple[Any, socket.socket]:
    """``connect``, or the same connection on asyncio's selector transport."""
    if kind == "ftserver":
        return connect(loop, protocol)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=10)
        server, _ = listener.accept()
    transport, _ = loop.run_until_complete(loop.connect_accepted_socket(lambda: protocol, server))
    return transport, client


def read_exactly(sock: socket.socket, size: int) -> bytes:
    received = bytearray()
    while len(received) < size:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return bytes(received)


def record_exception_handler(loop: WorkerLoop) -> list[dict[str, Any]]:
    contexts: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda loop, context: contexts.append(context))
    return contexts


BOTH = pytest.mark.parametrize("kind", ["ftserver", "asyncio"])


@BOTH
def test_lowering_the_high_water_mark_pauses_the_protocol_at_once(loop, kind):
    protocol = Recorder()
    transport, client = connect_either(loop, protocol, kind)
    transport.set_write_buffer_limits(high=64 * 1024 * 1024)
    transport.write(PATTERN * 16_000)  # ~4 MB: more than the socket takes, under the mark
    size = transport.get_write_buffer_size()
    assert 0 < size < len(PATTERN) * 16_000
    transport.set_write_buffer_limits(high=size)  # not above it: nothing happens
    assert protocol.calls == ["made"]
    transport.set_write_buffer_limits(high=size - 1, low=0)
    assert protocol.calls == ["made", "pause"]  # now, with no write to notice it
    assert transport.get_write_buffer_limits() == (0, size - 1)
    transport.set_write_buffer_limits(high=1, low=0)  # paused already: no second call
    assert protocol.calls == ["made", "pause"]
    # low=0: resumed only once the buffer is empty, and then everything was sent.
    received = loop.run_until_complete(in_thread(read_exactly, client, len(PATTERN) * 16_000))
    run_until(loop, lambda: "resume" in protocol.calls)
    assert protocol.calls == ["made", "pause", "resume"]
    assert transport.get_write_buffer_size() == 0
    assert received == PATTERN * 16_000
    transport.close()
    run_until(loop, lambda: protocol.lost)
    client.close()


@BOTH
def test_raising_the_low_water_mark_does_not_resume_the_protocol(loop, kind):
    protocol = Recorder()
    transport, client = connect_either(loop, protocol, kind)
    transport.write(PATTERN * 16_000)
    assert protocol.calls == ["made", "pause"]
    size = transport.get_write_buffer_size()
    transport.set_write_buffer_limits(high=size * 4, low=size * 2)  # the buffer is below both
    assert protocol.calls == ["made", "pause"]
    transport.abort()
    assert transport.get_write_buffer_size() == 0  # the buffer is dropped
    run_until(loop, lambda: protocol.lost)
    assert protocol.calls == ["made", "pause", "lost"]
    client.close()


@BOTH
def test_write_buffer_limits_defaults_and_validation(loop, kind):
    protocol = Recorder()
    transport, client = connect_either(loop, protocol, kind)
    assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)  # (low, high)
    assert transport.get_write_buffer_size() == 0
    accepted = [
        ({"high": 100}, (25, 100)),  # low defaults to high // 4
        ({"low": 100}, (100, 400)),  # high defaults to 4 * low
        ({"high": 100, "low": 100}, (100, 100)),
        ({"high": 0}, (0, 0)),
        ({}, (16 * 1024, 64 * 1024)),
    ]
    for kwargs, limits in accepted:
        transport.set_write_buffer_limits(**kwargs)
        assert transport.get_write_buffer_limits() == limits, kwargs
    transport.set_write_buffer_limits(high=1000, low=10)
    for kwargs in ({"high": 10, "low": 20}, {"low": -1}, {"high": -1}, {"high": 10, "low": -1}):
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(**kwargs)
        assert transport.get_write_buffer_limits() == (10, 1000), kwargs  # left as they were
    transport.close()
    run_until(loop, lambda: protocol.lost)
    client.close()


class FailingFlowControl(Recorder):
    """``pause_writing``/``resume_writing`` record the call, then raise ``failure``."""

    def __init__(self, fail_on: str, failure: BaseException) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.failure = failure

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.fail_on == "pause":
            raise self.failure

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.fail_on == "resume":
            raise self.failure


@BOTH
@pytest.mark.parametrize("fail_on", ["pause", "resume"])
@pytest.mark.parametrize(
    "failure", [RuntimeError("flow control bug"), asyncio.CancelledError()], ids=["Exception", "CancelledError"]
)
def test_a_failing_pause_or_resume_writing_is_reported_and_the_connection_carries_on(loop, kind, fail_on, failure):
    protocol = FailingFlowControl(fail_on, failure)
    contexts = record_exception_handler(loop)
    body = PATTERN * 16_000
    # As a server does: the write that crosses the high-water mark comes from data_received.
    protocol.on_data = lambda data: protocol.transport.write(body)
    transport, client = connect_either(loop, protocol, kind)
    client.sendall(b"go")
    run_until(loop, lambda: "pause" in protocol.calls)
    received = loop.run_until_complete(in_thread(read_exactly, client, len(body)))
    run_until(loop, lambda: "resume" in protocol.calls)
    assert received == body  # every byte, the buffered tail included
    assert protocol.calls == ["made", "pause", "resume"] and not protocol.lost
    assert len(contexts) == 1
    context = contexts[0]
    assert context["message"] == f"protocol.{fail_on}_writing() failed"
    assert context["exception"] is failure
    assert context["transport"] is transport and context["protocol"] is protocol
    # Still a working connection, both ways.
    transport.write(b"after")
    assert loop.run_until_complete(in_thread(read_exactly, client, 5)) == b"after"
    client.sendall(b"more")
    protocol.on_data = None
    run_until(loop, lambda: protocol.data.endswith(b"more"))
    transport.close()
    run_until(loop, lambda: protocol.lost)
    assert protocol.lost == [None]
    client.close()


@pytest.mark.parametrize("failure", [RuntimeError("app bug"), asyncio.CancelledError()], ids=["Exception", "CancelledError"])
def test_an_exception_in_data_received_closes_that_connection_only(loop, caplog, failure):
    broken, healthy = Recorder(), Recorder()

    def fail(data: bytes) -> None:
        raise failure

    broken.on_data = fail
    transport, client = connect(loop, broken)
    other, other_client = connect(loop, healthy)
    client.sendall(b"x")
    with caplog.at_level(logging.DEBUG, logger="ftserver.error"):
        run_until(loop, lambda: broken.lost)  # the loop survives
    assert broken.lost == [failure]
    assert [r for r in caplog.records if r.name == "ftserver.error"]
    other_client.sendall(b"y")
    run_until(loop, lambda: healthy.data == b"y")
    other.close()
    run_until(loop, lambda: healthy.lost)
    client.close()
    other_client.close()


def test_sendfile_larger_than_the_socket_buffers_in_order(loop, tmp_path: Path):
    content = PATTERN * 10_000  # ~10 MB
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    protocol = Recorder()
    transport, client = connect(loop, protocol)

    async def send() -> int:
        transport.write(b"head:" + PATTERN * 200)  # partly buffered: must go first
        with open(path, "rb") as file:
            sent = await transport.sendfile(file, 10, len(content) - 20)
        transport.write(b":tail")
        transport.close()
        return sent

    sent_task = loop.create_task(send())
    received = loop.run_until_complete(in_thread(read_to_eof, client))
    assert loop.run_until_complete(sent_task) == len(content) - 20
    assert received == b"head:" + PATTERN * 200 + content[10:-10] + b":tail"
    run_until(loop, lambda: protocol.lost)
    client.close()


def test_a_write_during_sendfile_never_lands_inside_the_file(loop, tmp_path: Path):
    content = PATTERN * 32_000  # ~32 MB: more than both sockets' buffers hold
    path = tmp_path / "big.bin"
    path.write_bytes(content)
    protocol = Recorder()
    transport, client = connect(loop, protocol)

    async def send() -> tuple[bool, bytes]:
        with open(path, "rb") as file:
            sending = asyncio.ensure_future(transport.sendfile(file, 0, len(content)))
            await asyncio.sleep(0.05)
            assert not sending.done()  # nobody reads yet: sendfile waits for the socket
            try:
                transport.write(b"written meanwhile")
            except RuntimeError:  # asyncio's answer; queueing after the file is fine too
                written = False
            else:
                written = True
            reading = asyncio.ensure_future(in_thread(read_to_eof, client))
            await sending
        transport.close()
        return written, await reading

    written, received = loop.run_until_complete(send())
    assert received == content + (b"written meanwhile" if written else b"")
    client.close()


def test_sendfile_raises_connection_error_when_the_peer_goes(loop, tmp_path: Path):
    path = tmp_path / "big.bin"
    path.write_bytes(PATTERN * 10_000)
    protocol = Recorder()
    transport, client = connect(loop, protocol)

    async def send() -> None:
        with open(path, "rb") as file:
            await transport.sendfile(file, 0, os.path.getsize(path))

    task = loop.create_task(send())
    loop.run_until_complete(asyncio.sleep(0.05))
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    with pytest.raises(ConnectionError):
        loop.run_until_complete(asyncio.wait_for(task, 10))
    run_until(loop, lambda: protocol.lost)
    assert protocol.calls.count("lost") == 1
