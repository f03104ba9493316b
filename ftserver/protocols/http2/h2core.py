"""h2's connection and stream as ``HTTP2Connection`` uses them (h2 4.x's private methods
and attributes used here are pinned by ``tests/threads/test_h2_fast_path.py``,
``tests/protocols/test_h2_receive_fast.py`` and the HTTP/2 tests): a byte cap on header
blocks, stream errors where h2 would end the connection, repeated request HEADERS read
directly, and a whole response framed at once."""

from __future__ import annotations

import struct
from typing import Any, Final

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection, H2ConnectionStateMachine
from h2.events import PriorityUpdated, RequestReceived, StreamEnded, TrailersReceived
from h2.exceptions import DenialOfServiceError, ProtocolError as H2ProtocolError, StreamIDTooLowError
from h2.frame_buffer import FrameBuffer
from h2.stream import H2Stream, H2StreamStateMachine, StreamClosedBy, StreamInputs, StreamState
import h2.stream
from h2.windows import WindowManager
from hyperframe.frame import HeadersFrame

__all__ = ["ConnectionMachine", "HeaderBlockCap", "ServerConnection", "ServerStream", "StreamMachine"]

#: A frame header (RFC 9113 §4.1): length and type as one word, flags, stream id.
_frame_header: Final = struct.Struct(">LBL").pack
_read_frame_header: Final = struct.Struct(">LBL").unpack_from
_read_priority: Final = struct.Struct(">LB").unpack_from
#: HEADERS flags (RFC 9113 §6.2): END_STREAM, END_HEADERS, PADDED, PRIORITY.
_END_STREAM: Final = 0x1
_END_HEADERS: Final = 0x4
_PRIORITY: Final = 0x20
_IDLE: Final = StreamState.IDLE
_OPEN: Final = StreamState.OPEN
_HALF_CLOSED_REMOTE: Final = StreamState.HALF_CLOSED_REMOTE
_HALF_CLOSED_LOCAL: Final = StreamState.HALF_CLOSED_LOCAL
_STREAM_CLOSED: Final = StreamState.CLOSED
_SERVER_OPEN: Final = ConnectionState.SERVER_OPEN
_SENT_END: Final = StreamClosedBy.SEND_END_STREAM
#: h2's transition tables, ``(state, input) -> (function, next state)``: module-level
#: dicts every worker thread would look up on every frame (see ``StreamMachine``).
_STREAM_TRANSITIONS: Final = h2.stream._transitions
_CONNECTION_TRANSITIONS: Final = H2ConnectionStateMachine._transitions


class StreamMachine(H2StreamStateMachine):
    """h2's stream state machine, stepping through its connection's own copy of h2's
    transition table (``transitions``, keyed by the two enum values as one small int and
    filled as pairs occur). On 3.13t a lookup in h2's table, a dict the main thread made
    with keys it owns, takes the dict's lock (the lock-free read cannot take a reference to
    such a key), so the worker threads of a server queue on it for every frame; hashing its
    enum keys also runs Python code (``Enum.__hash__``) twice per lookup."""

    # (h2's attributes, tests/protocols/test_h2core.py checks them: those every stream
    # starts with, as class defaults)
    headers_sent: bool | None = None
    trailers_sent: bool | None = None
    trailers_received: bool | None = None
    stream_closed_by: StreamClosedBy | None = None

    def __init__(self, stream_id: int, transitions: dict[int, tuple[Any, Any]], state: StreamState) -> None:
        # (``state`` other than IDLE: a client stream whose request HEADERS were received)
        self.state = state
        self.stream_id = stream_id
        if state is _IDLE:
            self.client: bool | None = None
            self.headers_received: bool | None = None
        else:
            self.client = False
            self.headers_received = True
        self.transitions = transitions

    def process_input(self, input_: StreamInputs) -> Any:
        previous = self.state
        try:
            key = previous._value_ << 5 | input_._value_
        except AttributeError:  # (not an input: h2's error)
            return super().process_input(input_)
        entry = self.transitions.get(key)  # (the connection's own dict)
        if entry is None:
            pair = (previous, input_)
            if pair in _STREAM_TRANSITIONS:  # (else h2's own path raises its error)
                func, target = _STREAM_TRANSITIONS[pair]
                self.transitions[key] = (func, target)  # (a tuple of this thread)
            return super().process_input(input_)
        func, target = entry
        self.state = target
        if func is None:
            return []
        try:
            return func(self, previous)
        except H2ProtocolError:
            self.state = _STREAM_CLOSED
            raise
        except AssertionError as err:  # (as h2's)
            self.state = _STREAM_CLOSED
            raise H2ProtocolError(err) from err


