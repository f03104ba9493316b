"""A raw HTTP/2 client for tests: h2's own client connection object over a real socket."""

from __future__ import annotations

import socket
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
from h2.settings import SettingCodes
from hyperframe.frame import Frame


class H2Client:
    """Send frames with ``self.conn`` (an ``h2.connection.H2Connection``), then ``flush()``;
    ``events_until(...)`` reads the server's answer as h2 events."""

    def __init__(self, port: int, validate: bool = True, settings: dict[int, int] | None = None, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding=None,
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
            validate_inbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.conn.initiate_connection()
        self.flush()
        self.events: list[Any] = []
        self.closed = False

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, path: str = "/", method: str = "GET", body: bytes | None = None, headers: list | None = None, end: bool = True) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"http"), (b":authority", b"localhost"), (b":path", path.encode())]
        fields += headers or []
        self.conn.send_headers(stream_id, fields, end_stream=end and not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=end)
        self.flush()
        return stream_id

    def read(self) -> list[Any]:
        """One read's events (the server's SETTINGS ACKed, DATA acknowledged)."""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            data = b""
        if not data:
            self.closed = True
            return []
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.flow_controlled_length and self.auto_ack:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        try:
            self.flush()
        except OSError:
            pass
        self.events += events
        return events

    auto_ack = True

    def events_until(self, done, limit: float = 10.0) -> list[Any]:
        """Read until ``done(all events so far)`` or the connection closes."""
        deadline = time.monotonic() + limit
        while not done(self.events) and not self.closed and time.monotonic() < deadline:
            self.read()
        return self.events

    def response(self, stream_id: int, limit: float = 10.0) -> tuple[dict[bytes, bytes], bytes, Any]:
        """The stream's headers, body and its last event (StreamEnded or StreamReset)."""
        def ended(events):
            return any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) and e.stream_id == stream_id for e in events)

        events = self.events_until(ended, limit)
        headers: dict[bytes, bytes] = {}
        body = b""
        last = None
        for event in events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                headers = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
            elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset, h2.events.TrailersReceived)):
                last = event
        return headers, body, last

    def goaway(self, limit: float = 10.0) -> Any:
        events = self.events_until(lambda ev: any(isinstance(e, h2.events.ConnectionTerminated) for e in ev), limit)
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                return event
        return None

    def raw_frames(self, done, limit: float = 10.0) -> list[Any]:
        """Read the server's frames with hyperframe alone (h2's client refuses every
        frame after a GOAWAY), until ``done(frames)`` or the connection closes."""
        frames: list[Any] = []
        buffer = b""
        deadline = time.monotonic() + limit
        while not done(frames) and time.monotonic() < deadline:
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                data = b""
            if not data:
                break
            buffer += data
            while len(buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(buffer[:9]))
                if len(buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(buffer[9 : 9 + length]))
                buffer = buffer[9 + length :]
                frames.append(frame)
        return frames

    def close(self) -> None:
        self.sock.close()


__all__ = ["H2Client", "SettingCodes"]
