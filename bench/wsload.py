"""WebSocket echo load generator: ``python bench/wsload.py ws://127.0.0.1:8000/ -c 32 -d 2 -s 32``.

N client connections, each sends one binary message and waits for its echo before sending the
next, for a fixed duration; prints messages/s, latency percentiles and its own CPU use as JSON.

Built to cost far less than any server it drives: raw sockets and one epoll loop per process
(``--processes``), the masked frame of each connection built once (a fixed random masking key
per connection: the server unmasks the same bytes as with a fresh key per frame), echoes parsed
with slicing only. ``client_cpu_fraction`` in the output (CPU seconds of the load processes per
second of wall clock, over the measured run) shows whether it came near being the bottleneck.
Stdlib only; any Python >= 3.11.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from urllib.parse import urlsplit

HANDSHAKE_TIMEOUT_S = 10.0
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WsLoadError(Exception):
    """A connection failed or the server answered something that is not the echo."""


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final client frame (RFC 6455 §5.2), masked with ``mask``."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    repeated = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big") if n else b""
    return header + mask + masked


def connect(host: str, port: int, path: str, timeout: float = HANDSHAKE_TIMEOUT_S) -> tuple[socket.socket, bytes]:
    """Open a WebSocket connection: the socket and any bytes read past the 101 response."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            sock.close()
            raise WsLoadError(f"connection closed during the handshake: {received[:80]!r}")
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.1 101", b"HTTP/1.0 101")):
        sock.close()
        raise WsLoadError(f"handshake refused: {head.splitlines()[0][:80]!r}")
    return sock, rest


def parse_frames(buffer: bytearray) -> list[tuple[bool, int, bytes]]:
    """Remove the complete server frames from ``buffer``: (fin, opcode, payload) each."""
    frames = []
    while len(buffer) >= 2:
        length, start = buffer[1] & 0x7F, 2
        if length == 126:
            if len(buffer) < 4:
                break
            length, start = int.from_bytes(buffer[2:4], "big"), 4
        elif length == 127:
            if len(buffer) < 10:
                break
            length, start = int.from_bytes(buffer[2:10], "big"), 10
        if buffer[1] & 0x80:
            raise WsLoadError("the server masked a frame")
        end = start + length
        if len(buffer) < end:
            break
        frames.append((bool(buffer[0] & 0x80), buffer[0] & 0x0F, bytes(buffer[start:end])))
        del buffer[:end]
    return frames


def echo_once(host: str, port: int, path: str, size: int, timeout: float = 5.0) -> str | None:
    """One connection, one message of ``size`` bytes: None if the echo came back whole."""
    payload = os.urandom(size)
    try:
        sock, rest = connect(host, port, path, timeout)
    except (OSError, WsLoadError) as exc:
        return f"websocket handshake failed: {exc}"
    buffer, received = bytearray(rest), b""
    try:
        sock.sendall(client_frame(OP_BINARY, payload, os.urandom(4)))
        while True:
            for fin, opcode, data in parse_frames(buffer):
                if opcode == OP_CLOSE:
                    return f"server closed the websocket: {data[:2].hex()} {data[2:80]!r}"
                if opcode in (OP_BINARY, OP_TEXT, OP_CONTINUATION):
                    received += data
                    if fin:
                        if received != payload:
                            return f"wrong echo: {len(received)} bytes back for {size}"
                        sock.sendall(client_frame(OP_CLOSE, (1000).to_bytes(2, "big"), os.urandom(4)))
                        return None
            chunk = sock.recv(65536)
            if not chunk:
                return "connection closed before the echo"
            buffer += chunk
    except (OSError, WsLoadError) as exc:
        return f"websocket echo failed: {exc!r}"
    finally:
        sock.close()


class _Client:
    """One connection's state in a worker process's loop."""

    __slots__ = ("sock", "frame", "buffer", "got", "sent_at")

    def __init__(self, sock: socket.socket, frame: bytes, rest: bytes) -> None:
        self.sock, self.frame, self.buffer, self.got, self.sent_at = sock, frame, bytearray(rest), 0, 0.0


