"""Start, wait for and stop server processes; read their CPU time and memory from /proc.

Every server starts in a new session, so its process group holds it and all the workers it
forks or spawns. Measurements sum over that group (all threads of all processes); stopping
signals that group and nothing else.
"""

from __future__ import annotations

import http.client
import ssl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Self

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class NotReady(Exception):
    """The server exited or did not answer in time; the message is the reason shown."""


@dataclass(frozen=True)
class ProcStat:
    """The fields of /proc/<pid>/stat we use."""

    pid: int
    state: str
    pgid: int
    cpu_ticks: int  # utime + stime, summed over the process's threads by the kernel
    threads: int
    rss_pages: int


@dataclass(frozen=True)
class Memory:
    """Memory of a process group."""

    rss_mb: float  # sum of RSS: counts pages shared between processes once per process
    pss_mb: float | None  # proportional set size: shared pages split between sharers
    processes: int
    threads: int


def _read_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # comm (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0],
        pgid=int(fields[2]),
        cpu_ticks=int(fields[11]) + int(fields[12]),
        threads=int(fields[17]),
        rss_pages=int(fields[21]),
    )


def group_members(pgid: int) -> list[ProcStat]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None and stat.pgid == pgid and stat.state not in ("Z", "X"):
                members.append(stat)
    return members


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds consumed so far by the live processes of a group."""
    return sum(m.cpu_ticks for m in group_members(pgid)) / CLOCK_TICKS


def _pss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def group_memory(pgid: int) -> Memory:
    """RSS and PSS summed over a process group."""
    members = group_members(pgid)
    pss = [_pss_kb(m.pid) for m in members]
    return Memory(
        rss_mb=sum(m.rss_pages for m in members) * PAGE_SIZE / 2**20,
        pss_mb=None if None in pss else sum(p for p in pss if p is not None) / 1024,
        processes=len(members),
        threads=sum(m.threads for m in members),
    )


def connection(host: str, port: int, tls: bool, timeout: float) -> http.client.HTTPConnection:
    """An HTTP connection, or an HTTPS one that takes the run's self-signed certificate."""
    if not tls:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl._create_unverified_context())


def free_port(host: str) -> int:
    """A TCP port nobody listens on right now (a fresh one per start avoids TIME_WAIT clashes)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """A server we started, in a process group of its own; use as a context manager."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str], log_path: Path) -> None:
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as log:
            self._popen = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.pgid = self._popen.pid  # the session leader's pid is its group id

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def alive(self) -> bool:
        return self._popen.poll() is None

    def log_tail(self) -> str:
        """The last line the server printed, for failure reasons."""
        try:
            lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no log)"
        return lines[-1][:200] if lines else "(no output)"

    def wait_ready(
        self, host: str, port: int, timeout_s: float, tls: bool = False, probe: Callable[[], bool] | None = None
    ) -> None:
        """Poll until a GET / is answered with any HTTP/1.1 response (over TLS with ``tls``), or
        until ``probe()`` is true when given (an HTTP/2-only server answers no HTTP/1.1)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise NotReady(f"exited with code {self._popen.returncode}: {self.log_tail()}")
            if probe is not None:
                if probe():
                    return
                time.sleep(0.1)
                continue
            conn = connection(host, port, tls, timeout=2)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                return
            except (OSError, http.client.HTTPException):
                time.sleep(0.1)
            finally:
                conn.close()
        raise NotReady(f"no HTTP answer within {timeout_s:.0f} s: {self.log_tail()}")

    def wait_quiet(self, timeout_s: float = 10.0, window_s: float = 0.25, max_load: float = 0.1) -> None:
        """Wait until the group's process count is steady and it uses < ``max_load`` CPUs.

        Multi-process servers answer as soon as one worker is up while others still import;
        their start-up CPU must not land in a measurement.
        """
        deadline = time.monotonic() + timeout_s
        before = group_members(self.pgid)
        while time.monotonic() < deadline:
            time.sleep(window_s)
            after = group_members(self.pgid)
            used = (sum(m.cpu_ticks for m in after) - sum(m.cpu_ticks for m in before)) / CLOCK_TICKS
            if len(after) == len(before) and used / window_s < max_load:
                return
            before = after

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the group, then SIGKILL what is left after ``timeout_s``; reap the leader.

        SIGTERM rather than SIGINT: Granian 2.7.9 aborts on SIGINT on 3.13t.
        """
        self._signal_group(signal.SIGTERM)
        try:
            self._popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + timeout_s
        while group_members(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if group_members(self.pgid) or self.alive():
            self._signal_group(signal.SIGKILL)
        self._popen.wait(timeout_s)

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:  # the whole group is gone already
            pass
