"""HEADERS frames taken without h2's frame machinery (``ServerConnection.receive_data``):
for the same bytes in, the events, the frames out and h2's connection and stream state must
be exactly those of h2's own ``receive_data`` (the oracle), however the bytes are cut into
reads; and the fast path must really be the one taken for a remembered field block."""

from __future__ import annotations

import random
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from h2.connection import H2Connection
from h2.exceptions import ProtocolError as H2ProtocolError
from hyperframe.frame import GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame

from ftserver.protocols.http2 import H2ConnectionError, H2Settings, HTTP2Connection
from ftserver.protocols.http2.settings import PREFACE

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/up")]


def client() -> H2Connection:
    c = H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    c.initiate_connection()
    return c


def servers(max_streams: int = 100) -> tuple[HTTP2Connection, HTTP2Connection]:
    """Two server connections: ``fast`` as ftserver runs it, ``slow`` on h2's own
    ``receive_data`` (the oracle)."""
    fast = HTTP2Connection(H2Settings(max_concurrent_streams=max_streams))
    slow = HTTP2Connection(H2Settings(max_concurrent_streams=max_streams))
    slow.h2.receive_data = lambda data: H2Connection.receive_data(slow.h2, data)  # type: ignore[method-assign]
    for server in (fast, slow):
        server.initiate()
    return fast, slow


def describe(value: Any) -> Any:
    if isinstance(value, h2.events.Event):
        return (type(value).__name__, {key: describe(item) for key, item in sorted(vars(value).items())})
    if isinstance(value, list):
        return [describe(item) for item in value]
    if isinstance(value, tuple):
        return tuple(value)
    if isinstance(value, dict):
        return {key: repr(item) for key, item in value.items()}
    return value


def state(server: HTTP2Connection) -> Any:
    h2c = server.h2
    streams = {
        stream_id: (
            s.state_machine.state, s.state_machine.client, s.state_machine.headers_received,
            s.state_machine.stream_closed_by, s.inbound_flow_control_window, s.outbound_flow_control_window,
            s.max_outbound_frame_size,
        )
        for stream_id, s in h2c.streams.items()
    }
    return (
        h2c.state_machine.state, h2c.highest_inbound_stream_id, streams, dict(h2c._closed_streams),
        h2c.inbound_flow_control_window, h2c.outbound_flow_control_window, len(h2c.decoder.header_table.dynamic_entries),
        bytes(h2c.incoming_buffer._data), len(h2c.incoming_buffer._headers_buffer), sorted(h2c.refused),
    )


def feed(server: HTTP2Connection, reads: list[bytes]) -> tuple[list[Any], bytes, Any]:
    """Every read's h2 events (or the error ending the connection), the bytes out, the state."""
    events: list[Any] = []
    out = b""
    for data in reads:
        try:
            events.append(describe(server.h2.receive_data(data)))
        except H2ProtocolError as exc:
            events.append(("error", type(exc).__name__, str(exc)))
            break
        finally:
            out += server.h2.data_to_send()
    return events, out, state(server)


def agree(reads: list[bytes], max_streams: int = 100) -> tuple[HTTP2Connection, list[Any]]:
    fast, slow = servers(max_streams)
    got = feed(fast, reads)
    assert got == feed(slow, reads)
    return fast, got[0]


def requests(c: H2Connection, count: int, fields: list[tuple[bytes, bytes]] = REQUEST, **kwargs: Any) -> bytes:
    for _ in range(count):
        c.send_headers(c.get_next_available_stream_id(), fields, **kwargs)
    return c.data_to_send()


def count_decoded(server: HTTP2Connection) -> list[bytes]:
    """The field blocks h2's path hands to the HPACK decoder (the fast path never does)."""
    calls: list[bytes] = []
    decoder = server.h2.decoder
    original = decoder.decode

    def counted(data: bytes, raw: bool = False) -> Any:
        calls.append(data)
        return original(data, raw)

    decoder.decode = counted  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("per_read", [1, 3, 10])
