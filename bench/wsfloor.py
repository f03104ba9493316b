"""A measuring stick for the WebSocket scenarios, not a server: the least a WebSocket echo costs.

    python bench/wsfloor.py --port 8001 [--threads N]

Each thread runs a selector loop over its own ``SO_REUSEPORT`` listener: the handshake answered
from the ``Sec-WebSocket-Key`` alone, then every client frame unmasked and sent back unmasked in
one ``send``. No app, no ASGI, no validation, no fragmentation, no limits. A request without
``Upgrade`` gets a fixed 200 (the benchmark's start-up probe). The benchmark runs it as the
``floor-ws`` server (``--servers ftserve,floor-ws --scenarios ws_small,ws_16k``): the loop and
system calls alone, and a check that ``wsload.py`` drives far more echoes than any server takes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import selectors
import socket
import threading

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B85"
_HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!"


def _accept_key(head: bytes) -> bytes | None:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            return base64.b64encode(hashlib.sha1(value.strip() + _GUID).digest())
    return None


def _echo(buffer: bytearray) -> tuple[bytes, bool]:
    """Server frames echoing the complete client frames in ``buffer`` (removed), and whether one was a close."""
    out, closed = [], False
    while len(buffer) >= 6:
        length, start = buffer[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(buffer[2:10], "big"), 10
        end = start + 4 + length
        if len(buffer) < end:
            break
        mask = bytes(buffer[start : start + 4])
        data = (
            int.from_bytes(buffer[start + 4 : end], "big") ^ int.from_bytes((mask * (length // 4 + 1))[:length], "big")
        ).to_bytes(length, "big")
        opcode = buffer[0] & 0x0F
        del buffer[:end]
        if opcode == 0x9:  # ping: pong
            opcode = 0xA
        elif opcode == 0xA:
            continue
        closed = closed or opcode == 0x8
        header = bytes((0x80 | opcode,)) + (
            bytes((length,)) if length < 126 else
            b"\x7e" + length.to_bytes(2, "big") if length < 1 << 16 else b"\x7f" + length.to_bytes(8, "big")
        )  # fmt: skip
        out.append(header + data)
    return b"".join(out), closed


def _serve(host: str, port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind((host, port))
    listener.listen(1024)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    buffers: dict[socket.socket, bytearray] = {}
    upgraded: set[socket.socket] = set()
    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(sock, selectors.EVENT_READ, True)
                buffers[sock] = bytearray()
                continue
            sock = key.fileobj  # type: ignore[assignment]
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            buffer = buffers[sock]
            buffer += chunk
            reply, close = b"", not chunk
            if sock in upgraded:
                reply, close = _echo(buffer)
            elif b"\r\n\r\n" in buffer:
                head = bytes(buffer[: buffer.index(b"\r\n\r\n")])
                del buffer[: len(head) + 4]
                accept = _accept_key(head) if b"websocket" in head.lower() else None
                if accept is None:
                    reply, close = _HELLO, True
                else:
                    upgraded.add(sock)
                    reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    reply += b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            try:
                if reply:
                    sock.sendall(reply)
            except OSError:
                close = True
            if close:
                selector.unregister(sock)
                buffers.pop(sock, None)
                upgraded.discard(sock)
                sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("app", nargs="?", help="ignored (the benchmark passes the scenario's app)")
    args = parser.parse_args()
    threads = [threading.Thread(target=_serve, args=(args.host, args.port), daemon=True) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main()
