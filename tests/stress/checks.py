"""The stress checks. Each starts its own servers, attacks them and returns table rows.

A row is (check, mode, figure, bound, passed). Bounds are generous on purpose: they catch a
regression of issue 13 (hundreds of MB held by one client, a loop spinning on EMFILE, a request
body that never times out), not a few MB of allocator noise. No figure depends on a fixed sleep
being long enough: every wait polls until a generous deadline.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.stress import corpus
from tests.stress.server import MIB, Sampler, Target, request, sample, settle


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure measured, the bound it must keep, and whether it did."""

    check: str
    mode: str
    figure: str
    bound: str
    passed: bool


@dataclass(frozen=True)
class Plan:
    """The sizes of one run: the full one or ``--quick``."""

    quick: bool
    target: Target

    def pick(self, full: object, quick: object):  # type: ignore[no-untyped-def]
        return quick if self.quick else full


MODES = ("fast", "h11")


# --- the hostile corpus ---------------------------------------------------------------------------

def check_corpus(plan: Plan) -> list[Row]:
    rows, details = [], []
    for mode in MODES:
        with plan.target.serve("--timeout-keep-alive", "1", http1=mode) as served:
            with ThreadPoolExecutor(2) as pool:
                runs = {trickle: pool.submit(corpus.run_corpus, served.port, trickle) for trickle in (False, True)}
            for trickle, future in runs.items():
                outcomes = future.result()
                bad = [o for o in outcomes if o.problem]
                how = "trickled" if trickle else "whole"
                rows.append(Row("corpus", f"{mode} {how}", f"{len(outcomes) - len(bad)}/{len(outcomes)} cases", "all", not bad))
                details += [f"corpus {mode} {how}: {o.case.name}: {o.problem}" for o in bad]
            rows += alive(served, "corpus", mode)
    DETAILS.extend(details)
    return rows


# --- slow clients (slowhttptest) ------------------------------------------------------------------

SLOW_ATTACKS = {
    # name: (slowhttptest arguments, path, peak RSS growth bound in MiB per connection)
    "slow-headers": (["-H", "-i", "3", "-x", "24"], "/", 0.25),
    "slow-body": (["-B", "-i", "3", "-s", "65536", "-x", "24"], "/slowread", 0.25),
    # -k 3: three requests of the 1 MiB response on each connection; at most about one may be buffered
    "slow-read": (["-X", "-w", "512", "-y", "1024", "-n", "1", "-z", "32", "-k", "3"], "/big", 1.25),
}


def check_slow(plan: Plan, name: str) -> list[Row]:
    args, path, per_connection = SLOW_ATTACKS[name]
    tool = shutil.which("slowhttptest")
    if not tool:
        return [Row(name, "-", "slowhttptest not installed", "-", False)]
    length = plan.pick(15, 5)
    connections = plan.pick(200, 100)
    timeout_io = plan.pick(10, 4)
    peak_bound = round(connections * per_connection)
    with plan.target.serve("--timeout-io", str(timeout_io), "--timeout-keep-alive", "5") as served:
        sampler = Sampler(served)
        base = sampler.tick()
        argv = [tool, *args, "-c", str(connections), "-r", "100", "-l", str(length), "-p", "3",
                "-u", f"http://127.0.0.1:{served.port}{path}"]
        attack = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        worst = 0.0
        failed_probes = 0
        try:
            time.sleep(1)  # let the connections open
            while attack.poll() is None:
                sampler.tick()
                try:
                    status, took = request(served.port, "GET", "/", timeout=10)
                    worst = max(worst, took)
                    failed_probes += status != 200
                except OSError:
                    failed_probes += 1
                time.sleep(0.5)
                if time.monotonic() - sampler.samples[0][0] > length + 30:
                    break
        finally:
            if attack.poll() is None:
                attack.kill()
            attack.wait(10)
        after = settle(served, base, timeout=timeout_io + 10)
        peak = (sampler.peak_rss - base.rss) / MIB
        left = (after.rss - base.rss) / MIB
        return [
            Row(name, f"-c {connections} -l {length}", f"peak RSS +{peak:.0f} MiB", f"<= {peak_bound} MiB", peak <= peak_bound),
            Row(name, "after", f"RSS +{left:.0f} MiB, fds +{after.fds - base.fds}", "<= 64 MiB, fds +2", left <= 64 and after.fds <= base.fds + 2),
            Row(name, "probe", f"worst {worst * 1000:.0f} ms, {failed_probes} failed", "<= 2000 ms, 0 failed", worst <= 2 and not failed_probes),
        ]


# --- chaotic disconnects --------------------------------------------------------------------------

