"""HTTP/2 flow control, malformed requests and abuse limits, with h2's own client object
(and hand-made frames) over a real socket."""

from __future__ import annotations

import asyncio
import threading
import time

import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import ContinuationFrame, DataFrame, GoAwayFrame, HeadersFrame, PingFrame, SettingsFrame, WindowUpdateFrame

from ftserver.testing import serve
from tests.apps import basic
from tests.threads.h2client import H2Client


def reset_code(client: H2Client, stream_id: int):
    _, _, last = client.response(stream_id)
    assert isinstance(last, h2.events.StreamReset), last
    return last.error_code


def send_body(client: H2Client, stream_id: int, data: bytes, end: bool = True, limit: float = 10.0) -> None:
    """Send ``data`` as the stream's window allows (reading WINDOW_UPDATEs meanwhile)."""
    deadline = time.monotonic() + limit
    view = memoryview(data)
    while view:
        window = min(client.conn.local_flow_control_window(stream_id), client.conn.max_outbound_frame_size)
        if window <= 0:
            assert time.monotonic() < deadline, "the server never opened the window"
            client.read()
            continue
        client.conn.send_data(stream_id, bytes(view[:window]), end_stream=end and len(view) <= window)
        client.flush()
        view = view[window:]
    if end and not data:
        client.conn.end_stream(stream_id)
        client.flush()


# -- flow control -------------------------------------------------------------------------


async def unread_or_echo(scope, receive, send):
    """``/noread``: never reads its body, answers when the client goes; else echo."""
    if scope["path"] == "/noread":
        await asyncio.sleep(30)
        return
    await basic.echo(scope, receive, send)


def test_a_stream_whose_app_does_not_read_cannot_stall_the_others():
    with serve(unread_or_echo) as server:
        client = H2Client(server.port)
        try:
            stuck = client.request("/noread", "POST", end=False)
            send_body(client, stuck, b"s" * 65535, end=False)  # its whole window, never read
            body = b"e" * 300_000  # more than the connection's initial window, too
            echo = client.request("/echo", "POST", end=False)
            send_body(client, echo, body)
            headers, received, last = client.response(echo)
            assert headers[b":status"] == b"200" and received == body
            assert client.conn.local_flow_control_window(stuck) == 0  # its window stayed closed
        finally:
            client.close()


def test_the_response_waits_for_the_stream_window():
    """A client that opens no window holds the application, not the server's memory."""
    sent = []

    async def big(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(20):
            await send({"type": "http.response.body", "body": b"x" * 100_000, "more_body": True})
            sent.append(i)
        await send({"type": "http.response.body", "body": b""})

    with serve(big) as server:
        client = H2Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000})
        client.auto_ack = False
        try:
            stream_id = client.request("/")
            got = lambda events: sum(len(e.data) for e in events if isinstance(e, h2.events.DataReceived))  # noqa: E731
            client.events_until(lambda events: got(events) >= 1000)
            time.sleep(0.3)  # the app had every chance to run ahead: it did not
            assert got(client.events) == 1000
            assert len(sent) <= 1
            client.auto_ack = True
            client.conn.increment_flow_control_window(2_000_000, stream_id)
            client.conn.increment_flow_control_window(2_000_000)
            client.flush()
            _, body, last = client.response(stream_id, limit=30)
            assert isinstance(last, h2.events.StreamEnded) and len(body) == 2_000_000
            assert sent == list(range(20))
        finally:
            client.close()


def test_zero_window_stall_is_timed_out():
    with serve(basic.stream, timeout_io=1.0) as server:
        client = H2Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
        try:
            stream_id = client.request("/")
            assert reset_code(client, stream_id) == ErrorCodes.CANCEL
            # the connection is still usable
            client.conn.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 65535})
            client.flush()
            other = client.request("/")
            assert client.response(other)[1].startswith(b"chunk 0")
        finally:
            client.close()


def test_window_update_overflow():
    with serve(basic.stream) as server:
        client = H2Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
        try:
            stream_id = client.request("/")
            client.send_raw(WindowUpdateFrame(stream_id, window_increment=2**31 - 1).serialize() * 2)
            assert reset_code(client, stream_id) == ErrorCodes.FLOW_CONTROL_ERROR  # a stream error
            client.send_raw(WindowUpdateFrame(0, window_increment=2**31 - 1).serialize())
            assert client.goaway().error_code == ErrorCodes.FLOW_CONTROL_ERROR  # a connection error
        finally:
            client.close()


# -- malformed requests: stream errors, the connection lives on ----------------------------

BASE = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]

