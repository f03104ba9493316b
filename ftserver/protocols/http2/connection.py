"""One HTTP/2 connection, sans-I/O, on the ``h2`` library: bytes in, stream events out.

``HTTP2Connection`` turns h2's events into the neutral ``Request`` and the stream events
below, validates requests itself (``request.py``: a malformed request resets its stream,
never the connection), keeps the receive windows (the connection's given back as bytes
arrive, each stream's as its application reads), caps header blocks before HPACK decodes
them, and counts the floods a client can send cheaply (``H2Settings``).
"""

from __future__ import annotations

import re
from typing import Any, Final

from h2.config import H2Configuration
from h2.connection import ConnectionState
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    PingReceived,
    PriorityUpdated,
    RemoteSettingsChanged,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    UnknownFrameReceived,
    WindowUpdated,
)
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes, Settings
import hpack.hpack
import hpack.table
from hyperframe.frame import GoAwayFrame

from ..default_headers import DefaultHeaders
from ..errors import LocalProtocolError, ProtocolError
from ..events import Request
from ..http1.common import TOKEN_RE
from .h2core import HeaderBlockCap, ServerConnection
from .hpack_cache import MAX_BLOCK_BYTES, MAX_BLOCKS, CachingDecoder, CachingEncoder
from .request import CONNECTION_FIELDS, MalformedRequest, check_trailers, request_from_fields
from .settings import ABUSE_WINDOW, H2Settings

__all__ = [
    "H2ConnectionError",
    "HTTP2Connection",
    "StreamBody",
    "StreamEnd",
    "StreamGone",
    "WindowOpened",
    "GoingAway",
]

#: The largest flow-control window (RFC 9113 §6.9.1).
MAX_WINDOW: Final = 2**31 - 1
#: Statuses whose responses carry no content (RFC 9110 §15.3.5, §15.4.5).
NO_CONTENT: Final = frozenset((204, 304))
_match_token: Final = TOKEN_RE.fullmatch
_search_unsafe: Final = re.compile(rb"[\r\n\x00]").search
_STATUS: Final = {code: str(code).encode() for code in range(100, 1000)}
#: Field blocks remembered per connection as the ``Request`` they made (a client repeating
#: a request is not checked again), and only blocks of up to ``MAX_BLOCK_BYTES``.
MAX_REQUESTS: Final = 16


class _Silent:
    """hpack's module logger, silenced: it logs at debug level for every header field, and
    on 3.13t each call reads a ``threading.local`` (``Logger._is_disabled``), which
    serializes threads; measured: 8% of an HTTP/2 request's bytecodes. Nothing of ours
    reads those lines."""

    def debug(self, *args: Any, **kwargs: Any) -> None:
        pass


hpack.hpack.log = hpack.table.log = _Silent()  # type: ignore[assignment]


class H2ConnectionError(ProtocolError):
    """The connection must end: a GOAWAY with ``error_code`` is queued in ``data_to_send``."""

    def __init__(self, message: str, error_code: int) -> None:
        super().__init__(message)
        self.error_code = error_code


class StreamBody:
    """Request body bytes of a stream."""

    __slots__ = ("stream_id", "data")

    def __init__(self, stream_id: int, data: bytes) -> None:
        self.stream_id = stream_id
        self.data = data


class StreamEnd:
    """A stream's request body is complete (its trailers, if any, checked and dropped)."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class StreamGone:
    """A stream was reset, by the client or (a malformed body) by us: nothing more goes
    either way on it."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class WindowOpened:
    """Send windows grew: a stream's, or every stream's (``stream_id`` 0)."""

    __slots__ = ("stream_id",)

    def __init__(self, stream_id: int) -> None:
        self.stream_id = stream_id


class GoingAway:
    """The client sent GOAWAY: no new streams; those up to ``last_stream_id`` go on."""

    __slots__ = ("last_stream_id",)

    def __init__(self, last_stream_id: int) -> None:
        self.last_stream_id = last_stream_id