def test_repeated_requests_are_taken_fast_with_h2s_events_and_state(per_read):
    c = client()
    reads = [c.data_to_send() + requests(c, per_read, end_stream=True)]
    reads += [requests(c, per_read, end_stream=True) for _ in range(5)]
    fast, slow = servers()
    calls = count_decoded(fast)
    got = feed(fast, reads)
    assert got == feed(slow, reads)
    # Only the first read (the preface) and the first repeat of the block went to h2.
    assert len(calls) == max(per_read, 2)
    assert sum(1 for read in got[0] for event in read if event[0] == "RequestReceived") == 6 * per_read


def test_bytes_cut_anywhere_give_the_same_result():
    c = client()
    stream = c.data_to_send() + requests(c, 4, end_stream=True)
    stream += requests(c, 2, POST)
    c.send_data(9, b"x" * 100, end_stream=True)
    stream += c.data_to_send() + PingFrame(0, b"12345678").serialize() + requests(c, 6, end_stream=True)
    rng = random.Random(7)
    for _ in range(40):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        agree(reads)


def test_a_request_with_a_body_opens_the_stream_and_its_data_follows():
    c = client()
    reads = [c.data_to_send() + requests(c, 2, POST), requests(c, 2, POST)]  # (the second read: fast)
    for stream_id in (1, 3, 5, 7):
        c.send_data(stream_id, b"abc", end_stream=True)
    reads.append(c.data_to_send())
    _, events = agree(reads)
    assert [e[0] for e in events[1]] == ["RequestReceived", "RequestReceived"]
    assert [e[0] for e in events[2]] == ["DataReceived", "StreamEnded"] * 4


def test_priority_in_headers():
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True)]
    reads.append(requests(c, 2, end_stream=True, priority_weight=200, priority_depends_on=1, priority_exclusive=True))
    fast, slow = servers()
    calls = count_decoded(fast)
    events = feed(fast, reads)
    assert events == feed(slow, reads)
    assert len(calls) == 2  # (the second read: fast)
    assert [e[0] for e in events[0][1]] == ["RequestReceived", "StreamEnded", "PriorityUpdated"] * 2
    assert events[0][1][2][1]["weight"] == 200 and events[0][1][2][1]["exclusive"] is True


def test_a_stream_depending_on_itself_ends_the_connection_as_h2_does():
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True), requests(c, 1, end_stream=True)]
    c.send_headers(7, REQUEST, end_stream=True)
    frame = c.data_to_send()
    # The same (remembered) block with PRIORITY naming stream 7 itself.
    length = int.from_bytes(frame[:3], "big") + 5
    looped = length.to_bytes(3, "big") + b"\x01" + bytes([frame[4] | 0x20]) + frame[5:9] + (7).to_bytes(4, "big") + b"\x0f" + frame[9:]
    _, events = agree([*reads, looped])
    assert [e[0] for e in events[1]] == ["RequestReceived", "StreamEnded"]
    assert events[-1][0] == "error"


def test_streams_beyond_the_limit_are_refused_as_h2_does():
    c = client()
    reads = [c.data_to_send() + requests(c, 2), requests(c, 3), requests(c, 2)]
    fast, events = agree(reads, max_streams=3)
    assert [e[0] for e in events[1]] == ["RequestReceived"] * 3
    assert sorted(fast.h2.refused) == [7, 9, 11, 13]  # (ours: reset once translated)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda f: f[:4] + bytes([f[4] | 0x08]) + f[5:],  # PADDED (pad length = first block byte)
        lambda f: f[:4] + bytes([f[4] & ~0x04]) + f[5:],  # no END_HEADERS, no CONTINUATION
        lambda f: f[:5] + (0x80000000 | int.from_bytes(f[5:9], "big")).to_bytes(4, "big") + f[9:],  # reserved bit
        lambda f: f[:5] + (1).to_bytes(4, "big") + f[9:],  # a stream id already used
        lambda f: f[:5] + (4).to_bytes(4, "big") + f[9:],  # an even stream id
    ],
)
def test_unusual_headers_frames_go_to_h2(mangle):
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True)]
    reads.append(mangle(requests(c, 1, end_stream=True)))
    reads.append(requests(c, 1, end_stream=True))
    agree(reads)


