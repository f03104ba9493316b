"""Issue 13, item 4: what a chunked request body of many one-byte chunks costs the server.

Starts ``ftserve bench.apps:echo --threads 1`` (the app reads the whole body), then

1. sends one body of ``--chunks`` chunks of ``--size`` bytes (1) in a single ``sendall`` and records the
   server's CPU time (utime+stime from ``/proc``) until the response: the loop time the
   body costs;
2. does the same while a second connection sends ``GET /`` back to back on the same
   worker thread, and records the slowest of those probes (the delay the upload imposes
   on a neighbour), next to the slowest probe without the upload.

    python bench/tiny_chunks.py [--http1 fast|h11] [--chunks 200000] [--size 1] [--python PY]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its descendants (a worker process, if any)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    family = {pid}
    grew = True
    while grew:
        grew = False
        for child, (parent, _) in stats.items():
            if parent in family and child not in family:
                family.add(child)
                grew = True
    return sum(stats[p][1] for p in family if p in stats) / os.sysconf("SC_CLK_TCK")


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """Status and body of one Content-Length response (all ``bench.apps:echo`` sends)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def upload(port: int, chunks: int, size: int = 1) -> tuple[int, int]:
    """Send the many-chunk body; the status and the body length echoed."""
    body = (b"%x\r\n" % size + b"x" * size + b"\r\n") * chunks + b"0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        try:
            status, echoed = read_response(sock)
        except (ConnectionError, OSError):
            return 0, 0
    return status, len(echoed)


def probe(port: int, stop: threading.Event, latencies: list[float]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        while not stop.is_set():
            start = time.perf_counter()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            read_response(sock)
            latencies.append(time.perf_counter() - start)
            time.sleep(0.001)


def probed(port: int, chunks: int, size: int) -> tuple[float, float, tuple[int, int]]:
    """Slowest probe with nothing else going on, then during an upload."""
    stop = threading.Event()
    idle: list[float] = []
    thread = threading.Thread(target=probe, args=(port, stop, idle))
    thread.start()
    time.sleep(0.3)
    stop.set()
    thread.join()
    stop = threading.Event()
    busy: list[float] = []
    thread = threading.Thread(target=probe, args=(port, stop, busy))
    thread.start()
    time.sleep(0.1)
    result = upload(port, chunks, size)
    time.sleep(0.1)
    stop.set()
    thread.join()
    return max(idle), max(busy), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--http1", default="fast", choices=["fast", "h11"])
    parser.add_argument("--chunks", type=int, default=200_000)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--size", type=int, default=1, help="bytes of data per chunk")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [args.python, "-m", "ftserver", "bench.apps:echo", "--threads", "1", "--port", str(port),
               "--http1", args.http1, "--lifespan", "off", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        upload(port, 1000)  # warm-up
        for rep in range(args.reps):
            before = cpu_seconds(server.pid)
            result = upload(port, args.chunks, args.size)
            cost = cpu_seconds(server.pid) - before
            idle, busy, probed_result = probed(port, args.chunks, args.size)
            print(
                f"{args.http1:4} rep {rep}: {args.chunks} chunks of {args.size} B -> status {result[0]} ({result[1]} bytes echoed), "
                f"server CPU {cost * 1000:.0f} ms; slowest probe {idle * 1000:.1f} ms idle, "
                f"{busy * 1000:.1f} ms during the upload (status {probed_result[0]})"
            )
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
