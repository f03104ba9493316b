"""The servers the stress checks run: ``ftserve`` subprocesses on 127.0.0.1 and what /proc says of them.

Each server is started on a free port (``--port 0``) by ``tests.ftserve_process.start_ftserve`` and
stopped by pid (the supervisor and the workers it forked, nothing else). Figures are summed over the
process tree, so threads mode, processes mode and ``--gil`` compare alike.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psutil

from tests.ftserve_process import Served, start_ftserve

APP = "tests.stress.apps:app"
MIB = 1 << 20

# Runs the server under a lower RLIMIT_NOFILE (argv[1]), then execs the rest of argv.
_WITH_NOFILE = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); os.execv(sys.argv[2], sys.argv[2:])"
)


@dataclass(frozen=True)
class Sample:
    """One look at the server's process tree."""

    rss: int  # bytes, summed
    fds: int
    threads: int
    cpu: float  # user + system seconds, summed

    @property
    def rss_mib(self) -> float:
        return self.rss / MIB


def processes(served: Served) -> list[psutil.Process]:
    try:
        root = psutil.Process(served.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def sample(served: Served) -> Sample:
    rss = fds = threads = 0
    cpu = 0.0
    for process in processes(served):
        try:
            with process.oneshot():
                rss += process.memory_info().rss
                fds += process.num_fds()
                threads += process.num_threads()
                times = process.cpu_times()
                cpu += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return Sample(rss, fds, threads, cpu)


class Sampler:
    """Samples the server every ``interval`` seconds (call ``tick`` in a wait loop); keeps the peak."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.samples: list[tuple[float, Sample]] = []

    def tick(self) -> Sample:
        current = sample(self.served)
        self.samples.append((time.monotonic(), current))
        return current

    @property
    def peak_rss(self) -> int:
        return max((s.rss for _, s in self.samples), default=0)


@dataclass(frozen=True)
class Target:
    """How to start the servers of one run: the interpreter and the common options."""

    python: str
    free_threaded: bool
    threads: int = 2

    @contextlib.contextmanager
    def serve(self, *options: str, nofile: int = 0, http1: str = "fast") -> Iterator[Served]:
        argv = [self.python, "-m", "ftserver", "--port", "0", "--threads", str(self.threads), "--http1", http1,
                "--timeout-graceful-shutdown", "2", *options, APP]
        if nofile:
            argv = [self.python, "-c", _WITH_NOFILE, str(nofile), *argv]
        served = start_ftserve(argv=argv)
        try:
            wait_ready(served.port)
            yield served
        finally:
            served.stop(20)


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Until one GET answers (every worker process may not be up when "Listening on" is printed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = request(port, "GET", "/")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} does not answer")
        time.sleep(0.1)


def request(port: int, method: str, path: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, float]:
    """One request on a new connection (``connection: close``): (status, seconds taken)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(
            f"{method} {path} HTTP/1.1\r\nhost: stress\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body
        )
        data = bytearray()
        while chunk := sock.recv(MIB):
            data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"no response: {bytes(data[:80])!r}")
    return int(data[9:12]), time.monotonic() - start


def settle(served: Served, baseline: Sample, timeout: float, slack_fds: int = 2) -> Sample:
    """Wait (at most ``timeout`` s) until fds and threads are back to ``baseline``; the last sample."""
    deadline = time.monotonic() + timeout
    while True:
        current = sample(served)
        if current.fds <= baseline.fds + slack_fds and current.threads <= baseline.threads:
            return current
        if time.monotonic() > deadline:
            return current
        time.sleep(0.2)


def raise_nofile() -> None:
    """Let this process hold the client side of many connections."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def target(python: str) -> Target:
    """A Target for ``python``, asking it whether it is a free-threaded build."""
    import subprocess

    answer = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_config_var('Py_GIL_DISABLED'))"],
                            capture_output=True, text=True, check=True, timeout=60)
    return Target(python, free_threaded=answer.stdout.strip() == "1")
