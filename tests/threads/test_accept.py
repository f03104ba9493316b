"""Both accept paths (the shared ``AcceptQueue`` and each thread's ``SO_REUSEPORT``
listener) when accept() fails for want of descriptors: no spinning, a few log lines,
the open connections served, the queued ones once descriptors are free."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from tests.ftserve_process import FTSERVE, Served, start_ftserve, wait_for

pytestmark = pytest.mark.slow  # a server with a low descriptor limit for a few seconds

#: The descriptor limit of the server (supervisor and worker process).
NOFILE = 128
#: More idle connections than the worker can hold: the rest wait in the listen backlog.
IDLE = 2 * NOFILE
REQUEST = b"GET / HTTP/1.1\r\nhost: test\r\n\r\n"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answered(sock: socket.socket) -> bool:
    sock.settimeout(10)
    sock.sendall(REQUEST)
    return sock.recv(65536).startswith(b"HTTP/1.1 200")


def _start_with_few_descriptors(accept: str) -> Served:
    # The limit is set by a small launcher that then becomes ftserve (same pid).
    launcher = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({NOFILE}, {NOFILE})); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    args = [*FTSERVE[1:], "--port", "0", "--mode", "threads", "--threads", "2", "--accept", accept, "--timeout-keep-alive", "60", "tests.apps.lifecycle:app"]
    return start_ftserve(argv=[sys.executable, "-c", launcher, *args])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("accept", ["queue", "reuseport"])
def test_out_of_descriptors_pauses_accepting_and_serves_on(accept):
    served = _start_with_few_descriptors(accept)
    try:
        (worker,) = served.wait_workers(1)
        keeper = socket.create_connection(("127.0.0.1", served.port), timeout=10)
        assert _answered(keeper)
        mark = len(served.lines)
        idle = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(IDLE)]
        served.wait_log(r"accept\(\) failed", timeout=10, start=mark)
        cpu_before, started = _cpu_seconds(worker), time.monotonic()
        time.sleep(3)
        cpu = (_cpu_seconds(worker) - cpu_before) / (time.monotonic() - started)
        accept_lines = [line for line in served.lines[mark:] if "accept()" in line]
        # Before the fix: > 10,000 lines and most of a CPU in these 3 s.
        assert len(accept_lines) < 50, accept_lines[:3]
        assert cpu < 0.3, f"the worker used {cpu:.0%} of a CPU while it could not accept"
        assert _answered(keeper)  # the connections already open are served meanwhile
        last = idle.pop()  # in the backlog until descriptors are free
        for sock in idle:
            sock.close()
        assert _answered(last)
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as fresh:
            assert _answered(fresh)
        wait_for(lambda: any("accepting again" in line for line in served.lines[mark:]), 10, "the recovery to be logged")
        keeper.close()
        last.close()
    finally:
        served.stop()
