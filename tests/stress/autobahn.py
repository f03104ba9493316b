"""The Autobahn|Testsuite fuzzing-client cases against ftserve's WebSocket, run by ``kosoku``
(a native runner of the Autobahn case files, on PyPI), and a summary per section.

    python -m tests.stress.autobahn [--kosoku PATH] [--sections 1-10|all] [--interface asgi|rsgi]

``kosoku`` ships an abi3 wheel for GIL CPython ≥ 3.10 only (``make test-ws`` makes .venv/kosoku): install it in a venv of its own
(``python3 -m venv /tmp/kosoku && /tmp/kosoku/bin/pip install kosoku``) and pass its
``kosoku`` with ``--kosoku`` (or have it on PATH). The server runs with the Python running
this script. Exit status 1 if any case is FAILED.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Sections 1-10 (there is no 8): framing, pings, reserved bits, opcodes, fragmentation,
#: UTF-8, close, limits and performance, automatic fragmentation.
CORE_SECTIONS = ["1", "2", "3", "4", "5", "6", "7", "9", "10"]
#: 12 and 13: permessage-deflate (thousands of cases, minutes).
ALL_SECTIONS = CORE_SECTIONS + ["12", "13"]


async def echo(scope, receive, send):
    """The Autobahn echo server: every message back as it came."""
    if scope["type"] != "websocket":
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "bytes": message.get("bytes"), "text": message.get("text")})


class RSGIEcho:
    async def __rsgi__(self, scope, protocol):
        if scope.proto != "ws":
            protocol.response_empty(404, [])
            return
        transport = await protocol.accept()
        while True:
            try:
                message = await transport.receive()
            except Exception:  # noqa: BLE001 - the connection is gone
                return
            if message.kind == 0:
                return
            if message.kind == 1:
                await transport.send_bytes(message.data)
            else:
                await transport.send_str(message.data)


rsgi_echo = RSGIEcho()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def summarize(outdir: Path) -> dict[str, collections.Counter[str]]:
    """Behaviour counts per section from kosoku's ``index.json`` (Autobahn's format)."""
    index = json.loads((outdir / "index.json").read_text())
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for cases in index.values():
        for case, result in cases.items():
            table[case.split(".")[0]][result["behavior"]] += 1
            if result.get("behaviorClose") == "FAILED":
                table[case.split(".")[0]]["close FAILED"] += 1
    return table


def failed_cases(outdir: Path) -> list[str]:
    index = json.loads((outdir / "index.json").read_text())
    return sorted(
        (case for cases in index.values() for case, result in cases.items() if "FAILED" in (result["behavior"], result.get("behaviorClose"))),
        key=lambda case: [int(part) for part in case.split(".")],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kosoku", default=shutil.which("kosoku") or "/tmp/kosoku/bin/kosoku")
    parser.add_argument("--sections", default="1-10", choices=["1-10", "all"])
    parser.add_argument("--interface", default="asgi", choices=["asgi", "rsgi"])
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--outdir", default=None)
    args = parser.parse_args()
    if not os.path.exists(args.kosoku):
        print(f"kosoku not found ({args.kosoku}): see this script's docstring", file=sys.stderr)
        return 2
    port = free_port()
    app = "tests.stress.autobahn:echo" if args.interface == "asgi" else "tests.stress.autobahn:rsgi_echo"
    server = subprocess.Popen(
        [sys.executable, "-m", "ftserver", app, "--port", str(port), "--threads", "1", "--no-supervisor",
         "--log-level", "warning", "--ws-max-size", str(64 << 20), "--ws-ping-interval", "0"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    outdir = Path(args.outdir or tempfile.mkdtemp(prefix="autobahn-"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
        sections = CORE_SECTIONS if args.sections == "1-10" else ALL_SECTIONS
        command = [args.kosoku, "-m", "fuzzingclient", "-p", str(args.parallelism), "-o", str(outdir)]
        for section in sections:
            command += ["-i", f"{section}.*"]
        started = time.monotonic()
        subprocess.run([*command, f"127.0.0.1:{port}"], check=False, stdout=subprocess.DEVNULL)
        took = time.monotonic() - started
    finally:
        server.terminate()
        server.wait(30)
    table = summarize(outdir)
    kinds = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED", "close FAILED"]
    print(f"{'section':>8} " + " ".join(f"{kind:>13}" for kind in kinds))
    for section in sorted(table, key=int):
        print(f"{section:>8} " + " ".join(f"{table[section][kind]:>13}" for kind in kinds))
    failed = failed_cases(outdir)
    print(f"{sum(sum(c[k] for k in kinds[:5]) for c in table.values())} cases in {took:.0f} s; report: {outdir}")
    if failed:
        print("FAILED:", " ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
