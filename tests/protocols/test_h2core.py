"""h2's stream and connection as ``h2core.py`` makes them: our ``ServerStream`` built at
once with h2's attributes (no ``__class__`` assignment, which stops every thread on 3.13t),
state machines stepping through the connection's own transition table, with h2's states,
events and errors."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import h2.config
import h2.connection
import h2.settings
import h2.stream
import pytest
from h2.connection import ConnectionState
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.stream import StreamInputs, StreamState

from ftserver.protocols.http2 import H2Settings, HTTP2Connection
from ftserver.protocols.http2.h2core import ConnectionMachine, ServerStream, StreamMachine

REQUEST = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", b"/")]
PACKAGE = Path(__file__).resolve().parents[2] / "ftserver"


def opened(requests: int = 2) -> HTTP2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    server = HTTP2Connection(H2Settings())
    server.initiate()
    for _ in range(requests):
        client.send_headers(client.get_next_available_stream_id(), REQUEST, end_stream=True)
    server.receive_data(client.data_to_send(), 0.0)
    return server


def test_a_stream_is_ours_from_the_start_with_h2s_attributes():
    server = opened()
    stream = server.h2.streams[1]
    assert type(stream) is ServerStream
    assert type(stream.state_machine) is StreamMachine
    reference = h2.stream.H2Stream(1, server.h2.config, 65535, 65535)
    reference.state_machine.process_input(StreamInputs.RECV_HEADERS)
    reference.state_machine.process_input(StreamInputs.RECV_END_STREAM)
    # h2's attributes, with h2's values (an h2 upgrade adding one fails here; those every
    # stream starts with are class defaults)
    assert set(vars(stream)) <= set(vars(reference))
    assert {name: getattr(stream, name) for name in vars(reference)} == {
        **vars(reference), "state_machine": stream.state_machine, "_inbound_window_manager": stream._inbound_window_manager,
        "max_outbound_frame_size": server.h2.max_outbound_frame_size, "config": server.h2.config,
    }
    assert set(vars(stream.state_machine)) - {"transitions"} <= set(vars(reference.state_machine))
    assert {name: getattr(stream.state_machine, name) for name in vars(reference.state_machine)} == {
        **vars(reference.state_machine), "stream_id": 1,
    }
    assert vars(stream._inbound_window_manager) == vars(reference._inbound_window_manager)
    assert stream.max_outbound_frame_size == server.h2.max_outbound_frame_size
    assert stream.state_machine.state is StreamState.HALF_CLOSED_REMOTE
    assert server.h2.highest_inbound_stream_id == 3


def test_the_transition_tables_are_the_connections_own():
    server = opened()
    h2c = server.h2
    assert type(h2c.state_machine) is ConnectionMachine
    table = h2c.streams[1].state_machine.transitions
    assert table is h2c.streams[3].state_machine.transitions is h2c.stream_transitions
    assert table and table is not h2.stream._transitions
    assert h2c.state_machine.transitions
    for (func, target) in table.values():
        assert (func, target) in h2.stream._transitions.values()


def step(machine, input_):
    try:
        return [type(event).__name__ for event in machine.process_input(input_)], machine.state
    except H2ProtocolError as exc:
        return type(exc).__name__, machine.state


@pytest.mark.parametrize("first", list(StreamInputs))
@pytest.mark.parametrize("second", list(StreamInputs))
def test_every_pair_of_inputs_steps_as_h2s_machine_does(first, second):
    table: dict = {}
    for _ in range(2):  # (the second time from the remembered pairs)
        ours, h2s = StreamMachine(1, table, StreamState.IDLE), h2.stream.H2StreamStateMachine(1)
        for input_ in (StreamInputs.RECV_HEADERS, first, second):
            assert step(ours, input_) == step(h2s, input_)
            assert {name: getattr(ours, name) for name in vars(h2s)} == vars(h2s)
            assert set(vars(ours)) - {"transitions"} <= set(vars(h2s))


@pytest.mark.parametrize("first", list(h2.connection.ConnectionInputs))
def test_the_connection_machine_steps_as_h2s_does(first):
    ours = ConnectionMachine()
    h2s = h2.connection.H2ConnectionStateMachine()
    for input_ in (h2.connection.ConnectionInputs.RECV_HEADERS, first, first, h2.connection.ConnectionInputs.RECV_DATA):
        assert step(ours, input_) == step(h2s, input_)
    assert ConnectionMachine().state is ConnectionState.IDLE


def test_no_class_assignment_in_the_http2_package():
    # (on 3.13t ``obj.__class__ = X`` stops every other thread: per stream it was most
    # of HTTP/2's extra CPU at two threads)
    found = []
    for path in (PACKAGE / "protocols" / "http2").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                found += [f"{path.name}:{node.lineno}" for target in node.targets
                          if isinstance(target, ast.Attribute) and target.attr == "__class__"]
    assert found == []
    assert "__class__ =" not in inspect.getsource(ServerStream)


@pytest.mark.parametrize("remainder", [0, 1])
def test_open_streams_counts_and_forgets_as_h2s(remainder):
    """``ServerConnection._open_streams`` (states compared directly, closed streams kept in
    a plain dict) against h2's own method, over streams in every state."""
    server = opened(0)
    reference = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    states = list(StreamState) * 3
    for stream_id, state in enumerate(states, start=1):
        for conn in (server.h2, reference):
            stream = ServerStream(stream_id, conn.config, 65535, 65535, {})
            stream.state_machine.state = state
            stream.state_machine.stream_closed_by = h2.stream.StreamClosedBy.RECV_RST_STREAM if stream_id % 3 else None
            conn.streams[stream_id] = stream
    server.h2._closed_streams[999] = reference._closed_streams[999] = None
    ours = server.h2._open_streams(remainder)
    expected = h2.connection.H2Connection._open_streams(reference, remainder)
    assert ours == expected > 0
    assert list(server.h2.streams) == list(reference.streams)
    assert list(server.h2._closed_streams.items()) == list(reference._closed_streams.items())
    assert len(server.h2._closed_streams) > 1