class HTTP2Connection:
    """The server side of one HTTP/2 connection.

    ``receive_data(data, now)`` returns the events of the bytes: ``Request`` (a stream
    opens), ``StreamBody``, ``StreamEnd``, ``StreamGone``, ``WindowOpened``, ``GoingAway``;
    it raises ``H2ConnectionError`` when the connection must end. With ``extended_connect``
    its SETTINGS allow the extended CONNECT of RFC 8441 (WebSocket over HTTP/2): such a
    request is a ``request.ExtendedConnect``. Whatever is to be sent
    (SETTINGS, ACKs, WINDOW_UPDATEs, resets, responses) waits in ``data_to_send()``.
    """

    def __init__(
        self, settings: H2Settings, server_header: bytes | None = None, defaults: DefaultHeaders | None = None,
        extended_connect: bool = False,
    ) -> None:
        self.settings = settings
        self.extended_connect = extended_connect  # SETTINGS_ENABLE_CONNECT_PROTOCOL=1 sent (RFC 8441 §3)
        self.server_header = server_header
        self.defaults = defaults  # --header fields
        config = H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=False,  # request.py does it: a stream error, not h2's connection error
            normalize_inbound_headers=False,
            validate_outbound_headers=False,  # response_fields() does it
            normalize_outbound_headers=False,
        )
        h2 = ServerConnection(config, settings.max_concurrent_streams)
        h2.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
                SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
                SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
                **({SettingCodes.ENABLE_CONNECT_PROTOCOL: 1} if extended_connect else {}),
            },
        )
        h2.max_inbound_frame_size = settings.max_frame_size
        h2.decoder = CachingDecoder(settings.max_header_list_size)
        h2.encoder = CachingEncoder()
        h2.incoming_buffer = HeaderBlockCap(settings.max_header_list_size)
        self.h2 = h2
        self.window = settings.initial_window_size
        self.requests: dict[tuple[Any, bool], tuple[Any, ...]] = {}  # checked field blocks (_on_request)
        self.known: dict[bytes, tuple[int, bool, tuple[Any, ...]]] = {}  # the same, by HPACK block (_on_opened)
        self.stream_unacked: dict[int, int] = {}  # per open request body: bytes read, not given back
        self.unacked = 0  # connection-level bytes received and not yet given back
        self.last_stream_id = 0  # the highest stream a Request was returned for
        self.goaway_sent = False
        self.period_start = 0.0
        self.resets = self.pings = self.settings_frames = self.empty_frames = 0

    # -- starting --------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the server's preface (SETTINGS) and the larger connection window."""
        self.h2.initiate_connection()
        self._open_connection_window()

    def initiate_upgrade(self, settings_header: bytes, request: Request) -> None:
        """Start after an HTTP/1.1 ``Upgrade: h2c`` (RFC 7540 §3.2): the client's
        ``HTTP2-Settings`` applied, stream 1 carrying ``request``, whose body (if any) the
        HTTP/1.1 connection read whole. Raises ``ProtocolError`` on a bad settings field."""
        try:
            self.h2.initiate_upgrade_connection(settings_header)
        except (H2ProtocolError, ValueError, TypeError) as exc:  # binascii.Error is a ValueError
            raise ProtocolError(f"invalid HTTP2-Settings: {exc}") from exc
        self._open_connection_window()
        self.last_stream_id = request.stream_id = 1

    def _open_connection_window(self) -> None:
        extra = self.window - 65535
        if extra > 0:
            self.h2.increment_flow_control_window(extra)

    # -- received bytes --------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Any]:
        if now - self.period_start >= ABUSE_WINDOW:
            self.period_start = now
            self.resets = self.pings = self.settings_frames = self.empty_frames = 0
        h2 = self.h2
        changes = h2.decoder.header_table.changes  # (the table the taken blocks were decoded under)
        opened: list[Any] = []
        try:
            h2_events = h2.receive_frames(data, opened)
        except H2ProtocolError as exc:
            raise H2ConnectionError(str(exc), int(getattr(exc, "error_code", ErrorCodes.PROTOCOL_ERROR))) from None
        events: list[Any] = []
        append = events.append
        if opened:
            self._on_opened(opened, changes, append)
        for event in h2_events:
            kind = type(event)
            if kind is DataReceived:
                self._on_data(event, append)
            elif kind is RequestReceived:
                self._on_request(event, append)
            elif kind is StreamEnded:
                self.stream_unacked.pop(event.stream_id, None)
                append(StreamEnd(event.stream_id))
            elif kind is WindowUpdated:
                append(WindowOpened(event.stream_id))
            elif kind is StreamReset:
                if event.remote_reset:
                    self._count("resets", self.settings.max_resets, "RST_STREAM")
                self.stream_unacked.pop(event.stream_id, None)
                append(StreamGone(event.stream_id))
            elif kind is TrailersReceived:
                self._on_trailers(event, append)
            elif kind is RemoteSettingsChanged:
                self._count("settings_frames", self.settings.max_settings, "SETTINGS")
                if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    append(WindowOpened(0))
            elif kind is PingReceived:
                self._count("pings", self.settings.max_pings, "PING")
            elif kind is ConnectionTerminated:
                if event.error_code:  # the client ends the connection on an error: nothing more goes
                    raise H2ConnectionError(f"GOAWAY from the client ({event.error_code!r})", int(event.error_code))
                append(GoingAway(event.last_stream_id or 0))
            elif kind is PriorityUpdated or kind is UnknownFrameReceived:
                self._count("empty_frames", self.settings.max_empty_frames, "PRIORITY/unknown frames")
            elif kind is PingAckReceived:
                append(event)
        return events

    def _on_opened(self, opened: list[Any], changes: int, append: Any) -> None:
        """The streams ``ServerConnection.receive_frames`` opened, as ``_on_request`` takes
        them, but a block seen before under the same HPACK table (``changes``) and with the
        same END_STREAM makes its ``Request`` at once (``known``). No ``StreamEnd`` follows a
        request without a body (the driver has nothing to end), nor is its PRIORITY counted:
        h2's path counts it and gives it back."""
        known = self.known
        for stream_id, block, headers, ended, _ in opened:
            seen = known.get(block)
            if seen is not None and seen[0] == changes and seen[1] is ended and not self.goaway_sent:
                method, target, authority, scheme, fields, length, has_body = seen[2]
                self.last_stream_id = stream_id
                if has_body:
                    self.stream_unacked[stream_id] = 0
                append(Request(stream_id, method, target, authority, scheme, "2", list(fields), length, has_body))
                continue
            remembered = self._on_fields(stream_id, headers, ended, append)
            if remembered is not None and (seen is not None or len(known) < MAX_REQUESTS):
                known[block] = (changes, ended, remembered)
            if ended:
                self.stream_unacked.pop(stream_id, None)
                append(StreamEnd(stream_id))

    def _on_request(self, event: RequestReceived, append: Any) -> None:
        if event.priority_updated is not None:
            self.empty_frames -= 1  # its PriorityUpdated follows: not a flood frame
        self._on_fields(event.stream_id, event.headers, event.stream_ended is not None, append)

    def _on_fields(self, stream_id: int, fields: Any, ended: bool, append: Any) -> tuple[Any, ...] | None:
        """A stream opened by the field block ``fields``: its ``Request`` (or a reset);
        returns what makes the same request again (for ``known``) when it is a plain,
        cacheable request."""
        h2 = self.h2
        if h2.refused and stream_id in h2.refused:
            h2.refused.discard(stream_id)
            self._count("resets", self.settings.max_resets, "refused streams")
            h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return None
        if self.goaway_sent and stream_id > self.last_stream_id:
            h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)  # (RFC 9113 §6.8)
            return None
        key = (tuple(fields), ended)
        seen = self.requests.get(key)
        if seen is not None:  # the same field block as before: already checked
            method, target, authority, scheme, headers, length, has_body = seen
            request = Request(stream_id, method, target, authority, scheme, "2", list(headers), length, has_body)
        else:
            try:
                request = request_from_fields(stream_id, fields, ended, self.extended_connect)
            except MalformedRequest:
                self._reset(stream_id)
                return None
            if type(request) is Request and sum(len(name) + len(value) for name, value in fields) <= MAX_BLOCK_BYTES:
                seen = (
                    request.method, request.target, request.authority, request.scheme, tuple(request.headers),
                    request.content_length, request.has_body,
                )
                if len(self.requests) < MAX_REQUESTS:
                    self.requests[key] = seen
        self.last_stream_id = stream_id
        if request.has_body:
            self.stream_unacked[stream_id] = 0
        append(request)
        return seen

    def _on_data(self, event: DataReceived, append: Any) -> None:
        data = event.data
        flow = event.flow_controlled_length
        if flow:
            # The connection's window is given back as bytes arrive; the stream's as its
            # app reads them (acknowledge), padding at once.
            unacked = self.unacked + flow
            if unacked >= self.window >> 1:
                self.h2.increment_flow_control_window(unacked)
                unacked = 0
            self.unacked = unacked
            padding = flow - len(data)
            if padding and event.stream_ended is None:
                self.acknowledge(event.stream_id, padding)
        elif event.stream_ended is None:
            self._count("empty_frames", self.settings.max_empty_frames, "empty DATA")
        if data:
            append(StreamBody(event.stream_id, data))

    def _on_trailers(self, event: TrailersReceived, append: Any) -> None:
        try:
            check_trailers(event.headers)
        except MalformedRequest:
            self._reset(event.stream_id)
            append(StreamGone(event.stream_id))

    def _reset(self, stream_id: int) -> None:
        """A stream error (a malformed request): RST_STREAM PROTOCOL_ERROR."""
        self._count("resets", self.settings.max_resets, "stream errors")
        self.stream_unacked.pop(stream_id, None)
        self.h2.reset_stream(stream_id, ErrorCodes.PROTOCOL_ERROR)

    def reset_malformed(self, stream_id: int) -> None:
        """The driver found the stream malformed (a body longer or shorter than its
        content-length, RFC 9113 §8.1.1)."""
        self._reset(stream_id)

    def _count(self, name: str, limit: int, what: str) -> None:
        count = getattr(self, name) + 1
        setattr(self, name, count)
        if count > limit:
            self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM, b"flood")
            raise H2ConnectionError(f"more than {limit} {what} in {ABUSE_WINDOW:g} s", ErrorCodes.ENHANCE_YOUR_CALM)

    # -- flow control ----------------------------------------------------------------

    def acknowledge(self, stream_id: int, nbytes: int) -> None:
        """The app read ``nbytes`` of the stream's body: give them back to its window once
        they add up to half of it (fewer WINDOW_UPDATE frames); nothing once the body ended."""
        unacked = self.stream_unacked.get(stream_id)
        if unacked is None or self.h2.state_machine.state is ConnectionState.CLOSED:
            return
        unacked += nbytes
        if unacked >= self.window >> 1:
            self.h2.increment_flow_control_window(unacked, stream_id)
            unacked = 0
        self.stream_unacked[stream_id] = unacked

    def can_finish_body(self, stream_id: int, remaining: int) -> bool:
        """Whether the client may send the ``remaining`` bytes of the stream's request body
        without a WINDOW_UPDATE from us."""
        try:
            return remaining <= self.h2.remote_flow_control_window(stream_id)
        except H2ProtocolError:
            return False

    def send_window(self, stream_id: int) -> int:
        """Bytes the stream may send now (its window and the connection's)."""
        try:
            return self.h2.local_flow_control_window(stream_id)
        except H2ProtocolError:
            return 0

    @property
    def max_frame(self) -> int:
        return self.h2.max_outbound_frame_size

    # -- sending ---------------------------------------------------------------------

    def response_fields(
        self, status: int, headers: Any, date: bytes | None, content_length: int | None, trailers: bool = False
    ) -> list[tuple[bytes, bytes]]:
        """The response's field block: ``:status``, the app's fields (names lower-cased,
        connection-specific ones dropped: RFC 9113 §8.2.2), ``server``, ``date`` and the
        ``--header`` fields unless the app gave fields of their names, and ``content-length``
        when known and not given. Raises ``LocalProtocolError`` for an invalid name or a
        value with CR, LF or NUL. ``trailers``: a trailer block, only the app's fields."""
        fields = [(b":status", _STATUS[status])]
        append = fields.append
        server = None if trailers else self.server_header
        has_length = content_length is None
        for name, value in headers:
            if type(name) is not bytes or type(value) is not bytes:
                name, value = _as_bytes(name), _as_bytes(value)
            name = name.lower()
            if name in CONNECTION_FIELDS:
                continue
            if _match_token(name) is None or _search_unsafe(value) is not None:
                raise LocalProtocolError(f"invalid response field {name[:64]!r}")
            if name == b"date":
                date = None
            elif name == b"server":
                server = None
            elif name == b"content-length":
                has_length = True
            append((name, value))
        if server is not None:
            append((b"server", server))
        if date is not None:
            append((b"date", date))
        if not has_length:
            append((b"content-length", str(content_length).encode()))
        defaults = self.defaults
        if defaults is not None and not trailers:
            fields += defaults.fields_without([name for name, _ in fields])
        return fields

    def send_response(
        self, stream_id: int, status: int, headers: Any, date: bytes | None, length: int | None, body: bytes
    ) -> bool:
        """A whole response at once: HEADERS (``response_fields``), then ``body`` as one DATA
        frame with END_STREAM, or END_STREAM on the HEADERS when ``body`` is empty. Framed
        here, not by h2's per-frame machinery, when the stream is half-closed (remote) with
        nothing sent yet and ``body`` fits one frame and both send windows; h2's state is
        then left as its ``send_headers`` and ``send_data`` would leave it (stream closed by
        END_STREAM, windows decremented). Else False, and nothing done."""
        # The block of the same response as before, under the same HPACK table, is known
        # (as CachingEncoder knows it for the same fields) without making the fields again.
        h2 = self.h2
        encoder = h2.encoder
        table = encoder.header_table
        try:
            key: Any = (status, tuple(headers), date, length)
            block = None if table.resized else encoder.blocks.get(key)
        except TypeError:  # (an unhashable field)
            key = block = None
        if block is not None:
            return h2.send_whole(stream_id, block, body)
        if h2.whole_response_stream(stream_id, len(body)) is None:
            return False  # (checked before encoding: that changes the HPACK table)
        changes = table.changes
        block = encoder.encode(self.response_fields(status, headers, date, length))
        if key is not None and table.changes == changes and len(encoder.blocks) < MAX_BLOCKS:
            encoder.blocks[key] = block
        return h2.send_whole(stream_id, block, body)

    def send_headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        self.h2.send_headers(stream_id, fields, end_stream=end)

    def send_data(self, stream_id: int, data: bytes | memoryview, end: bool) -> None:
        """Body bytes that fit the send window (the caller checks ``send_window``), cut
        to the peer's frame size."""
        h2 = self.h2
        size = h2.max_outbound_frame_size
        if len(data) <= size:
            h2.send_data(stream_id, data, end_stream=end)
            return
        view = memoryview(data)
        last = len(view) - size
        for start in range(0, len(view), size):
            h2.send_data(stream_id, view[start : start + size], end_stream=end and start >= last)

    def end_stream(self, stream_id: int) -> None:
        self.h2.end_stream(stream_id)

    def reset(self, stream_id: int, code: int = ErrorCodes.CANCEL) -> None:
        """Reset a stream (if it is still open)."""
        self.stream_unacked.pop(stream_id, None)
        if self.stream_open(stream_id):
            self.h2.reset_stream(stream_id, code)

    def stream_open(self, stream_id: int) -> bool:
        """Frames can still go on the stream: h2 has it open and the connection is open
        (after a GOAWAY with an error, or one of ours, nothing goes)."""
        stream = self.h2.streams.get(stream_id)
        return stream is not None and not stream.closed and self.h2.state_machine.state is not ConnectionState.CLOSED

    def ping(self, data: bytes) -> None:
        self.h2.ping(data)

    def goaway(self) -> bytes:
        """A graceful GOAWAY (NO_ERROR) naming the last stream served, as bytes to send
        after ``data_to_send()``; streams up to it go on, later ones are refused."""
        self.goaway_sent = True
        return GoAwayFrame(0, last_stream_id=self.last_stream_id, error_code=0).serialize()

    def close(self, code: int = ErrorCodes.NO_ERROR) -> None:
        """Queue a final GOAWAY (no frame is accepted after it)."""
        self.h2.close_connection(code, last_stream_id=self.last_stream_id)

    def data_to_send(self) -> bytes:
        return self.h2.data_to_send()

    def release(self) -> None:
        """The connection is gone: nothing more is received (the sending calls still work)."""
        self.h2.release()


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("latin-1")
    return bytes(value)
