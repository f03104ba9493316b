"""Helpers for the supervisor and worker-process tests: the real ``ftserve`` in a
subprocess, and a load loop. Import the ``ftserve`` fixture from here.

Every process is addressed by pid: the supervisor we started, and its worker processes
as psutil lists them. Nothing runs longer than the timeouts given here.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
FTSERVE = [sys.executable, "-m", "ftserver"]
APP = "tests.apps.lifecycle:app"
FREE_THREADED = bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))


def wait_for(condition: Callable[[], object], timeout: float, what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Served:
    """A running ``ftserve``: its process, URL and everything it printed so far."""

    def __init__(self, proc: subprocess.Popen[str], lines: list[str]) -> None:
        self.proc = proc
        self.lines = lines
        self.url = ""
        self.port = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def workers(self) -> set[int]:
        """Pids of the live worker processes (children of the supervisor)."""
        try:
            children = psutil.Process(self.pid).children()
        except psutil.NoSuchProcess:
            return set()
        pids = set()
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    pids.add(child.pid)
            except psutil.NoSuchProcess:
                pass
        return pids

    def wait_log(self, pattern: str, timeout: float = 10.0, start: int = 0) -> re.Match[str]:
        """The first output line from ``start`` on that matches ``pattern``."""
        regex = re.compile(pattern)

        def find() -> re.Match[str] | None:
            for line in self.lines[start:]:
                match = regex.search(line)
                if match:
                    return match
            return None

        try:
            return wait_for(find, timeout, f"a log line matching {pattern!r}")  # type: ignore[return-value]
        except AssertionError:
            raise AssertionError(f"no line matching {pattern!r} in:\n{self.output}") from None

    def wait_workers(self, count: int, timeout: float = 10.0, exclude: set[int] = frozenset()) -> set[int]:  # type: ignore[assignment]
        """Wait until exactly ``count`` workers run, none of them in ``exclude``."""

        def check() -> set[int] | None:
            pids = self.workers()
            return pids if len(pids) == count and not pids & exclude else None

        try:
            return wait_for(check, timeout, f"{count} workers")  # type: ignore[return-value]
        except AssertionError:
            raise AssertionError(f"expected {count} workers (not {sorted(exclude)}), have {sorted(self.workers())}; output:\n{self.output}") from None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait; SIGKILL (the supervisor and its workers) if it hangs."""
        workers = self.workers()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            for pid in workers:  # none should be left; make sure of it
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def start_ftserve(*args: str, env: dict[str, str] | None = None, app: str | None = APP, timeout: float = 30.0, argv: list[str] | None = None) -> Served:
    """Start ftserve on a free port (or run ``argv``); return once it printed "Listening on"."""
    if argv is None:
        argv = [*FTSERVE, "--port", "0", *args]
        if app:
            argv.append(app)
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    lines: list[str] = []
    served = Served(proc, lines)
    listening = threading.Event()

    def collect() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            match = re.search(r"Listening on (https?://\S+|unix:\S+)", line)
            if match and not served.url:
                served.url = match.group(1)
                if served.url.startswith("http"):
                    served.port = int(served.url.rsplit(":", 1)[1])
                listening.set()
        listening.set()

    threading.Thread(target=collect, daemon=True).start()
    if not listening.wait(timeout) or not served.url:
        served.stop(5)
        raise AssertionError("ftserve did not start:\n" + served.output)
    return served


@pytest.fixture
def ftserve() -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str, **kwargs: object) -> Served:
        served = start_ftserve(*args, **kwargs)  # type: ignore[arg-type]
        started.append(served)
        return served

    yield start
    for served in started:
        served.stop()


def wait_accepted(server_pid: int, sock: socket.socket, timeout: float = 10.0) -> None:
    """Wait until the server (the process or one of its workers) has accepted ``sock``.

    A request sent on it is then in the server's hands: a signal sent next finds it in
    flight (on a loaded machine, a fixed sleep does not promise that).
    """
    local = sock.getsockname()[:2]

    def accepted() -> bool:
        try:
            root = psutil.Process(server_pid)
            processes = [root, *root.children()]
        except psutil.NoSuchProcess:
            return False
        for process in processes:
            try:
                for conn in process.net_connections(kind="tcp"):
                    if conn.raddr and (conn.raddr.ip, conn.raddr.port) == local:
                        return True
            except psutil.Error:
                pass
        return False

    wait_for(accepted, timeout, "the server to accept the connection")


def send_request(port: int, path: str, timeout: float = 30.0) -> socket.socket:
    """Open a connection and send a GET on it (``connection: close``); read with ``read_response``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(f"GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n".encode())
    return sock


def read_response(sock: socket.socket) -> tuple[int, str]:
    """(status, body) of the response on ``sock``; raises ``ConnectionError`` if there is none."""
    chunks = []
    with sock:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise ConnectionError(f"no response: {response[:100]!r}")
    return int(head[9:12]), body.decode()


def refused(port: int) -> bool:
    """True if a connect to ``port`` is refused now (False: it was taken, or not answered).

    A stopping server's listener drops SYNs for a moment before it closes (``SETTLE``):
    such a connect times out here, and the next call finds the port closed."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except ConnectionRefusedError:
        return True
    except TimeoutError:
        pass
    return False


def get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, str]:
    """One request on a fresh connection (``connection: close``); (status, body)."""
    return read_response(send_request(port, path, timeout))


class Load:
    """Client threads sending requests in a loop until stopped, each on a new connection.

    ``served`` counts the answers per worker pid (the app answers with its pid);
    ``failures`` lists what went wrong, with the time it happened.
    """

    def __init__(self, port: int, clients: int = 2, path: str = "/") -> None:
        self.port = port
        self.path = path
        self.failures: list[tuple[float, str]] = []
        self._counters = [Counter[int]() for _ in range(clients)]  # one per thread: no shared writes
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in self._counters]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        wait_for(lambda: self.total >= 10 or self.failures, 10, "the load to get going")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    @property
    def served(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for counter in self._counters:
            total.update(counter.copy())
        return total

    @property
    def total(self) -> int:
        return sum(self.served.values())

    def served_by_others(self, pids: set[int]) -> int:
        """Answers from workers not in ``pids``."""
        return sum(n for pid, n in self.served.items() if pid not in pids)

    def _run(self, served: Counter[int]) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port, self.path)
                if status != 200:
                    raise ConnectionError(f"status {status}")
                served[int(body)] += 1
            except (OSError, ValueError) as exc:
                self.failures.append((time.monotonic(), repr(exc)))