class ConnectionMachine(H2ConnectionStateMachine):
    """h2's connection state machine with its own copy of h2's transition table, for the
    reason ``StreamMachine`` gives."""

    def __init__(self) -> None:
        super().__init__()
        self.transitions: dict[int, Any] = {}

    def process_input(self, input_: Any) -> Any:
        state = self.state
        try:
            key = state._value_ << 5 | input_._value_
        except AttributeError:
            return super().process_input(input_)
        entry = self.transitions.get(key)
        if entry is None:
            pair = (state, input_)
            if pair in _CONNECTION_TRANSITIONS:
                func, target = _CONNECTION_TRANSITIONS[pair]
                self.transitions[key] = (func, target)
            return super().process_input(input_)
        func, target = entry
        self.state = target
        return [] if func is None else func()


class HeaderBlockCap(FrameBuffer):
    """h2's frame buffer with a byte cap on a header block before it is decoded: a
    CONTINUATION flood is refused at ``cap`` bytes, not at h2's 64 frames."""

    def __init__(self, cap: int) -> None:
        super().__init__(server=True)
        self.cap = cap

    def _update_header_buffer(self, f: Any) -> Any:
        f = super()._update_header_buffer(f)
        if self._headers_buffer:
            if sum(len(frame.data) for frame in self._headers_buffer) > self.cap:
                raise DenialOfServiceError(f"header block larger than {self.cap} bytes")
        elif type(f) is HeadersFrame and len(f.data) > self.cap:
            raise DenialOfServiceError(f"header block larger than {self.cap} bytes")
        return f


