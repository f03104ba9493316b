"""What ``--drain-delay`` changes for the clients of a stopping instance.

    python bench/drain.py [--seconds 2] [--delay 3] [--clients 2]

A load balancer (or kube-proxy) keeps sending new connections for a while after the
instance got SIGTERM. This starts ``ftserve --threads 2`` on loopback, runs ``--clients``
threads sending requests on new connections, sends SIGTERM and keeps the load going for
``--seconds``, then counts the requests served and failed in that time: without a drain
delay and with ``--drain-delay DELAY``. Uses the test helpers (run from the repository root).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.ftserve_process import Load, start_ftserve  # noqa: E402


def measure(args: list[str], seconds: float, clients: int) -> tuple[int, int]:
    """(served, failed) in the ``seconds`` after SIGTERM."""
    served = start_ftserve("--threads", "2", *args)
    try:
        with Load(served.port, clients=clients) as load:
            time.sleep(0.5)
            before = load.total
            served.signal(signal.SIGTERM)
            start = time.monotonic()
            time.sleep(seconds)
            done = load.total - before
            failed = sum(1 for when, _ in load.failures if when >= start)
    finally:
        served.stop()
    return done, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=2)
    options = parser.parse_args()
    for args in ([], ["--drain-delay", f"{options.delay:g}"]):
        done, failed = measure(args, options.seconds, options.clients)
        label = " ".join(args) or "no drain delay"
        print(f"{label:>18}: {done} requests served, {failed} failed in the {options.seconds:g} s after SIGTERM")


if __name__ == "__main__":
    main()