MALFORMED = {
    "upper-case name": BASE + [(b"X-Upper", b"1")],
    "no :path": BASE[:3],
    "empty :path": BASE[:3] + [(b":path", b"")],
    "relative :path": BASE[:3] + [(b":path", b"x")],
    "connection field": BASE + [(b"connection", b"keep-alive")],
    "transfer-encoding": BASE + [(b"transfer-encoding", b"chunked")],
    "te gzip": BASE + [(b"te", b"gzip")],
    "pseudo after regular": BASE[:3] + [(b"x", b"1"), (b":path", b"/")],
    "unknown pseudo": BASE + [(b":status", b"200")],
    "repeated pseudo": BASE + [(b":method", b"POST")],
    "host differs": BASE + [(b"host", b"evil.example")],
    "userinfo authority": [BASE[0], BASE[1], (b":authority", b"user@host"), BASE[3]],
    "no authority nor host": [BASE[0], BASE[1], BASE[3]],
    "value with CR": BASE + [(b"x", b"a\rb")],
    "bad content-length": BASE + [(b"content-length", b"1x")],
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_request_is_a_stream_error(name):
    with serve(basic.hello) as server:
        client = H2Client(server.port, validate=False)
        try:
            stream_id = client.conn.get_next_available_stream_id()
            client.conn.send_headers(stream_id, MALFORMED[name], end_stream=True)
            client.flush()
            assert reset_code(client, stream_id) == ErrorCodes.PROTOCOL_ERROR
            ok = client.request("/")
            assert client.response(ok)[1] == b"Hello, world!"
        finally:
            client.close()
    assert server.stats()["requests"] == 1  # the app never saw the malformed one


def test_body_longer_than_content_length_is_a_stream_error():
    with serve(basic.echo) as server:
        client = H2Client(server.port, validate=False)
        try:
            stream_id = client.request("/", "POST", headers=[(b"content-length", b"3")], end=False)
            client.conn.send_data(stream_id, b"toolong", end_stream=True)
            client.flush()
            assert reset_code(client, stream_id) == ErrorCodes.PROTOCOL_ERROR
            short = client.request("/", "POST", headers=[(b"content-length", b"10")], end=False)
            client.conn.send_data(short, b"short", end_stream=True)
            client.flush()
            assert reset_code(client, short) == ErrorCodes.PROTOCOL_ERROR
        finally:
            client.close()


# -- floods: GOAWAY ENHANCE_YOUR_CALM -------------------------------------------------------


def test_rapid_reset_ends_the_connection():
    with serve(basic.sleepy) as server:
        client = H2Client(server.port)
        try:
            for _ in range(300):  # CVE-2023-44487: open, cancel, repeat
                stream_id = client.conn.get_next_available_stream_id()
                client.conn.send_headers(stream_id, BASE, end_stream=True)
                client.conn.reset_stream(stream_id, ErrorCodes.CANCEL)
            client.flush()
            assert client.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
        except (ConnectionResetError, BrokenPipeError):
            pass  # closed while we were still sending: the limit held too
        finally:
            client.close()


def test_continuation_flood_is_capped_before_decoding():
    with serve(basic.hello, h2_max_header_list_size=4096) as server:
        client = H2Client(server.port)
        try:
            frames = [HeadersFrame(1, data=b"\x82" * 1000).serialize()]  # no END_HEADERS
            frames += [ContinuationFrame(1, data=b"\x82" * 1000).serialize() for _ in range(10)]
            client.send_raw(b"".join(frames))
            assert client.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM  # at 4 KiB, not at 64 frames
        finally:
            client.close()


@pytest.mark.parametrize("flood", ["ping", "settings", "empty data"])
def test_control_floods_end_the_connection(flood):
    with serve(basic.echo) as server:
        client = H2Client(server.port)
        try:
            if flood == "ping":
                for i in range(150):
                    client.conn.ping(i.to_bytes(8, "big"))
            elif flood == "settings":
                client.send_raw(SettingsFrame(0).serialize() * 150)
            else:
                stream_id = client.request("/", "POST", end=False)
                for _ in range(1500):
                    client.conn.send_data(stream_id, b"")
            client.flush()
            assert client.goaway().error_code == ErrorCodes.ENHANCE_YOUR_CALM
        finally:
            client.close()


def test_a_few_pings_and_settings_are_fine():
    with serve(basic.hello) as server:
        client = H2Client(server.port)
        try:
            for i in range(20):
                client.conn.ping(i.to_bytes(8, "big"))
            client.send_raw(SettingsFrame(0).serialize() * 20)
            client.flush()
            assert client.response(client.request("/"))[1] == b"Hello, world!"
            acks = [e for e in client.events if isinstance(e, h2.events.PingAckReceived)]
            assert len(acks) == 20
        finally:
            client.close()


# -- connection lifetime --------------------------------------------------------------------


def test_graceful_shutdown_two_goaways_let_in_flight_streams_finish():
    """RFC 9113 §6.8: a GOAWAY naming 2^31-1 with a PING, then (at the PING's ACK) the GOAWAY
    naming the last stream taken: a stream the client opened between the two is served."""
    with serve(basic.sleepy) as server:
        client = H2Client(server.port)
        try:
            stream_id = client.request("/", headers=[], end=True)  # (answers after 1 s)
            client.events_until(lambda events: any(isinstance(e, h2.events.SettingsAcknowledged) for e in events))
            stopper = threading.Thread(target=server.server.stop)
            stopper.start()
            frames = client.raw_frames(lambda frames: any(isinstance(f, PingFrame) for f in frames))
            first = [f for f in frames if isinstance(f, GoAwayFrame)]
            assert first and first[0].error_code == ErrorCodes.NO_ERROR and first[0].last_stream_id == 2**31 - 1
            ping = [f for f in frames if isinstance(f, PingFrame)][0]
            late = client.request("/", headers=[], end=True)  # (in flight when the first GOAWAY was sent)
            client.send_raw(PingFrame(0, flags=["ACK"], opaque_data=ping.opaque_data).serialize())

            def both_done(frames):
                done = {f.stream_id for f in frames if isinstance(f, DataFrame) and "END_STREAM" in f.flags}
                return {stream_id, late} <= done

            frames += client.raw_frames(both_done)
            goaway = [f for f in frames if isinstance(f, GoAwayFrame)]
            assert len(goaway) == 2 and goaway[1].error_code == ErrorCodes.NO_ERROR and goaway[1].last_stream_id == late
            data = {f.stream_id: f.data for f in frames if isinstance(f, DataFrame) and f.data}
            assert data == {stream_id: b"done", late: b"done"}
            last_data = max(i for i, f in enumerate(frames) if isinstance(f, DataFrame))
            assert frames.index(goaway[1]) < last_data  # in flight at the GOAWAY, then finished
            stopper.join(10)
        finally:
            client.close()


def test_idle_connection_closes_after_keep_alive_timeout():
    with serve(basic.hello, timeout_keep_alive=1.0) as server:
        client = H2Client(server.port)
        try:
            assert client.response(client.request("/"))[1] == b"Hello, world!"
            assert client.goaway(limit=10).error_code == ErrorCodes.NO_ERROR
            client.events_until(lambda events: False, limit=5)
            assert client.closed
        finally:
            client.close()


def test_keep_alive_ping_and_its_timeout():
    with serve(basic.hello, h2_ping_interval=1.0, h2_ping_timeout=1.0, timeout_keep_alive=60) as server:
        answering = H2Client(server.port)
        silent = H2Client(server.port)
        try:
            answering.events_until(lambda events: any(isinstance(e, h2.events.PingReceived) for e in events))
            # (h2 queues the ACK; a client that never sends it is dropped)
            silent.flush = lambda: None  # type: ignore[method-assign]
            silent.events_until(lambda events: False, limit=8)
            assert silent.closed
            assert answering.response(answering.request("/"))[1] == b"Hello, world!"
        finally:
            answering.close()
            silent.close()


def test_streams_beyond_the_limit_are_refused_not_the_connection():
    with serve(basic.sleepy, h2_max_concurrent_streams=2) as server:
        client = H2Client(server.port)
        try:
            # (sent before the client reads the server's SETTINGS: h2 would not send the third)
            first, second, third = (client.request("/", end=True) for _ in range(3))
            assert reset_code(client, third) == ErrorCodes.REFUSED_STREAM
            assert client.response(first)[1] == b"done" and client.response(second)[1] == b"done"
            assert client.response(client.request("/"))[1] == b"done"  # room again
        finally:
            client.close()


def test_a_response_before_the_whole_body_resets_the_rest_with_no_error():
    with serve(basic.hello) as server:
        client = H2Client(server.port)
        try:
            stream_id = client.request("/", "POST", end=False)
            send_body(client, stream_id, b"x" * 1000, end=False)
            headers, body, last = client.response(stream_id)
            assert body == b"Hello, world!"
            client.events_until(lambda events: any(isinstance(e, h2.events.StreamReset) and e.stream_id == stream_id for e in events))
            (reset,) = [e for e in client.events if isinstance(e, h2.events.StreamReset)]
            assert reset.error_code == ErrorCodes.NO_ERROR
        finally:
            client.close()


def test_a_response_before_a_body_that_fits_the_window_lets_the_rest_come():
    """A body of known length the client can finish without a WINDOW_UPDATE is not reset
    (curl 7.88 fails on that reset); one larger than the window is (RST_STREAM NO_ERROR)."""
    with serve(basic.hello) as server:
        client = H2Client(server.port)
        try:
            small = client.request("/", "POST", headers=[(b"content-length", b"2000")], end=False)
            send_body(client, small, b"x" * 1000, end=False)
            assert client.response(small)[1] == b"Hello, world!"
            send_body(client, small, b"x" * 1000, end=True)  # (the rest, dropped)
            large = client.request("/", "POST", headers=[(b"content-length", b"200000")], end=False)
            send_body(client, large, b"x" * 1000, end=False)
            assert client.response(large)[1] == b"Hello, world!"
            client.events_until(lambda events: any(isinstance(e, h2.events.StreamReset) for e in events))
            assert client.response(client.request("/"))[1] == b"Hello, world!"  # the connection goes on
            resets = [(e.stream_id, e.error_code) for e in client.events if isinstance(e, h2.events.StreamReset)]
            assert resets == [(large, ErrorCodes.NO_ERROR)]
        finally:
            client.close()


def test_stalled_request_body_gets_408():
    with serve(basic.echo, timeout_io=1.0) as server:
        client = H2Client(server.port)
        try:
            stream_id = client.request("/", "POST", end=False)
            send_body(client, stream_id, b"partial", end=False)  # ... and nothing more
            headers, body, last = client.response(stream_id)
            assert headers[b":status"] == b"408"
        finally:
            client.close()


def test_prior_knowledge_with_the_h11_parser():
    import httpx

    with serve(basic.hello, http1="h11") as server:
        with httpx.Client(http1=False, http2=True, timeout=10) as client:
            assert client.get(server.url + "/").text == "Hello, world!"


def test_a_clients_graceful_goaway_still_gets_its_open_streams_answered():
    """RFC 9113 §6.8: a client's GOAWAY (NO_ERROR) opens no more streams, but those it opened
    are answered (h2 alone closes its side and drops what is queued: the app's send failed)."""
    with serve(basic.sleepy) as server:
        client = H2Client(server.port)
        try:
            first = client.request("/", headers=[], end=True)  # (answers after 1 s)
            second = client.request("/", headers=[], end=True)
            client.send_raw(GoAwayFrame(0, last_stream_id=0, error_code=ErrorCodes.NO_ERROR).serialize())

            def both_done(frames):
                done = {f.stream_id for f in frames if isinstance(f, DataFrame) and "END_STREAM" in f.flags}
                return {first, second} <= done

            frames = client.raw_frames(both_done)
            data = {f.stream_id: f.data for f in frames if isinstance(f, DataFrame) and f.data}
            assert data == {first: b"done", second: b"done"}
            assert not [f for f in frames if isinstance(f, GoAwayFrame) and f.error_code != ErrorCodes.NO_ERROR]
        finally:
            client.close()


def test_a_clients_goaway_with_an_error_ends_the_connection_quietly(server_log):
    """A GOAWAY with an error code: the connection closes, the app's answer is not attempted
    on it (no traceback in the log)."""
    with serve(basic.sleepy) as server:
        client = H2Client(server.port)
        try:
            client.request("/", headers=[], end=True)  # (answers after 1 s)
            client.send_raw(GoAwayFrame(0, last_stream_id=0, error_code=ErrorCodes.INTERNAL_ERROR).serialize())
            client.raw_frames(lambda frames: False, limit=3)  # (until the server closes)
            assert client.sock.recv(1) == b""
        finally:
            client.close()
        time.sleep(1.5)  # (the sleepy app's answer comes after 1 s)
    log = server_log.text
    assert "Traceback" not in log and "ERROR" not in log, log


def test_idle_below_a_sub_second_keep_alive_timeout_is_served():
    # As HTTP/1.1's (test_keep_alive.py): each idle period of 0.3 s (below 0.5) meets a
    # deadline check with a chance of about 0.3; before the fix such a check closed the
    # connection, whose idle clock had started from the clock cached at the check before.
    # Sixteen periods all missing a check: 0.7**16, about 1 run in 300.
    with serve(basic.hello, timeout_keep_alive=0.5) as server:
        for _ in range(8):
            client = H2Client(server.port)
            try:
                time.sleep(0.3)  # just opened
                assert client.response(client.request("/"))[1] == b"Hello, world!", "closed before 0.5 s idle (just opened)"
                time.sleep(0.3)  # just answered
                assert client.response(client.request("/"))[1] == b"Hello, world!", "closed before 0.5 s idle (after an answer)"
            finally:
                client.close()
