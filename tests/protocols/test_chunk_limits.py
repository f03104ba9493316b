"""Limits.max_chunk_overhead and body_progress, in both HTTP/1.1 protocol objects: bytes
in, events out (issue 13, item 4: a body of many tiny chunks; item 3: the body timeout's
view of progress)."""

from __future__ import annotations

from typing import Any

import pytest

from ftserver.protocols.errors import BadRequest, ProtocolError
from ftserver.protocols.events import END_OF_MESSAGE, NEED_DATA, Data
from ftserver.protocols.http1 import HTTP11Connection
from ftserver.protocols.http1.common import TINY_CHUNKS
from ftserver.protocols.http1.h11_adapter import H11Connection
from ftserver.protocols.limits import Limits

HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.fixture(params=[HTTP11Connection, H11Connection], ids=["fast", "h11"])
def impl(request: pytest.FixtureRequest) -> Any:
    return request.param


def chunks(size: int, count: int) -> bytes:
    return (b"%x\r\n" % size + b"x" * size + b"\r\n") * count + b"0\r\n\r\n"


def body(conn: Any, data: bytes) -> int:
    """Feed ``data``; the body bytes until EndOfMessage (raises the protocol's error)."""
    conn.receive_data(data)
    received = 0
    while True:
        event = conn.next_event()
        if event is END_OF_MESSAGE:
            return received
        if isinstance(event, Data):
            received += len(event.data)
        assert event is not NEED_DATA


@pytest.mark.parametrize("size", [1, 4])
def test_chunks_smaller_than_their_framing_are_refused_past_the_limit(impl: Any, size: int) -> None:
    conn = impl(Limits(max_chunk_overhead=1000))
    with pytest.raises(BadRequest, match="too many tiny chunks") as caught:
        body(conn, HEAD + chunks(size, 1000))
    assert caught.value.status_code == 400
    assert str(caught.value) == TINY_CHUNKS


@pytest.mark.parametrize(("size", "count"), [(1, 150), (5, 2000), (100, 200)])
def test_chunks_within_the_limit_or_outweighing_their_framing_pass(impl: Any, size: int, count: int) -> None:
    # 150 one-byte chunks: 750 bytes of framing, below the limit.
    conn = impl(Limits(max_chunk_overhead=1000))
    assert body(conn, HEAD + chunks(size, count)) == size * count


def test_no_chunk_limit(impl: Any) -> None:
    assert body(impl(Limits(max_chunk_overhead=None)), HEAD + chunks(1, 30_000)) == 30_000


def test_the_default_refuses_a_flood_of_one_byte_chunks(impl: Any) -> None:
    with pytest.raises(ProtocolError, match="too many tiny chunks"):
        body(impl(Limits()), HEAD + chunks(1, 30_000))


def test_the_count_starts_again_with_each_body(impl: Any) -> None:
    conn = impl(Limits(max_chunk_overhead=1000))
    assert body(conn, HEAD + chunks(1, 150)) == 150
    conn.send_response(200, [(b"content-length", b"0")], None)
    conn.send_end()
    conn.start_next_cycle()
    assert body(conn, HEAD + chunks(1, 150)) == 150


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_progress_grows_with_each_body_byte(impl: Any, framing: str) -> None:
    conn = impl(Limits())
    if framing == "chunked":
        head, rest = HEAD + b"a\r\nxxx", [b"xx", b"xxxxx\r\n", b"0\r\n\r\n"]
    else:
        head, rest = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nxxx", [b"xx", b"xxxxx"]
    conn.receive_data(head)
    readings = []
    for piece in [b"", *rest]:
        if piece:
            conn.receive_data(piece)
        while conn.next_event() not in (NEED_DATA, END_OF_MESSAGE):
            pass
        readings.append(conn.body_progress)
    assert readings[1] - readings[0] == 2
    assert readings[2] - readings[0] == 7