class ServerConnection(H2Connection):
    """h2's connection, with two stream errors where h2 would end the whole connection: a
    request body that does not match its ``content-length`` (RFC 9113 §8.1.1:
    ``request_from_fields`` and the driver check it), and a stream beyond
    ``max_concurrent_streams`` (RFC 9113 §5.1.2: refused, its id in ``refused``)."""

    def __init__(self, config: H2Configuration, max_streams: int) -> None:
        super().__init__(config)
        self.state_machine = ConnectionMachine()
        self.stream_transitions: dict[int, tuple[Any, Any]] = {}  # (StreamMachine)
        self.refused: set[int] = set()
        self.counting = True
        self.max_streams = max_streams  # (our SETTINGS_MAX_CONCURRENT_STREAMS)
        # How recently closed streams were closed (h2 answers their late frames by it): a
        # plain dict, trimmed to h2's limit once per count (``_open_streams``), not per stream.
        self._closed_streams: dict[int, Any] = {}

    @property
    def open_inbound_streams(self) -> int:
        return super().open_inbound_streams if self.counting else 0

    def _open_streams(self, remainder: int) -> int:
        """h2's: the open streams of one side counted, the closed ones moved to
        ``_closed_streams``; states compared directly (h2 reads three properties and a
        module-level list per stream)."""
        count = 0
        closed = None
        for stream_id, stream in self.streams.items():
            state = stream.state_machine.state
            if state is _STREAM_CLOSED:
                if closed is None:
                    closed = [stream_id]
                else:
                    closed.append(stream_id)
            elif stream_id & 1 == remainder and (
                state is _HALF_CLOSED_REMOTE or state is _OPEN or state is _HALF_CLOSED_LOCAL
            ):
                count += 1
        if closed is not None:
            streams = self.streams
            record = self._closed_streams
            for stream_id in closed:
                record[stream_id] = streams.pop(stream_id).state_machine.stream_closed_by
            if len(record) > self.MAX_CLOSED_STREAMS:
                for stream_id in list(record)[: len(record) - self.MAX_CLOSED_STREAMS]:
                    del record[stream_id]
        return count

    def receive_data(self, data: Any) -> Any:
        """h2's, with the HEADERS frames ``receive_frames`` takes made into h2's events."""
        opened: list[Any] = []
        events = self.receive_frames(data, opened)
        if not opened:
            return events
        taken: list[Any] = []
        for stream_id, _, headers, ended, priority in opened:
            event = RequestReceived(stream_id=stream_id)
            event.headers = list(headers)
            taken.append(event)
            if ended:
                event.stream_ended = StreamEnded(stream_id=stream_id)
                taken.append(event.stream_ended)
            if priority is not None:
                event.priority_updated = update = PriorityUpdated()
                update.stream_id = stream_id
                update.depends_on, update.exclusive, update.weight = priority
                taken.append(update)
        return taken + events

    def receive_frames(self, data: Any, opened: list[Any]) -> Any:
        """h2's ``receive_data``, but the HEADERS frames that open a stream by a field block
        the decoder knows (``CachingDecoder``), at the start of ``data``, are taken here
        without h2's frame objects, per-frame dispatch and events: each adds ``(stream_id,
        block, headers, end_stream, priority)`` to ``opened`` (``priority``: None or
        ``(depends_on, exclusive, weight)``), the stream opened as h2 opens it. h2 takes the
        rest of the bytes, from the first other frame on, and its events are returned."""
        buffer = self.incoming_buffer
        if (
            type(data) is not bytes
            or buffer._data
            or buffer._preamble_len
            or buffer._headers_buffer
            or self.state_machine.state is not _SERVER_OPEN
        ):
            return super().receive_data(data)
        offset = self._receive_known_headers(data, opened)
        if offset < len(data):
            return super().receive_data(data[offset:] if offset else data)
        return []

    def _receive_known_headers(self, data: bytes, opened: list[Any]) -> int:
        """(``receive_frames``) The offset of the first frame left to h2. A frame is taken
        when h2 would take it as opening a stream without an error or a frame to send and
        its block is remembered; h2's connection and stream are left as
        ``_receive_headers_frame`` would leave them (``tests/protocols/test_h2_receive_fast.py``
        holds h2 to that). Another frame type, PADDED, no END_HEADERS, a stream id that is
        not a new client stream's, a block not remembered, or one stream too many stop it."""
        end = len(data)
        offset = 0
        blocks = self.decoder.blocks
        limit = min(self.max_inbound_frame_size, self.incoming_buffer.cap)  # (a larger block: h2's error)
        highest = self.highest_inbound_stream_id
        count = -1  # open streams
        windows = (0, 0)  # the initial windows of a new stream: ours, the client's
        while end - offset >= 9:
            word, flags, stream_id = _read_frame_header(data, offset)
            length = word >> 8
            start = offset + 9
            stop = start + length
            if (
                word & 0xFF != 1  # (HEADERS)
                or flags & 0xDE != _END_HEADERS  # (END_HEADERS, and no flag but END_STREAM and PRIORITY)
                or stop > end
                or length > limit
                or stream_id & 0x80000001 != 1  # (a client's stream, without the reserved bit)
                or stream_id <= highest
            ):
                break
            priority = None
            if flags & _PRIORITY:
                if length < 5:
                    break
                dependency, weight = _read_priority(data, start)
                depends_on = dependency & 0x7FFFFFFF
                if depends_on == stream_id:  # (h2's connection error)
                    break
                priority = (depends_on, bool(dependency >> 31), weight + 1)
                start += 5
            block = data[start:stop]
            headers = blocks.get(block)
            if headers is None:
                break
            if count < 0:  # (h2's count, which also forgets closed streams: once per read,
                count = self._open_streams(1)  # as no stream closes meanwhile)
                windows = (self.local_settings.initial_window_size, self.remote_settings.initial_window_size)
            if count >= self.max_streams:
                break
            count += 1
            # (h2's _begin_new_stream, whose checks passed above)
            ended = flags & _END_STREAM == _END_STREAM
            self.streams[stream_id] = ServerStream(
                stream_id, self.config, windows[0], windows[1], self.stream_transitions,
                _HALF_CLOSED_REMOTE if ended else _OPEN,  # (h2's request_received, END_STREAM)
                self.max_outbound_frame_size,
            )
            self.highest_inbound_stream_id = highest = stream_id
            opened.append((stream_id, block, headers, ended, priority))
            offset = stop
        return offset

    def _receive_headers_frame(self, frame: Any) -> Any:
        if frame.stream_id not in self.streams:
            if super().open_inbound_streams >= self.max_streams:
                self.refused.add(frame.stream_id)
            self.counting = False  # (h2's own check would end the connection)
        try:
            return super()._receive_headers_frame(frame)
        finally:
            self.counting = True

    def _receive_goaway_frame(self, frame: Any) -> Any:
        # A graceful GOAWAY (NO_ERROR) from the client opens no more streams, but those it
        # opened are still answered (RFC 9113 §6.8): h2 would close its side at any GOAWAY
        # and drop what is queued to send.
        was_open = self.state_machine.state is _SERVER_OPEN
        pending = self._data_to_send
        frames, events = super()._receive_goaway_frame(frame)
        if was_open and frame.error_code == 0:
            self.state_machine.state = _SERVER_OPEN
            self._data_to_send = pending + self._data_to_send
        return frames, events

    def _begin_new_stream(self, stream_id: int, allowed_ids: Any) -> Any:
        # h2's, making a ServerStream at once: h2 makes an H2Stream, and turning it into
        # ours by ``__class__`` assignment stops every other thread on 3.13t (measured:
        # 0.2 µs alone, 10 µs with a second thread running, per assignment).
        outbound = not stream_id & 1  # (a server's own streams are even)
        highest = self.highest_outbound_stream_id if outbound else self.highest_inbound_stream_id
        if stream_id <= highest:
            raise StreamIDTooLowError(stream_id, highest)
        if stream_id % 2 != allowed_ids:
            raise H2ProtocolError("Invalid stream ID for peer.")
        stream = ServerStream(
            stream_id, self.config, self.local_settings.initial_window_size, self.remote_settings.initial_window_size,
            self.stream_transitions,
        )
        stream.max_outbound_frame_size = self.max_outbound_frame_size
        self.streams[stream_id] = stream
        if outbound:
            self.highest_outbound_stream_id = stream_id
        else:
            self.highest_inbound_stream_id = stream_id
        return stream

    # -- a whole response at once (HTTP2Connection.send_response) ------------------------

    def whole_response_stream(self, stream_id: int, size: int) -> Any:
        """The stream, if a response with ``size`` body bytes can go on it at once: it is
        half-closed (remote) with nothing sent yet, the connection is open, and the body
        fits one frame and both send windows; else None."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return None
        machine = stream.state_machine
        if (
            machine.state is not _HALF_CLOSED_REMOTE
            or machine.headers_sent
            or self.state_machine.state is not _SERVER_OPEN
            or size > self.max_outbound_frame_size
            or size > stream.outbound_flow_control_window
            or size > self.outbound_flow_control_window
        ):
            return None
        return stream

    def send_whole(self, stream_id: int, block: bytes, body: bytes) -> bool:
        """HEADERS (and CONTINUATION) with the HPACK ``block``, then ``body`` as one DATA
        frame with END_STREAM (END_STREAM on the HEADERS when empty), if the stream can take
        it at once (``whole_response_stream``: else False, nothing done); the stream and the
        windows left as ``send_headers`` and ``send_data`` would leave them (closed by
        END_STREAM, windows smaller by the body)."""
        stream = self.streams.get(stream_id)
        if stream is None:
            return False
        machine = stream.state_machine
        size = len(body)
        max_frame = self.max_outbound_frame_size
        if (
            machine.state is not _HALF_CLOSED_REMOTE
            or machine.headers_sent
            or self.state_machine.state is not _SERVER_OPEN
            or size > max_frame
            or size > stream.outbound_flow_control_window
            or size > self.outbound_flow_control_window
        ):
            return False
        if len(block) <= max_frame:
            frames = _frame_header(len(block) << 8 | 1, 4 if size else 5, stream_id) + block
        else:  # HEADERS and CONTINUATION frames (RFC 9113 §6.10)
            frames = _frame_header(max_frame << 8 | 1, 0 if size else 1, stream_id) + block[:max_frame]
            for start in range(max_frame, len(block), max_frame):
                piece = block[start : start + max_frame]
                end_headers = 4 if start + max_frame >= len(block) else 0
                frames += _frame_header(len(piece) << 8 | 9, end_headers, stream_id) + piece
        if size:
            frames += _frame_header(size << 8, 1, stream_id) + body
            stream.outbound_flow_control_window -= size
            self.outbound_flow_control_window -= size
        machine.headers_sent = True
        machine.state = _STREAM_CLOSED
        machine.stream_closed_by = _SENT_END
        self._data_to_send += frames  # (h2 4.4's output buffer, pinned by test_h2_fast_path.py)
        return True

    def release(self) -> None:
        """The connection is over: h2's table of frame handlers (bound methods of the
        connection) goes, so the connection is freed without the cyclic GC."""
        self._frame_dispatch_table = {}


class ServerStream(H2Stream):
    """h2's stream, receiving a field block without what ``request.py`` does itself: no
    ``content-length`` tracking (the driver checks it: a stream error), no informational
    response check (a ``:status`` in a request or its trailers is malformed there: a stream
    error), no header pipeline (validation and normalization are off in our configuration)."""

    # (h2's attributes that every stream starts with, as class defaults)
    request_method: bytes | None = None
    _expected_content_length: int | None = None
    _actual_content_length = 0
    _authority: bytes | None = None

    def __init__(
        self, stream_id: int, config: H2Configuration, inbound_window_size: int, outbound_window_size: int,
        transitions: dict[int, tuple[Any, Any]], state: StreamState = StreamState.IDLE,
        max_outbound_frame_size: int | None = None,
    ) -> None:
        # (h2's H2Stream.__init__, with our state machine; tests/protocols/test_h2core.py
        # checks that the attributes are h2's)
        self.state_machine = StreamMachine(stream_id, transitions, state)
        self.stream_id = stream_id
        self.max_outbound_frame_size = max_outbound_frame_size
        self.outbound_flow_control_window = outbound_window_size
        self._inbound_window_manager = WindowManager(inbound_window_size)
        self.config = config

    def receive_headers(self, headers: Any, end_stream: bool, header_encoding: Any) -> Any:
        machine = self.state_machine
        events = machine.process_input(StreamInputs.RECV_HEADERS)
        event = events[0]
        if end_stream:
            ended = machine.process_input(StreamInputs.RECV_END_STREAM)
            event.stream_ended = ended[0]
            events += ended
        elif type(event) is TrailersReceived:
            raise H2ProtocolError("Trailers must have END_STREAM set")
        event.headers = headers
        return [], events

    def _initialize_content_length(self, headers: Any) -> None:
        pass
