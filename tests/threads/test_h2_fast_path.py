"""The one-piece HTTP/2 response (``HTTP2Connection.send_response``): the frames and h2's
state it leaves must be exactly those of h2's own ``send_headers`` + ``send_data``; then
real connections mixing it with the frame-by-frame path (windows, HEAD, 204/304,
trailers, many streams)."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from h2.stream import StreamClosedBy, StreamState
from hyperframe.frame import Frame, HeadersFrame, RstStreamFrame

from ftserver.protocols.http2 import H2Settings, HTTP2Connection
from ftserver.testing import serve
from tests.threads.h2client import H2Client

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]


def pair(requests: int = 1, max_frame: int | None = None) -> tuple[HTTP2Connection, h2.connection.H2Connection]:
    """A server connection and h2's client, in memory, after ``requests`` GETs."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(
        client_side=True, header_encoding=None, validate_outbound_headers=False, normalize_outbound_headers=False,
    ))
    client.initiate_connection()
    if max_frame:
        client.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: max_frame})
    server = HTTP2Connection(H2Settings())
    server.initiate()
    for _ in range(requests):
        client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
    server.receive_data(client.data_to_send(), 0.0)
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send(), 0.0)  # (the SETTINGS ACK)
    return server, client


def state(server: HTTP2Connection, stream_id: int) -> tuple:
    h2c = server.h2
    stream = h2c.streams[stream_id]
    machine = stream.state_machine
    return (
        machine.state, machine.headers_sent, machine.trailers_sent, machine.stream_closed_by,
        stream.outbound_flow_control_window, h2c.outbound_flow_control_window, h2c.state_machine.state,
    )


@pytest.mark.parametrize("body", [b"", b"hello", b"x" * 16384])
@pytest.mark.parametrize("big_headers", [False, True])
def test_the_frames_and_the_state_are_those_of_h2s_own_calls(body, big_headers):
    headers = [(b"content-type", b"text/plain")] + ([(b"x-big", b"v" * 40_000)] if big_headers else [])
    fast, _ = pair()
    slow, _ = pair()
    assert fast.send_response(1, 200, headers, b"Sat, 05 Dec 2026 08:00:00 GMT", len(body), body)
    fields = slow.response_fields(200, headers, b"Sat, 05 Dec 2026 08:00:00 GMT", len(body))
    slow.send_headers(1, fields, not body)
    if body:
        slow.send_data(1, body, True)
    assert fast.data_to_send() == slow.data_to_send()
    assert state(fast, 1) == state(slow, 1)
    assert state(fast, 1)[:4] == (StreamState.CLOSED, True, None, StreamClosedBy.SEND_END_STREAM)


def test_h2s_client_reads_it_and_the_windows_agree():
    server, client = pair(requests=3)
    for stream_id, body in ((1, b"a" * 1000), (3, b""), (5, b"c" * 16000)):
        assert server.send_response(stream_id, 200, [], None, len(body), body)
    events = client.receive_data(server.data_to_send())
    kinds = [(type(e).__name__, e.stream_id) for e in events]
    assert kinds == [
        ("ResponseReceived", 1), ("DataReceived", 1), ("StreamEnded", 1),
        ("ResponseReceived", 3), ("StreamEnded", 3),
        ("ResponseReceived", 5), ("DataReceived", 5), ("StreamEnded", 5),
    ]
    assert server.h2.outbound_flow_control_window == client.inbound_flow_control_window == 65535 - 17000
    for stream_id in (1, 3, 5):
        assert server.h2.streams[stream_id].outbound_flow_control_window == client.streams[stream_id].inbound_flow_control_window
    # the streams count as closed: h2 forgets them, new ones open
    assert server.h2.open_inbound_streams == 0
    client.send_headers(7, REQUEST, end_stream=True)
    assert [type(e).__name__ for e in server.receive_data(client.data_to_send(), 0.0)] == ["Request", "StreamEnd"]


