"""A measuring stick, not a server: the least Python an ASGI hello-world request can cost.

    python bench/floor.py --port 8001 [--threads N] [--canned] bench.apps:hello

Each thread runs an asyncio selector loop (so the app has a running loop and a current
task, as under ftserve) with its own ``SO_REUSEPORT`` listener. Connections are read and
written as raw sockets straight from the selector, one regex checks a request head, the
app coroutine is stepped directly, and its response is written with one ``send``. There
is nothing else: no limits or timeouts, no request bodies, no pipelining, no streaming,
no error handling, no keep-alive rules. ``--canned`` skips parsing and the app (a fixed
response per read): the cost of the loop and the system calls alone.

The benchmark runs it as the ``floor`` server (``bench/run.py --servers ftserve,floor,...``)
to show, in the same run, how much of ftserve's cost per request is the irreducible
Python floor on this interpreter and how much is ftserve's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import importlib
import re
import selectors
import socket
import sys
import threading
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEAD = re.compile(
    rb"(" + _TOKEN + rb") (/[\x21-\x7e]*) HTTP/1\.1((?:\r\n" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*)*)\r\n\r\n"
).fullmatch
_NAMES = re.compile(rb"\r\n(" + _TOKEN + rb"):").findall
_VALUES = re.compile(rb"\r\n" + _TOKEN + rb":[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*(?=\r\n)").findall
_MATCH_TOKEN = re.compile(_TOKEN).fullmatch
_UNSAFE = re.compile(rb"[\r\n\x00]").search
_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_ASGI = {"version": "3.0", "spec_version": "2.4"}
_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task


class Exchange:
    __slots__ = ("conn", "state", "status", "headers")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.state = 0

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.body" and self.state == 1 and not message.get("more_body", False):
            self.state = 2
            self.conn.respond(self, message.get("body", b""))
        elif kind == "http.response.start" and self.state == 0:
            self.status = message["status"]
            self.headers = message.get("headers", ())
            self.state = 1
        else:
            raise RuntimeError(f"the floor server does not do {kind!r} here")


class Connection:
    __slots__ = ("w", "sock", "client", "server", "out")

    def __init__(self, w: Worker, sock: socket.socket) -> None:
        self.w = w
        self.sock = sock
        self.client = sock.getpeername()
        self.server = sock.getsockname()
        self.out: list[bytes] = []

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        w = self.w
        if not data:
            w.selector.unregister(self.sock)
            self.sock.close()
            return
        if w.canned:
            self.sock.send(w.canned)
            return
        match = _HEAD(data)
        if match is None:
            raise ValueError("not a request the floor server takes")
        method, target, fields = match.groups()
        raw_path, _, query = target.partition(b"?")
        exchange = Exchange(self)
        scope = {
            "type": "http", "asgi": _ASGI, "http_version": "1.1", "method": method.decode("ascii"),
            "scheme": "http", "path": raw_path.decode("ascii"), "raw_path": raw_path, "query_string": query,
            "root_path": "", "headers": list(zip(_NAMES(fields.lower()), _VALUES(fields))),
            "client": self.client, "server": self.server,
        }  # fmt: skip
        coro = w.app(scope, exchange.receive, exchange.send)
        _enter_task(w.loop, w.task)
        try:
            w.context.copy().run(coro.send, None)
        except StopIteration:
            pass
        finally:
            _leave_task(w.loop, w.task)
        out = self.out
        if out:
            self.sock.send(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def respond(self, exchange: Exchange, body: bytes) -> None:
        parts = [_STATUS[exchange.status]]
        for name, value in exchange.headers:
            if _MATCH_TOKEN(name) is None or _UNSAFE(value) is not None:
                raise ValueError("invalid response field")
            parts += (name, b": ", value, b"\r\n")
        parts += (self.w.date_server, b"\r\n", body)
        self.out.append(b"".join(parts))


class Loop(asyncio.SelectorEventLoop):
    """Dispatches our connections straight from the selector; asyncio's own keys as usual."""

    def _process_events(self, event_list: list[Any]) -> None:
        for key, mask in event_list:
            data = key.data
            if type(data) is Connection:
                data.on_readable()
                continue
            reader, writer = data
            if mask & selectors.EVENT_READ and reader is not None:
                if reader._cancelled:
                    self._remove_reader(key.fileobj)
                else:
                    self._add_callback(reader)
            if mask & selectors.EVENT_WRITE and writer is not None:
                if writer._cancelled:
                    self._remove_writer(key.fileobj)
                else:
                    self._add_callback(writer)


class Worker(threading.Thread):
    def __init__(self, app: Any, host: str, port: int, canned: bool) -> None:
        super().__init__(daemon=True)
        self.app = app
        self.host = host
        self.port = port
        self.date_server = b"date: " + formatdate(usegmt=True).encode() + b"\r\nserver: floor\r\n"
        self.canned = (
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n" + self.date_server + b"\r\nHello, world!"
            if canned
            else b""
        )

    def run(self) -> None:
        self.loop = loop = Loop()
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self.main())

    async def main(self) -> None:
        loop = self.loop
        self.selector = loop._selector  # type: ignore[attr-defined]
        self.context = contextvars.copy_context()
        self.task = loop.create_task(asyncio.sleep(1e9))
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((self.host, self.port))
        listener.listen(1024)
        listener.setblocking(False)
        loop.add_reader(listener, self.accept, listener)
        await self.task

    def accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.selector.register(sock, selectors.EVENT_READ, Connection(self, sock))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("app", help="module:attribute of an ASGI app that answers in one step (bench.apps:hello)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--canned", action="store_true", help="a fixed response per read: no parsing, no app")
    args = parser.parse_args()
    module, _, attribute = args.app.partition(":")
    app = getattr(importlib.import_module(module), attribute)
    workers = [Worker(app, args.host, args.port, args.canned) for _ in range(args.threads)]
    for worker in workers:
        worker.start()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