def server_frame(opcode: int, payload: bytes) -> bytes:
    """One final unmasked frame, as a server sends it."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 1 << 16:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


def _worker(host: str, port: int, path: str, connections: int, size: int, duration: float) -> None:
    """One load process: connect, say ``ready``, wait for ``go`` on stdin, run, print JSON."""
    payload = b"x" * size
    echo = server_frame(OP_BINARY, payload)  # the usual answer, read whole by one recv: compared, not parsed
    clients: dict[int, _Client] = {}
    try:
        for _ in range(connections):
            sock, rest = connect(host, port, path)
            clients[sock.fileno()] = _Client(sock, client_frame(OP_BINARY, payload, os.urandom(4)), rest)
    except (OSError, WsLoadError) as exc:
        print(json.dumps({"error": f"connect: {exc}"}), flush=True)
        return
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    poller = select.epoll()
    for fd, client in clients.items():
        poller.register(fd, select.EPOLLIN)
    latencies: list[int] = []
    errors = 0
    clock = time.perf_counter
    cpu_start, start = time.process_time(), clock()
    deadline = start + duration
    for client in clients.values():
        client.sent_at = clock()
        client.sock.sendall(client.frame)
    now = start
    while clients and now < deadline:
        for fd, _ in poller.poll(0.2):
            client = clients[fd]
            try:
                chunk = client.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                errors += 1
                poller.unregister(fd)
                del clients[fd]
                continue
            buffer = client.buffer
            if chunk == echo and not buffer:
                client.got, done = size, True
                frames: list[tuple[bool, int, bytes]] = []
            else:
                buffer += chunk
                done, frames = False, parse_frames(buffer)
            for fin, opcode, data in frames:
                if opcode == OP_PING:
                    client.sock.sendall(client_frame(OP_PONG, data, os.urandom(4)))
                elif opcode == OP_CLOSE:
                    errors += 1
                elif opcode != OP_PONG:
                    client.got += len(data)
                    done = fin
            if done:
                now = clock()
                if client.got != size:
                    errors += 1
                latencies.append(int((now - client.sent_at) * 1e6))
                client.got = 0
                if now < deadline:
                    client.sent_at = now
                    client.sock.sendall(client.frame)
        now = clock()
    elapsed, cpu = min(clock(), deadline) - start, time.process_time() - cpu_start
    close = client_frame(OP_CLOSE, (1000).to_bytes(2, "big"), b"\0\0\0\0")
    for client in clients.values():
        try:
            client.sock.sendall(close)
        except OSError:
            pass
        client.sock.close()
    print(json.dumps({"latencies_us": latencies, "seconds": elapsed, "cpu_s": cpu, "errors": errors}), flush=True)


def run(url: str, connections: int, duration: float, size: int, processes: int = 1) -> dict[str, object]:
    """Drive ``url`` with ``connections`` echo clients spread over ``processes`` processes."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None or parts.port is None:
        raise WsLoadError(f"want ws://HOST:PORT/PATH, got {url}")
    processes = max(1, min(processes, connections))
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, "-c", str(n), "-d", str(duration), "-s", str(size)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        for n in shares
    ]
    try:
        for child in children:
            line = child.stdout.readline()  # type: ignore[union-attr]
            if line.strip() != "ready":
                raise WsLoadError(json.loads(line)["error"] if line.startswith("{") else f"worker: {line.strip()!r}")
        for child in children:
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        outputs = [json.loads(child.communicate(timeout=duration + 30)[0]) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    latencies = sorted(x for out in outputs for x in out["latencies_us"])
    seconds = max(out["seconds"] for out in outputs)
    count = len(latencies)
    return {
        "messages": count,
        "seconds": seconds,
        "messages_per_s": count / seconds if seconds else 0.0,
        "p50_ms": statistics.median(latencies) / 1e3 if latencies else None,
        "p99_ms": latencies[min(count - 1, int(count * 0.99))] / 1e3 if latencies else None,
        "errors": sum(out["errors"] for out in outputs),
        "client_cpu_fraction": sum(out["cpu_s"] for out in outputs) / seconds if seconds else None,
        "processes": processes,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="ws://HOST:PORT/PATH")
    parser.add_argument("-c", "--connections", type=int, default=32, help="client connections (default 32)")
    parser.add_argument("-d", "--duration", type=float, default=2.0, help="seconds of load (default 2)")
    parser.add_argument("-s", "--size", type=int, default=32, help="message bytes (default 32)")
    parser.add_argument("-p", "--processes", type=int, default=1, help="load processes (default 1)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        parts = urlsplit(args.url)
        _worker(parts.hostname or "", parts.port or 80, parts.path or "/", args.connections, args.size, args.duration)
        return 0
    try:
        print(json.dumps(run(args.url, args.connections, args.duration, args.size, args.processes)))
    except (OSError, WsLoadError, subprocess.TimeoutExpired) as exc:
        print(json.dumps({"error": str(exc)}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