def test_closed_streams_are_trimmed_to_h2s_limit(monkeypatch):
    server = opened(4)
    monkeypatch.setattr(server.h2, "MAX_CLOSED_STREAMS", 2)
    for stream_id in (1, 3, 5, 7):
        server.h2.streams[stream_id].state_machine.state = StreamState.CLOSED
    assert server.h2._open_streams(1) == 0
    assert list(server.h2._closed_streams) == [5, 7] and not server.h2.streams


def test_a_known_response_block_waits_for_a_stream_that_cannot_take_it_at_once():
    """The second response of the same fields finds its HPACK block known, but the stream's
    window (5 bytes) is smaller than the body: nothing is framed at once (the driver then
    sends it the usual way, as the window allows)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 20})
    server = HTTP2Connection(H2Settings())
    server.initiate()
    fields = [(b"content-type", b"text/plain")]
    for stream_id in (1, 3):  # (the first adds to the HPACK table: the second's block is kept)
        client.send_headers(stream_id, REQUEST, end_stream=True)
        server.receive_data(client.data_to_send(), 0.0)
        assert server.send_response(stream_id, 200, fields, b"date", 13, b"Hello, world!")
        client.receive_data(server.data_to_send())
    assert server.h2.encoder.blocks  # (the block is known)
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 5})
    client.send_headers(5, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send(), 0.0)
    server.data_to_send()
    assert not server.send_response(5, 200, fields, b"date", 13, b"Hello, world!")
    assert server.data_to_send() == b""
    machine = server.h2.streams[5].state_machine
    assert machine.state is StreamState.HALF_CLOSED_REMOTE and not machine.headers_sent
    assert server.h2.streams[5].outbound_flow_control_window == 5
