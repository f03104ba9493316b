"""A WebSocket-over-HTTP/2 client for tests (RFC 8441): h2's client connection for the
extended CONNECT and its stream, wsproto's frame layer (no HTTP handshake) for the frames
in its DATA. No common client speaks RFC 8441, so the tests bring their own."""

from __future__ import annotations

import socket
import ssl
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
from h2.settings import SettingCodes
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate


class H2WebSocketClient:
    """One HTTP/2 connection (cleartext prior knowledge, or TLS with ALPN ``h2``) on which
    ``connect`` opens WebSockets and ``get`` sends plain requests."""

    def __init__(self, port: int, context: ssl.SSLContext | None = None, timeout: float = 10.0, window: int | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.timeout = timeout
        self.scheme = b"https" if context is not None else b"http"
        config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_inbound_headers=False)
        self.conn = h2.connection.H2Connection(config)
        if window is not None:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.initiate_connection()
        self.flush()
        self.events: list[Any] = []
        self.ws: dict[int, Connection] = {}
        self.messages: dict[int, list[Any]] = {}
        self.early: dict[int, list[bytes]] = {}
        self.closed = False
        self.auto_ack = True  # give the windows back as DATA arrives (False: the connection's only)
        self.server_settings: dict[int, int] = {}
        self.answer_pings = True

    # -- the connection ------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def read(self, timeout: float | None = None) -> None:
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.server_settings.update({code: s.new_value for code, s in event.changed_settings.items()})
            elif isinstance(event, h2.events.DataReceived):
                if event.flow_controlled_length:
                    if self.auto_ack:
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    else:  # the connection's window only: the stream's stays closed
                        self.conn.increment_flow_control_window(event.flow_controlled_length)
                ws = self.ws.get(event.stream_id)
                if ws is None:
                    self.early.setdefault(event.stream_id, []).append(event.data)  # (read with the 200)
                elif event.data and ws.state is not ConnectionState.CLOSED:
                    ws.receive_data(event.data)
                    self._ws_events(event.stream_id)
        try:
            self.flush()
        except OSError:
            pass

    def _ws_events(self, stream_id: int) -> None:
        ws = self.ws[stream_id]
        for event in ws.events():
            if isinstance(event, Ping):
                if self.answer_pings:
                    self._send_ws(stream_id, ws.send(event.response()))
            elif isinstance(event, (Message, CloseConnection)):
                self.messages[stream_id].append(event)

    def until(self, done: Any, limit: float = 10.0) -> bool:
        deadline = time.monotonic() + limit
        while not done() and not self.closed and time.monotonic() < deadline:
            self.read(max(0.01, deadline - time.monotonic()))
        return bool(done())

    def settings(self) -> dict[int, int]:
        """The server's SETTINGS (its first frame)."""
        self.until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in self.events))
        return self.server_settings

    def stream_events(self, stream_id: int, kind: Any) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "stream_id", None) == stream_id]

    def response(self, stream_id: int, limit: float = 10.0) -> tuple[int, dict[bytes, bytes], bytes]:
        """A plain response: its status, fields and body (read to its end or reset)."""
        ended = (h2.events.StreamEnded, h2.events.StreamReset)
        self.until(lambda: bool(self.stream_events(stream_id, ended)), limit)
        headers = dict(self.stream_events(stream_id, h2.events.ResponseReceived)[0].headers)
        body = b"".join(e.data for e in self.stream_events(stream_id, h2.events.DataReceived))
        return int(headers[b":status"]), headers, body

    def get(self, path: str = "/") -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(b":method", b"GET"), (b":scheme", self.scheme), (b":authority", b"localhost"), (b":path", path.encode())]
        self.conn.send_headers(stream_id, fields, end_stream=True)
        self.flush()
        return stream_id

    def close(self) -> None:
        self.sock.close()

    # -- WebSockets ----------------------------------------------------------------------

    def connect(
        self, path: str = "/", subprotocols: list[str] = (), deflate: bool = False, version: bytes = b"13",
        protocol: bytes = b"websocket", extra: list[tuple[bytes, bytes]] = (),
    ) -> tuple[int, int, dict[bytes, bytes]]:
        """An extended CONNECT; returns the stream, the status and the response fields. On
        a 200 the stream is a WebSocket: ``send``, ``recv``, ``close_ws``."""
        self.settings()
        stream_id = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", b"CONNECT"), (b":protocol", protocol), (b":scheme", self.scheme),
            (b":path", path.encode()), (b":authority", b"localhost"), (b"sec-websocket-version", version),
        ]
        if subprotocols:
            fields.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode()))
        extension = PerMessageDeflate() if deflate else None
        if extension is not None:
            offer = extension.offer()
            value = f"{extension.name}; {offer}" if isinstance(offer, str) else extension.name
            fields.append((b"sec-websocket-extensions", value.encode()))
        fields += list(extra)
        self.conn.send_headers(stream_id, fields, end_stream=False)
        self.flush()
        answered = (h2.events.ResponseReceived, h2.events.StreamReset)
        self.until(lambda: bool(self.stream_events(stream_id, answered)))
        reset = self.stream_events(stream_id, h2.events.StreamReset)
        if reset and not self.stream_events(stream_id, h2.events.ResponseReceived):
            return stream_id, 0, {b"reset": str(int(reset[0].error_code)).encode()}
        headers = dict(self.stream_events(stream_id, h2.events.ResponseReceived)[0].headers)
        status = int(headers[b":status"])
        if status == 200:
            extensions = []
            if extension is not None and b"sec-websocket-extensions" in headers:
                extension.finalize(headers[b"sec-websocket-extensions"].decode())
                extensions = [extension]
            self.ws[stream_id] = ws = Connection(ConnectionType.CLIENT, extensions)
            self.messages[stream_id] = []
            for data in self.early.pop(stream_id, ()):
                if data and ws.state is not ConnectionState.CLOSED:
                    ws.receive_data(data)
            self._ws_events(stream_id)
        return stream_id, status, headers

    def _send_ws(self, stream_id: int, data: bytes, end: bool = False) -> None:
        """Frames as DATA, as the windows allow (reading WINDOW_UPDATEs meanwhile)."""
        view = memoryview(data)
        deadline = time.monotonic() + 10
        while view:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                assert time.monotonic() < deadline, "the server never opened the window"
                self.read()
                continue
            self.conn.send_data(stream_id, bytes(view[:window]))
            self.flush()
            view = view[window:]
        if end:
            self.conn.end_stream(stream_id)
            self.flush()

    def send(self, stream_id: int, message: str | bytes, fragments: int = 1) -> None:
        ws = self.ws[stream_id]
        if fragments == 1:
            event: Any = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
            self._send_ws(stream_id, ws.send(event))
            return
        size = -(-len(message) // fragments)
        for start in range(0, len(message), size):
            part = message[start : start + size]
            last = start + size >= len(message)
            kind = TextMessage if isinstance(message, str) else BytesMessage
            self._send_ws(stream_id, ws.send(kind(data=part, message_finished=last)))

    def send_raw(self, stream_id: int, data: bytes) -> None:
        self._send_ws(stream_id, data)

    def recv(self, stream_id: int, limit: float = 10.0) -> Any:
        """The next whole message (str or bytes), or the server's ``CloseConnection``."""
        queue = self.messages[stream_id]
        parts: list[Any] = []
        deadline = time.monotonic() + limit
        while True:
            self.until(lambda: bool(queue), max(0.0, deadline - time.monotonic()))
            if not queue:
                raise TimeoutError(f"no message on stream {stream_id}")
            event = queue.pop(0)
            if isinstance(event, CloseConnection):
                return event
            parts.append(event.data)
            if event.message_finished:
                return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)

    def close_ws(self, stream_id: int, code: int = 1000, reason: str = "") -> CloseConnection:
        """Our Close; returns the server's (then END_STREAM, as its stream ended)."""
        ws = self.ws[stream_id]
        self._send_ws(stream_id, ws.send(CloseConnection(code=code, reason=reason or None)))
        answer = self.recv(stream_id)
        self.until(lambda: bool(self.stream_events(stream_id, (h2.events.StreamEnded, h2.events.StreamReset))))
        if self.conn.streams.get(stream_id) is not None and not self.conn.streams[stream_id].closed:
            self.conn.end_stream(stream_id)
            self.flush()
        return answer

    def ended(self, stream_id: int, limit: float = 10.0) -> Any:
        """The stream's end (StreamEnded or StreamReset)."""
        kinds = (h2.events.StreamEnded, h2.events.StreamReset)
        self.until(lambda: bool(self.stream_events(stream_id, kinds)), limit)
        found = self.stream_events(stream_id, kinds)
        return found[0] if found else None

    def reset(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id)
        self.flush()


__all__ = ["H2WebSocketClient"]