def test_a_table_change_makes_the_block_decoded_again():
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True)]
    for value in (b"1", b"2", b"2", b"3"):
        reads.append(requests(c, 2, [*REQUEST, (b"x-v", value)], end_stream=True))
    fast, slow = servers()
    calls = count_decoded(fast)
    assert feed(fast, reads) == feed(slow, reads)
    # Each new value enters the table (a change: decoded), its first repeat is decoded and
    # remembered, the second value's later repeats are known.
    assert len(calls) == 2 + 2 + 2 + 0 + 2


def test_after_a_goaway_with_an_error_h2_takes_everything():
    c = client()
    reads = [c.data_to_send() + requests(c, 1, end_stream=True)]
    later = requests(c, 1, end_stream=True)
    reads += [GoAwayFrame(0, error_code=2).serialize(), later]
    _, events = agree(reads)
    assert events[-1][0] == "error"


# -- HTTP2Connection: the Request of a block seen before, at once -----------------------


def translated(server: HTTP2Connection, reads: list[Any]) -> tuple[list[Any], bytes]:
    """Our events for each read (or the error ending the connection), and the bytes out."""
    out: list[Any] = []
    sent = b""
    for data in reads:
        if callable(data):  # (something the driver does between reads)
            data(server)
            sent += server.data_to_send()
            continue
        try:
            events = server.receive_data(data, 0.0)
        except H2ConnectionError as exc:
            out.append(("error", exc.error_code))
            break
        finally:
            sent += server.data_to_send()
        out.append([
            (type(e).__name__, {k: getattr(e, k) for k in getattr(type(e), "__slots__", ())} or vars(e)) for e in events
        ])
    return out, sent


def without_bodiless_ends(reads: list[Any]) -> list[Any]:
    """The events, but for the StreamEnd of a request without a body (the fast path
    leaves it out: the driver has nothing to end)."""
    bodiless = {e["stream_id"] for read in reads if read[:1] != ["error"] for kind, e in read if kind == "Request" and not e["has_body"]}
    return [
        read if read and read[0] == "error" else [(k, e) for k, e in read if not (k == "StreamEnd" and e["stream_id"] in bodiless)]
        for read in reads
    ]


def agree_translated(reads: list[Any], settings: H2Settings | None = None, before: Any = None) -> list[Any]:
    """Our events and bytes out from the fast path are those of h2's own path
    (``receive_frames`` as h2's plain ``receive_data``)."""
    fast = HTTP2Connection(settings or H2Settings())
    slow = HTTP2Connection(settings or H2Settings())
    slow.h2.receive_frames = lambda data, opened: H2Connection.receive_data(slow.h2, data)  # type: ignore[method-assign]
    for server in (fast, slow):
        server.initiate()
        if before is not None:
            before(server)
    got, sent = translated(fast, reads)
    expected, expected_sent = translated(slow, reads)
    assert sent == expected_sent
    assert without_bodiless_ends(got) == without_bodiless_ends(expected)
    return got


def test_a_repeated_request_is_the_same_request():
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True)]
    reads += [requests(c, 3, end_stream=True), requests(c, 1, POST), requests(c, 2, POST)]
    for stream_id in (11, 13, 15):
        c.send_data(stream_id, b"ab", end_stream=True)
    reads.append(c.data_to_send())
    reads += [requests(c, 4, end_stream=True), requests(c, 4, end_stream=True)]  # (after the POSTs changed the table)
    got = agree_translated(reads)
    # (the first is new to ``known``: made as h2's path makes it, its StreamEnd too)
    assert [kind for kind, _ in got[1]] == ["Request", "StreamEnd", "Request", "Request"]
    assert [kind for kind, _ in got[5]] == ["Request", "StreamEnd"] * 4  # (the table changed: h2's path)
    assert [kind for kind, _ in got[6]] == ["Request", "StreamEnd", "Request", "Request", "Request"]
    assert [kind for kind, _ in got[3]] == ["Request", "Request"]
    assert [kind for kind, _ in got[4]] == ["StreamBody", "StreamEnd"] * 3


