"""Load generators, behind one interface: ``TOOLS[name](LoadSpec) -> LoadResult``.

Only wrk now; an h2load runner (HTTP/2) and a WebSocket client slot in as more entries of ``TOOLS``.
"""

from __future__ import annotations

import re
import subprocess
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
        if spec.cpus is not None:
            argv = ["taskset", "-c", spec.cpus, *argv]
        try:
            done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=spec.duration_s + 30)
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


TOOLS: dict[str, Callable[[LoadSpec], LoadResult]] = {"wrk": run_wrk}