def chaotic_client(port: int, rng: random.Random) -> None:
    """One connection closed (or reset) at a random point of its request or response."""
    how = rng.randrange(7)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if how in (4, 6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # close = RST
        head = b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n"
        if how == 0:
            return
        if how in (1, 6):
            sock.sendall(head[: rng.randrange(1, len(head) - 1)])
        elif how in (2, 4):
            sock.sendall(head)
        elif how == 3:
            sock.sendall(head)
            sock.recv(rng.randrange(1, 200_000))
        elif how == 5:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * rng.randrange(1, 50_000))
        if rng.random() < 0.3:
            time.sleep(rng.random() * 0.02)


def check_disconnects(plan: Plan) -> list[Row]:
    count = plan.pick(3000, 600)
    rows = []
    with plan.target.serve("--timeout-keep-alive", "5") as served:
        for _ in range(5):
            request(served.port, "GET", "/big")
        base = settle(served, sample(served), 5)
        rng = random.Random(13)
        seeds = [rng.random() for _ in range(count)]

        def one(seed: float) -> None:
            try:
                chaotic_client(served.port, random.Random(seed))
            except OSError:
                pass

        with ThreadPoolExecutor(32) as pool:
            list(pool.map(one, seeds))
        after = settle(served, base, timeout=20)
        rows.append(Row("disconnects", f"{count} conns", f"fds +{after.fds - base.fds}, threads +{after.threads - base.threads}",
                        "fds +2, threads +0", after.fds <= base.fds + 2 and after.threads <= base.threads))
        rows += alive(served, "disconnects", "fast")
    return rows


# --- EMFILE ---------------------------------------------------------------------------------------

def check_emfile(plan: Plan) -> list[Row]:
    limit, idle = 256, 400
    hold = plan.pick(8, 3)
    with plan.target.serve("--timeout-keep-alive", "60", "--no-supervisor" if plan.target.free_threaded else "--workers=1",
                           nofile=limit) as served:
        keep = socket.create_connection(("127.0.0.1", served.port), timeout=10)  # already open: must stay served
        lines_before = len(served.lines)
        socks = []
        try:
            for _ in range(idle):
                socks.append(socket.create_connection(("127.0.0.1", served.port), timeout=10))
            start, cpu0 = time.monotonic(), sample(served).cpu
            time.sleep(hold)
            cpu = (sample(served).cpu - cpu0) / (time.monotonic() - start)
            lines = len(served.lines) - lines_before
            keep.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            served_keep = keep.recv(100).startswith(b"HTTP/1.1 200")
        finally:
            keep.close()
            for sock in socks:
                sock.close()
        rows = [
            Row("emfile", f"nofile {limit}, {idle} idle, {hold} s", f"{lines} log lines", "<= 20", lines <= 20),
            Row("emfile", "cpu", f"{cpu * 100:.0f} % of a CPU", "<= 25 %", cpu <= 0.25),
            Row("emfile", "open conn", "served" if served_keep else "not served", "served", served_keep),
        ]
        return rows + alive(served, "emfile", "after")


# --- pipelining without reading -------------------------------------------------------------------

PIPELINED = (("/small", "9 KB", 32), ("/big", "1 MiB", 64))  # path, response size, RSS growth bound (MiB)


def check_pipeline(plan: Plan) -> list[Row]:
    rows = []
    for mode in MODES:
        with plan.target.serve("--timeout-io", "30", http1=mode) as served:
            for path, size, bound in PIPELINED[plan.quick:]:  # --quick: the 1 MiB one (9 KB fits in loopback buffers)
                sampler = Sampler(served)
                base = sampler.tick()
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel holds little: the server must
                    sock.settimeout(10)
                    sock.connect(("127.0.0.1", served.port))
                    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\n\r\n".encode() * 300)
                    deadline = time.monotonic() + plan.pick(6, 2)
                    while time.monotonic() < deadline:
                        sampler.tick()
                        time.sleep(0.2)
                growth = (sampler.peak_rss - base.rss) / MIB
                rows.append(Row("pipeline", f"{mode} 300 x {size} unread", f"RSS +{growth:.0f} MiB", f"<= {bound} MiB", growth <= bound))
                settle(served, base, timeout=10)
            rows += alive(served, "pipeline", mode)
    return rows


# --- a stalled request body -----------------------------------------------------------------------

def stalled_body(port: int, bound: float) -> tuple[float, str]:
    """Seconds until the server answers or closes a body that stops halfway; what it did."""
    with socket.create_connection(("127.0.0.1", port), timeout=bound) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello")
        start = time.monotonic()
        try:
            data = sock.recv(100)
        except TimeoutError:
            return time.monotonic() - start, "still open"
        except OSError:
            data = b""
        return time.monotonic() - start, data[:12].decode("latin-1", "replace") or "closed"


