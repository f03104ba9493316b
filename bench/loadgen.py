"""Load generators, behind one interface: ``TOOLS[name](LoadSpec) -> LoadResult``.

``wrk`` (HTTP/1.1), ``h2load`` (HTTP/2: cleartext by prior knowledge for ``http://``, TLS with
ALPN ``h2`` for ``https://``) and ``wsload`` (WebSocket echo, ``wsload.py``).
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class LoadError(Exception):
    """The load generator failed or printed something we cannot read."""


@dataclass(frozen=True)
class LoadSpec:
    """One load run."""

    url: str
    duration_s: int  # wrk accepts whole seconds only
    connections: int
    threads: int
    method: str = "GET"
    request_bytes: int = 0  # request body: that many bytes of "x"
    cpus: str | None = None  # taskset CPU list for the load generator; None: unpinned
    streams: int = 1  # h2load -m: concurrent streams per connection
    message_bytes: int = 0  # wsload: message size


@dataclass(frozen=True)
class LoadResult:
    """What a load run measured."""

    requests: int  # responses completed
    seconds: float
    requests_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    non_2xx: int
    socket_errors: int  # connect + read + write + timeout
    load_cpu_fraction: float | None = None  # wsload: its CPU seconds per second (1.0: one CPU busy)


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_WRK_TOTAL = re.compile(r"(\d+) requests in ([\d.]+)(us|ms|s|m),")
_WRK_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_WRK_PERCENTILE = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def _wrk_script(spec: LoadSpec, folder: Path) -> Path:
    """A wrk Lua script setting the request method and body."""
    script = folder / "request.lua"
    script.write_text(
        f'wrk.method = "{spec.method}"\n'
        f'wrk.body = string.rep("x", {spec.request_bytes})\n'
        'wrk.headers["Content-Type"] = "application/octet-stream"\n'
    )
    return script


def run_wrk(spec: LoadSpec) -> LoadResult:
    """Run wrk with ``--latency`` and parse its summary."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as folder:
        argv = ["wrk", f"-t{spec.threads}", f"-c{spec.connections}", f"-d{spec.duration_s}s", "--latency"]
        if spec.method != "GET" or spec.request_bytes:
            argv += ["-s", str(_wrk_script(spec, Path(folder)))]
        argv.append(spec.url)
        try:
            done = subprocess.run(
                _pinned(argv, spec.cpus), check=False, capture_output=True, text=True, timeout=spec.duration_s + 30
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError("wrk did not finish in time") from exc
    total, rate = _WRK_TOTAL.search(done.stdout), _WRK_RATE.search(done.stdout)
    if done.returncode != 0 or total is None or rate is None:
        raise LoadError(f"wrk failed ({done.returncode}): {(done.stderr or done.stdout).strip()[:200]}")
    percentiles = {m[1]: float(m[2]) * _UNIT_MS[m[3]] for m in _WRK_PERCENTILE.finditer(done.stdout)}
    non_2xx = _WRK_NON_2XX.search(done.stdout)
    socket = _WRK_SOCKET.search(done.stdout)
    return LoadResult(
        requests=int(total[1]),
        seconds=float(total[2]) * _UNIT_MS[total[3]] / 1e3,
        requests_per_s=float(rate[1]),
        latency_p50_ms=percentiles.get("50"),
        latency_p99_ms=percentiles.get("99"),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in socket.groups()) if socket else 0,
    )


def _pinned(argv: list[str], cpus: str | None) -> list[str]:
    return argv if cpus is None else ["taskset", "-c", cpus, *argv]


_H2_FINISHED = re.compile(r"finished in ([\d.]+)(us|ms|s|m), ([\d.]+) req/s")
_H2_REQUESTS = re.compile(r"requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout")
_H2_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


def _percentiles_from_log(path: Path) -> tuple[float | None, float | None]:
    """p50 and p99 in ms from an h2load ``--log-file`` (its third column: µs per request)."""
    try:
        times = sorted(int(line.split("\t")[2]) for line in path.read_text().splitlines() if line.count("\t") >= 2)
    except (OSError, ValueError):
        return None, None
    if not times:
        return None, None
    return statistics.median(times) / 1e3, times[min(len(times) - 1, int(len(times) * 0.99))] / 1e3


def run_h2load(spec: LoadSpec) -> LoadResult:
    """Run h2load for ``duration_s`` (``-D``) and parse its summary; latency percentiles from its log."""
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as folder:
        log = Path(folder) / "requests.log"
        argv = [
            "h2load", f"-t{spec.threads}", f"-c{spec.connections}", f"-m{spec.streams}", f"-D{spec.duration_s}",
            f"--log-file={log}",
        ]  # fmt: skip
        if spec.method != "GET" or spec.request_bytes:
            body = Path(folder) / "body"
            body.write_bytes(b"x" * spec.request_bytes)
            argv += ["-d", str(body)]
        argv.append(spec.url)
        try:
            done = subprocess.run(
                _pinned(argv, spec.cpus), check=False, capture_output=True, text=True, timeout=spec.duration_s + 30
            )
        except subprocess.TimeoutExpired as exc:
            raise LoadError("h2load did not finish in time") from exc
        finished, requests, status = (p.search(done.stdout) for p in (_H2_FINISHED, _H2_REQUESTS, _H2_STATUS))
        if done.returncode != 0 or finished is None or requests is None or status is None:
            raise LoadError(f"h2load failed ({done.returncode}): {(done.stderr or done.stdout).strip()[:200]}")
        p50, p99 = _percentiles_from_log(log)
    seconds = float(finished[1]) * _UNIT_MS[finished[2]] / 1e3
    if "Application protocol: h2" not in done.stdout:
        raise LoadError(f"h2load did not speak HTTP/2: {done.stdout.strip()[:200]}")
    return LoadResult(
        requests=int(requests[1]),
        seconds=seconds,
        requests_per_s=float(finished[3]),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        non_2xx=sum(int(n) for n in status.groups()[1:]),
        socket_errors=sum(int(n) for n in requests.groups()[1:]),
    )


def run_wsload(spec: LoadSpec) -> LoadResult:
    """Run ``wsload.py`` (WebSocket echo) with this interpreter; one message echoed counts as a request."""
    script = Path(__file__).resolve().parent / "wsload.py"
    argv = [sys.executable, str(script), spec.url, "-c", str(spec.connections), "-d", str(spec.duration_s),
            "-s", str(spec.message_bytes), "-p", str(spec.threads)]  # fmt: skip
    try:
        done = subprocess.run(
            _pinned(argv, spec.cpus), check=False, capture_output=True, text=True, timeout=spec.duration_s + 60
        )
    except subprocess.TimeoutExpired as exc:
        raise LoadError("wsload did not finish in time") from exc
    try:
        out = json.loads(done.stdout)
    except ValueError:
        raise LoadError(f"wsload failed ({done.returncode}): {(done.stderr or done.stdout).strip()[:200]}") from None
    if "error" in out:
        raise LoadError(f"wsload: {out['error']}")
    return LoadResult(
        requests=out["messages"],
        seconds=out["seconds"],
        requests_per_s=out["messages_per_s"],
        latency_p50_ms=out["p50_ms"],
        latency_p99_ms=out["p99_ms"],
        non_2xx=0,
        socket_errors=out["errors"],
        load_cpu_fraction=out["client_cpu_fraction"],
    )


TOOLS: dict[str, Callable[[LoadSpec], LoadResult]] = {"wrk": run_wrk, "h2load": run_h2load, "wsload": run_wsload}