def test_not_taken_when_it_does_not_fit():
    server, client = pair(requests=4, max_frame=16384)
    assert not server.send_response(1, 200, [], None, 16385, b"x" * 16385)  # larger than a frame
    assert server.send_response(3, 200, [], None, 16384, b"x" * 16384)
    assert server.send_response(5, 200, [], None, 16384, b"x" * 16384)
    assert server.send_response(7, 200, [], None, 16384, b"x" * 16384)
    assert not server.send_response(1, 200, [], None, 16384, b"x" * 16384)  # the connection's window: 16383 left
    assert server.data_to_send()
    assert state(server, 1)[:2] == (StreamState.HALF_CLOSED_REMOTE, None)  # (untouched)
    assert not server.send_response(3, 200, [], None, 0, b"")  # already answered
    assert not server.send_response(99, 200, [], None, 0, b"")  # no such stream


async def app(scope, receive, send):
    path = scope["path"]
    if path.startswith("/status/"):
        await send({"type": "http.response.start", "status": int(path[8:]), "headers": [(b"etag", b'"1"')]})
        await send({"type": "http.response.body", "body": b"ignored"})
    elif path == "/trailers":
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.body", "body": b"body"})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})
    elif path.startswith("/size/"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"s" * int(path[6:])})
    else:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello " + path.encode()})


def test_the_windows_stay_exact_when_the_fast_path_fills_them():
    """Four 16,000-byte responses framed at once, then a fifth the connection window
    (65,535) takes only 1,535 bytes of: its rest waits for the client's WINDOW_UPDATE. A
    fast path that did not count its bytes would overrun the window (h2's client raises)."""
    with serve(app) as server:
        client = H2Client(server.port)
        client.auto_ack = False
        try:
            ids = [client.request("/size/16000") for _ in range(5)]
            for stream_id in ids[:4]:
                headers, body, last = client.response(stream_id)
                assert headers[b":status"] == b"200" and len(body) == 16000
                assert isinstance(last, h2.events.StreamEnded)

            def fifth(events):
                return sum(len(e.data) for e in events if isinstance(e, h2.events.DataReceived) and e.stream_id == ids[4])

            client.events_until(lambda ev: fifth(ev) >= 1535, limit=3)
            assert fifth(client.events) == 1535
            assert client.conn.inbound_flow_control_window == 0
            client.conn.increment_flow_control_window(65535)
            client.flush()
            client.auto_ack = True
            _, body, last = client.response(ids[4])
            assert len(body) == 16000 and isinstance(last, h2.events.StreamEnded)
            assert client.response(client.request("/after"))[1] == b"hello /after"
        finally:
            client.close()


def test_many_streams_mixed_with_the_frame_by_frame_path():
    """Sequential and concurrent streams on one connection, each kind of response."""
    cases = {
        "/": (b"200", b"hello /"),
        "/status/204": (b"204", b""),
        "/status/304": (b"304", b""),
        "/size/0": (b"200", b""),
        "/size/70000": (b"200", b"s" * 70000),  # (larger than a frame and the window)
    }
    with serve(app) as server:
        client = H2Client(server.port)
        try:
            for i in range(150):  # sequential
                path = list(cases)[i % len(cases)]
                headers, body, last = client.response(client.request(path))
                assert (headers[b":status"], body) == cases[path], path
                assert isinstance(last, h2.events.StreamEnded)
                if path == "/size/0":
                    assert headers[b"content-length"] == b"0"
            for _ in range(3):  # concurrent: 60 at once
                ids = {client.request(path): path for path in list(cases) * 12}
                for stream_id, path in ids.items():
                    headers, body, last = client.response(stream_id)
                    assert (headers[b":status"], body) == cases[path], path
            headers, body, last = client.response(client.request("/", "HEAD"))
            assert headers[b":status"] == b"200" and headers[b"content-length"] == b"7" and body == b""
            assert isinstance(last, h2.events.StreamEnded)
            stream_id = client.request("/trailers", headers=[(b"te", b"trailers")])
            headers, body, last = client.response(stream_id)
            trailers = [e for e in client.events if isinstance(e, h2.events.TrailersReceived) and e.stream_id == stream_id]
            assert body == b"body" and isinstance(last, h2.events.StreamEnded) and dict(trailers[0].headers) == {b"x-sum": b"42"}
            assert client.conn.open_outbound_streams == 0
        finally:
            client.close()