def check_body_timeout(plan: Plan) -> list[Row]:
    timeout_io = plan.pick(5, 1)
    bound = timeout_io + 5

    def one(mode: str) -> Row:
        with plan.target.serve("--timeout-io", str(timeout_io), http1=mode) as served:
            took, what = stalled_body(served.port, bound + 1)
        ok = took <= bound and what != "still open"
        return Row("body-timeout", f"{mode} --timeout-io {timeout_io}", f"{what} after {took:.1f} s", f"<= {bound} s", ok)

    with ThreadPoolExecutor(len(MODES)) as pool:
        return list(pool.map(one, MODES))


# --- a body of one-byte chunks -------------------------------------------------------------------

def check_chunks(plan: Plan) -> list[Row]:
    """A 1.2 MB body of 200,000 one-byte chunks, and probes on the same worker thread meanwhile."""
    chunks = plan.pick(200_000, 100_000)
    rows = []
    for mode in MODES:
        with plan.target.serve("--threads", "1", http1=mode) as served:
            done = threading.Event()
            answer: list[int] = []

            def upload() -> None:
                try:
                    with socket.create_connection(("127.0.0.1", served.port), timeout=60) as sock:
                        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                     + b"1\r\nx\r\n" * chunks + b"0\r\n\r\n")
                        answer.append(int(sock.recv(12)[9:12] or 0))
                finally:
                    done.set()

            uploader = threading.Thread(target=upload, daemon=True)
            uploader.start()
            worst = 0.0
            while not done.wait(0.02):
                try:
                    worst = max(worst, request(served.port, "GET", "/", timeout=30)[1])
                except OSError:
                    worst = float("inf")
            uploader.join(60)
            status = answer[0] if answer else 0
            rows.append(Row("chunks", f"{mode} {chunks:,} x 1 byte", f"probe worst {worst * 1000:.0f} ms, upload {status}",
                            "<= 150 ms; 200 or 4xx", worst <= 0.15 and (status == 200 or 400 <= status < 500)))
    return rows


# --- connections spread over worker processes -----------------------------------------------------

def check_balance(plan: Plan) -> list[Row]:
    """wrk's 64 connections against 4 worker processes: how many each process holds."""
    tool = shutil.which("wrk")
    if not tool:
        return [Row("balance", "-", "wrk not installed", "-", False)]
    with plan.target.serve("--workers", "4", "--threads", "1") as served:
        idle = {pid: sockets(pid) for pid in served.workers()}  # listeners and the like
        wrk = subprocess.Popen([tool, "-t2", "-c64", "-d4s", f"http://127.0.0.1:{served.port}/"], stdout=subprocess.DEVNULL)
        try:
            time.sleep(2)  # wrk opens its connections at once; count them mid-run
            counts = sorted(sockets(pid) - before for pid, before in idle.items())
        finally:
            wrk.wait(30)
    mean = sum(counts) / max(1, len(counts))
    ok = len(counts) == 4 and sum(counts) >= 32 and counts[0] >= mean / 4
    return [Row("balance", "4 workers, wrk -c64", f"connections {counts}", ">= mean/4 each", ok)]


def sockets(pid: int) -> int:
    """Open sockets of process ``pid`` (/proc/<pid>/fd; quicker than parsing /proc/net/tcp)."""
    count = 0
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                count += os.readlink(fd.path).startswith("socket:")
            except OSError:
                pass
    except OSError:
        pass
    return count


# --- many threads on shared state -----------------------------------------------------------------

def keep_alive_client(port: int, requests: int) -> int:
    """``requests`` GET /count on one keep-alive connection; the number of 200s read back."""
    got = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        for _ in range(requests):
            sock.sendall(b"GET /count HTTP/1.1\r\nHost: a\r\n\r\n")
            status = reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            got += status.startswith(b"HTTP/1.1 200")
    return got


def check_threads(plan: Plan) -> list[Row]:
    """8 client threads against 4 worker threads in one process: every request answered once, none lost."""
    clients, each = 8, plan.pick(2000, 400)
    with plan.target.serve("--mode", "threads", "--threads", "4") as served:
        with ThreadPoolExecutor(clients) as pool:
            got = sum(pool.map(lambda _: keep_alive_client(served.port, each), range(clients)))
        status, body = request_body(served.port, "/count")
        counted = int(body) - 1  # this last request is counted too
    sent = clients * each
    return [Row("threads", f"{clients} clients x {each}, --threads 4", f"{got} answered, app counted {counted}",
                f"{sent} and {sent}", got == sent and counted == sent and status == 200)]


