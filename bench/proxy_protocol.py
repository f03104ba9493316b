"""What ``--proxy-protocol`` costs per connection: server CPU time (from /proc, all threads) for
N connections of one request each (``Connection: close``), with and without a PROXY header.

    python bench/proxy_protocol.py [--connections 2000] [--reps 3]

Run with the interpreter whose ftserver is measured (e.g. ``.venv/ft/bin/python``); loopback
only, one connection at a time.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
V1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 56324 443\r\n"
V2 = b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([198, 51, 100, 9, 10, 0, 0, 1]) + (40000).to_bytes(2, "big") + (8000).to_bytes(2, "big")
CASES = [
    ("off", (), b""),
    ("auto, no header", ("--proxy-protocol", "auto"), b""),
    ("v1, untrusted peer", ("--proxy-protocol", "v1", "--proxy-protocol-allow-ips", "10.0.0.1"), b""),
    ("v1 header", ("--proxy-protocol", "v1"), V1),
    ("v2 header", ("--proxy-protocol", "v2"), V2),
]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: tuple[str, ...], header: bytes, connections: int) -> float:
    """Server CPU µs per connection."""
    command = [sys.executable, "-m", "ftserver", "--no-supervisor", "--threads", "1", "--port", "0", *args, "tests.apps.basic:hello"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = 0
        for line in proc.stdout:  # type: ignore[union-attr]
            match = re.search(r"Listening on http://\S+:(\d+)", line)
            if match:
                port = int(match.group(1))
                break
        assert port, "the server did not start"
        payload = header + REQUEST
        for _ in range(50):  # warm-up
            one(port, payload)
        before = cpu_seconds(proc.pid)
        for _ in range(connections):
            one(port, payload)
        return (cpu_seconds(proc.pid) - before) / connections * 1e6
    finally:
        proc.terminate()
        proc.wait(20)


def one(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(payload)
        while sock.recv(65536):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    results: dict[str, list[float]] = {name: [] for name, _, _ in CASES}
    for _ in range(options.reps):
        for name, args, header in CASES:  # interleaved: drift on a shared machine hits every case
            results[name].append(run(args, header, options.connections))
            time.sleep(0.2)
    print(f"| case | server CPU µs per connection (median of {options.reps}) |\n|---|--:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values):.0f} |")


if __name__ == "__main__":
    main()