def test_a_repeated_field_block_makes_its_own_request_and_a_malformed_one_is_reset_each_time():
    """The connection remembers a checked field block: the same block again is a new
    ``Request`` (its own stream id and header list), a malformed one is never remembered."""
    server, client = pair(requests=2)
    for stream_id in (1, 3):
        server.send_response(stream_id, 204, [], None, None, b"")
    client.receive_data(server.data_to_send())
    fields = REQUEST + [(b"user-agent", b"t"), (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    requests = []
    for _ in range(3):
        client.send_headers(client.get_next_available_stream_id(), fields, end_stream=True)
        requests += [e for e in server.receive_data(client.data_to_send(), 0.0) if type(e).__name__ == "Request"]
    assert [r.stream_id for r in requests] == [5, 7, 9]
    assert len(server.requests) == 2  # (the GETs of pair(), these)
    requests[0].headers.append((b"x-added", b"by the app"))
    for request in requests[1:]:
        assert request.headers == [(b"host", b"localhost"), (b"user-agent", b"t"), (b"cookie", b"a=1; b=2")]
        assert (request.method, request.target, request.scheme, request.has_body) == ("GET", b"/", "http", False)
        assert request.headers is not requests[1].headers or request is requests[1]
    bad = REQUEST + [(b"connection", b"close")]
    for _ in range(2):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, bad, end_stream=True)
        assert not [e for e in server.receive_data(client.data_to_send(), 0.0) if type(e).__name__ == "Request"]
        resets = [e for e in client.receive_data(server.data_to_send()) if isinstance(e, h2.events.StreamReset)]
        assert [(e.stream_id, e.error_code) for e in resets] == [(stream_id, 1)]
    assert len(server.requests) == 2


def test_a_request_with_an_informational_status_is_a_stream_error_not_a_connection_error():
    """h2 would take ``:status: 1xx`` for an informational response and end the connection;
    a request with a ``:status`` is malformed (RFC 9113 §8.3): its stream is reset."""
    server, client = pair(requests=1)
    server.send_response(1, 200, [], None, 0, b"")
    client.receive_data(server.data_to_send())
    block = client.encoder.encode([(b":status", b"103")] + REQUEST)  # (h2's client would not send it)
    events = server.receive_data(HeadersFrame(3, block, flags=["END_HEADERS", "END_STREAM"]).serialize(), 0.0)
    assert not [e for e in events if type(e).__name__ == "Request"]
    out = server.data_to_send()
    frame, _ = Frame.parse_frame_header(memoryview(out[:9]))
    frame.parse_body(memoryview(out[9:]))
    assert (type(frame), frame.stream_id, frame.error_code) == (RstStreamFrame, 3, 1)
    client.send_headers(5, REQUEST, end_stream=True)
    assert [type(e).__name__ for e in server.receive_data(client.data_to_send(), 0.0)] == ["Request", "StreamEnd"]


def test_a_remembered_response_block_is_the_same_response_only():
    """Responses alike but for a field, the date or the length each reach the client as
    they are, remembered or not; an unhashable field is framed the usual way."""
    server, client = pair(requests=8)
    responses = [
        ([(b"x-a", b"1")], b"d1", 2), ([(b"x-a", b"1")], b"d1", 2), ([(b"x-a", b"2")], b"d1", 2),
        ([(b"x-a", b"1")], b"d2", 2), ([(b"x-a", b"1")], b"d2", 2), ([(b"x-a", b"1")], b"d2", 5),
        ([[b"x-a", b"3"]], b"d2", 2), ([(b"x-a", b"1")], b"d1", 2),
    ]
    for stream_id, (headers, date, length) in zip(range(1, 17, 2), responses):
        assert server.send_response(stream_id, 200, headers, date, length, b"x" * length)
    got = [dict(e.headers) for e in client.receive_data(server.data_to_send()) if isinstance(e, h2.events.ResponseReceived)]
    want = [
        {b":status": b"200", b"x-a": bytes(h[0][1]), b"date": d, b"content-length": str(n).encode()} for h, d, n in responses
    ]
    assert got == want
