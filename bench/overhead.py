"""The CPU cost per request of a server option: ftserve with and without it, alternated.

    python bench/overhead.py --with "--metrics --metrics-port 0"      # the metrics' cost
    python bench/overhead.py --with "--access-log" --rounds 5 --app bench.apps:hello

Each round starts ``ftserve --threads 1`` (the base options, then the option under test),
loads it with ``wrk -t1 -c32 -d10s`` and divides the CPU time of the server's process group
(utime + stime from /proc, all threads) by the responses wrk counted; the runs alternate
base / option so drift on a shared machine falls on both alike. Prints each run and the
mean of each side; the overhead is their ratio.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import LoadSpec, run_wrk  # noqa: E402
from procs import ServerProcess, free_port, group_cpu_seconds  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def measure(python: str, app: str, options: list[str], seconds: int, connections: int, source: Path = ROOT) -> tuple[float, float]:
    """(µs of server CPU per response, responses per second) of one run."""
    port = free_port("127.0.0.1")
    argv = [python, "-m", "ftserver.cli", "--threads", "1", "--port", str(port), "--log-level", "warning", *options, app]
    env = {**os.environ, "PYTHONPATH": str(source)}
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as folder:
        with ServerProcess(argv, source, env, Path(folder) / "server.log") as server:
            server.wait_ready("127.0.0.1", port, 30)
            server.wait_quiet()
            before = group_cpu_seconds(server.pgid)
            result = run_wrk(LoadSpec(f"http://127.0.0.1:{port}/", seconds, connections, 1))
            used = group_cpu_seconds(server.pgid) - before
    return used / result.requests * 1e6, result.requests_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with", dest="option", required=True, help="the ftserve options under test, one string")
    parser.add_argument("--base", default="", help="options both sides get")
    parser.add_argument("--app", default="bench.apps:hello")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--source", type=Path, default=ROOT, help="the ftserver checkout to run (default: this one)")
    args = parser.parse_args()
    base = shlex.split(args.base)
    sides: dict[str, list[float]] = {"base": [], "with": []}
    for round_ in range(args.rounds):
        for side, options in (("base", base), ("with", base + shlex.split(args.option))):
            cpu, rate = measure(args.python, args.app, options, args.seconds, args.connections, args.source)
            sides[side].append(cpu)
            print(f"round {round_ + 1} {side:4}: {cpu:6.2f} µs CPU per request, {rate:8.0f} req/s", flush=True)
    plain, with_option = statistics.mean(sides["base"]), statistics.mean(sides["with"])
    print(f"mean: {plain:.2f} µs without, {with_option:.2f} µs with {args.option!r}: {(with_option / plain - 1) * 100:+.1f} %")


if __name__ == "__main__":
    main()