def request_body(port: int, path: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        data = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head[9:12]), body


# --- the soak -------------------------------------------------------------------------------------

WRK_SCRIPT = """
local paths = {"/", "/small", "/echo"}
local i = 0
request = function()
  i = i + 1
  local path = paths[(i % 3) + 1]
  if path == "/echo" then
    return wrk.format("POST", path, {["Content-Length"] = "2000"}, string.rep("e", 2000))
  end
  return wrk.format("GET", path)
end
"""


def check_soak(plan: Plan) -> list[Row]:
    tool = shutil.which("wrk")
    if not tool:
        return [Row("soak", "-", "wrk not installed", "-", False)]
    duration = plan.pick(45, 6)
    every = plan.pick(5, 1)
    with plan.target.serve("--timeout-keep-alive", "5") as served, tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        base = sample(served)
        wrk = subprocess.Popen([tool, "-t2", "-c32", f"-d{duration}s", "-s", script.name, f"http://127.0.0.1:{served.port}/"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sampler = Sampler(served)
        stop = threading.Event()
        chaos = threading.Thread(target=chaos_trickle, args=(served.port, stop), daemon=True)
        chaos.start()
        try:
            while wrk.poll() is None:
                sampler.tick()
                time.sleep(every)
            output = wrk.communicate(timeout=30)[0]
        finally:
            stop.set()
            if wrk.poll() is None:
                wrk.kill()
            chaos.join(10)
        after = settle(served, base, timeout=15)
    rss = [s.rss for _, s in sampler.samples[1:]]  # the first sample is taken before the load warmed up
    third = max(1, len(rss) // 3)
    growth = (max(rss[-third:]) - max(rss[:third])) / MIB  # the last third against the first: a leak grows
    errors = wrk_errors(output)
    track = " ".join(f"{r / MIB:.0f}" for r in rss)
    DETAILS.append(f"soak: RSS MiB every {every} s: {track}; fds: {' '.join(str(s.fds) for _, s in sampler.samples)}")
    return [
        Row("soak", f"wrk {duration} s mixed", f"RSS +{growth:.0f} MiB (last third vs first)", "<= 32 MiB", growth <= 32),
        Row("soak", "errors", f"{errors} failed ({requests_done(output)} requests)", "0", errors == 0),
        Row("soak", "after", f"fds +{after.fds - base.fds}, threads +{after.threads - base.threads}", "fds +2, threads +0",
            after.fds <= base.fds + 2 and after.threads <= base.threads),
    ]


def chaos_trickle(port: int, stop: threading.Event) -> None:
    """Beside wrk: a few chaotic disconnects a second."""
    rng = random.Random(7)
    while not stop.is_set():
        try:
            chaotic_client(port, rng)
        except OSError:
            pass
        time.sleep(0.1)


def wrk_errors(output: str) -> int:
    total = 0
    if match := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output):
        total += sum(int(n) for n in match.groups())
    if match := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        total += int(match.group(1))
    return total


def requests_done(output: str) -> int:
    match = re.search(r"(\d+) requests in", output)
    return int(match.group(1)) if match else 0


# --- shared ---------------------------------------------------------------------------------------

DETAILS: list[str] = []  # failing corpus cases and the soak's time series, printed under the table


def alive(served, check: str, mode: str) -> list[Row]:  # type: ignore[no-untyped-def]
    """The server still answers (and its process is still there) after the attack."""
    try:
        status, _ = request(served.port, "GET", "/small")
    except OSError as exc:
        status = 0
        DETAILS.append(f"{check} {mode}: no answer after the attack: {exc!r}")
    running = served.proc.poll() is None
    return [Row(check, f"{mode} alive", f"status {status}", "200", status == 200 and running)]


CHECKS = {
    "corpus": check_corpus,
    "slow-headers": lambda plan: check_slow(plan, "slow-headers"),
    "slow-body": lambda plan: check_slow(plan, "slow-body"),
    "slow-read": lambda plan: check_slow(plan, "slow-read"),
    "disconnects": check_disconnects,
    "emfile": check_emfile,
    "pipeline": check_pipeline,
    "body-timeout": check_body_timeout,
    "chunks": check_chunks,
    "balance": check_balance,
    "threads": check_threads,
    "soak": check_soak,
}
QUICK = ("corpus", "slow-read", "disconnects", "emfile", "pipeline", "body-timeout", "chunks", "balance", "threads", "soak")
