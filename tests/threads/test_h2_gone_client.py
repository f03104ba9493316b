"""A client that goes away while its streams are in flight (h2load ending a timed run):
what the apps still send afterwards is dropped quietly, not logged as a traceback."""

from __future__ import annotations

import asyncio
import socket
import time

from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from ftserver.testing import serve
from tests.threads.h2client import H2Client

BIG_WINDOW = 2**31 - 1


async def big_and_late(scope, receive, send):
    """``/big``: 64 MiB streamed (fills the socket while the client does not read);
    ``/late``: answers after 0.6 s, ``/late-reset`` then fails (a reset on the stream)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        piece = b"x" * (1 << 20)
        for _ in range(64):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await asyncio.sleep(0.6)
    if scope["path"] == "/late-reset":
        raise RuntimeError("late failure")  # (the stream is reset: INTERNAL_ERROR)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"late", "more_body": True})
    await send({"type": "http.response.body", "body": b"!"})


def tracebacks(log: str) -> list[str]:
    """The tracebacks in the server's log but the app's own (``late failure``)."""
    return [t for t in log.split("Traceback (most recent call last):")[1:] if "RuntimeError: late failure" not in t]


def test_streams_answered_after_the_clients_goaway_with_an_error_are_dropped_quietly(server_log):
    with serve(big_and_late) as server:
        client = H2Client(server.port, settings={SettingCodes.INITIAL_WINDOW_SIZE: BIG_WINDOW})
        try:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.conn.increment_flow_control_window(BIG_WINDOW - 65535)
            client.flush()
            client.request("/big")
            client.request("/late")
            client.request("/late-reset")
            time.sleep(0.3)  # (the server's writes back up: its transport cannot close at once)
            client.send_raw(GoAwayFrame(0, last_stream_id=0, error_code=ErrorCodes.INTERNAL_ERROR).serialize())
            time.sleep(1.0)  # (the late answers come meanwhile)
        finally:
            client.close()
        time.sleep(0.3)
    log = server_log.text
    assert "late failure" in log  # (the log is seen here)
    assert tracebacks(log) == []