def test_malformed_repeats_are_reset_each_time():
    bad = [*REQUEST, (b"connection", b"close")]
    c = H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
    ))
    c.initiate_connection()
    reads = [c.data_to_send() + requests(c, 2, bad, end_stream=True), requests(c, 3, bad, end_stream=True)]
    got = agree_translated(reads)
    assert [kind for kind, _ in got[1]] == ["StreamEnd"] * 3  # (reset: no Request)


def test_refused_after_our_goaway_and_beyond_the_limit():
    c = client()
    reads = [c.data_to_send() + requests(c, 2), requests(c, 3), requests(c, 2, end_stream=True)]
    agree_translated(reads, H2Settings(max_concurrent_streams=3))
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True), requests(c, 3, end_stream=True)]
    reads += [HTTP2Connection.goaway, requests(c, 3, end_stream=True)]
    got = agree_translated(reads)
    assert [kind for kind, _ in got[1]] == ["Request", "StreamEnd", "Request", "Request"]
    assert [kind for kind, _ in got[2]] == ["StreamEnd"] * 3  # (refused: no Request)


def test_the_same_block_after_a_table_change_is_another_request():
    start = b"\x82\x86\x84\x01\x09localhost"  # GET http / localhost, nothing indexed
    newest = b"\xbe"  # the newest entry of the dynamic table (RFC 7541 §2.3.3)

    def headers(stream_id: int, block: bytes) -> bytes:
        return HeadersFrame(stream_id, block, flags=["END_HEADERS", "END_STREAM"]).serialize()

    reads = [PREFACE + SettingsFrame(0).serialize() + headers(1, start + b"\x40\x03x-a\x011")]
    reads += [headers(stream_id, start + newest) for stream_id in (3, 5, 7)]
    reads.append(headers(9, start + b"\x40\x03x-b\x012"))  # (the same bytes now name x-b)
    reads += [headers(stream_id, start + newest) for stream_id in (11, 13, 15)]
    got = agree_translated(reads)
    assert [e["headers"][-1] for read in got for kind, e in read if kind == "Request"] == [(b"x-a", b"1")] * 4 + [(b"x-b", b"2")] * 4
    # A table change later in the same read as a known block: that block was decoded
    # under the table before the change.
    reads = [PREFACE + SettingsFrame(0).serialize() + headers(1, start + b"\x40\x03x-a\x011"), headers(3, start + newest)]
    reads.append(headers(5, start + newest) + headers(7, start + b"\x40\x03x-b\x012"))
    reads += [headers(9, start + newest), headers(11, start + newest)]
    got = agree_translated(reads)
    assert [e["headers"][-1] for read in got for kind, e in read if kind == "Request"] == [(b"x-a", b"1")] * 3 + [(b"x-b", b"2")] * 3


def test_the_same_block_with_and_without_end_stream():
    c = client()
    reads = [c.data_to_send() + requests(c, 2, end_stream=True), requests(c, 2, end_stream=True)]
    reads += [requests(c, 2), requests(c, 2, end_stream=True)]
    got = agree_translated(reads)
    assert [e["has_body"] for read in got[2:] for kind, e in read if kind == "Request"] == [True, True, False, False]


def test_a_known_request_with_a_body_gets_its_window_back():
    c = client()
    reads: list[Any] = [c.data_to_send() + requests(c, 2, POST), requests(c, 3, POST)]
    for stream_id in (1, 3, 5, 7, 9):
        c.send_data(stream_id, b"x" * 12_000)
    reads.append(c.data_to_send())
    reads += [lambda server, stream_id=stream_id: server.acknowledge(stream_id, 12_000) for stream_id in (1, 3, 5, 7, 9)]
    fast = HTTP2Connection(H2Settings(initial_window_size=16384))
    fast.initiate()
    translated(fast, reads)
    assert fast.stream_unacked == {sid: 0 for sid in (1, 3, 5, 7, 9)}  # (each given back)
    agree_translated(reads, H2Settings(initial_window_size=16384))
