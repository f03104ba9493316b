"""Benchmark records, their summary (medians, same-run ratios) and the Markdown/JSON output."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from servers import BASELINE, REFERENCE


@dataclass(frozen=True)
class ServerInfo:
    """A server's set-up outcome: available (``reason`` None) or why not."""

    name: str
    unit: str
    reason: str | None = None
    version: str | None = None
    python: str | None = None  # the venv interpreter's -VV
    gil_after_import: bool | None = None  # None: GIL build (or not checked)
    venv: str | None = None


@dataclass(frozen=True)
class RunRecord:
    """One load run against one server start (``error`` set: nothing measured)."""

    scenario: str
    server: str
    workers: int
    rep: int
    server_cpus: str | None
    load_cpus: str | None
    requests_per_s: float | None = None
    requests: int | None = None
    cpu_us_per_request: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    non_2xx: int = 0
    socket_errors: int = 0
    error: str | None = None
    load_cpu_fraction: float | None = None  # wsload: its CPU seconds per second of the run


@dataclass(frozen=True)
class MemoryRecord:
    """Memory of one server started with ``workers`` threads/workers, after a few requests."""

    server: str
    workers: int
    rss_mb: float | None = None
    pss_mb: float | None = None
    processes: int | None = None
    threads: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class SummaryRow:
    """Medians over the repetitions of one (scenario, server, workers)."""

    scenario: str
    server: str
    workers: int
    unit: str
    runs_ok: int
    requests_per_s: float | None
    requests_per_s_min: float | None
    requests_per_s_max: float | None
    cpu_us_per_request: float | None
    latency_p99_ms: float | None
    errors: int  # non-2xx responses + socket errors, all repetitions
    ratio_requests_per_s: float | None  # ftserve/peer, per repetition, then the median
    ratio_cpu: float | None  # ftserve/peer CPU per request, same method
    reason: str | None = None  # why there is no figure


@dataclass
class Report:
    """Everything one ``run.py`` invocation produced."""

    generated: str
    machine: dict[str, object]
    settings: dict[str, object]
    servers: list[ServerInfo]
    runs: list[RunRecord] = field(default_factory=list)
    memory: list[MemoryRecord] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _ratios(mine: list[RunRecord], theirs: list[RunRecord], metric: str) -> float | None:
    """Median over repetitions of reference/peer, pairing runs of the same repetition."""
    by_rep = {r.rep: getattr(r, metric) for r in theirs}
    pairs = [getattr(r, metric) / by_rep[r.rep] for r in mine if getattr(r, metric) is not None and by_rep.get(r.rep)]
    return statistics.median(pairs) if pairs else None


def summarize(runs: list[RunRecord], servers: list[ServerInfo]) -> list[SummaryRow]:
    """One row per (scenario, server, workers) that was planned, in run order."""
    units = {s.name: s.unit for s in servers}
    unavailable = {s.name: s.reason for s in servers if s.reason}
    groups: dict[tuple[str, str, int], list[RunRecord]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.server, run.workers), []).append(run)
    rows = []
    for (scenario, server, workers), group in groups.items():
        ok = [r for r in group if r.error is None]
        reference = [r for r in groups.get((scenario, REFERENCE, workers), []) if r.error is None]
        is_peer = server != REFERENCE and bool(reference)
        rates = [r.requests_per_s for r in ok if r.requests_per_s is not None]
        reason = unavailable.get(server) or (group[-1].error if not ok else None)
        rows.append(
            SummaryRow(
                scenario=scenario,
                server=server,
                workers=workers,
                unit=units.get(server, "worker"),
                runs_ok=len(ok),
                requests_per_s=_median(rates),
                requests_per_s_min=min(rates, default=None),
                requests_per_s_max=max(rates, default=None),
                cpu_us_per_request=_median(r.cpu_us_per_request for r in ok),
                latency_p99_ms=_median(r.latency_p99_ms for r in ok),
                errors=sum(r.non_2xx + r.socket_errors for r in ok),
                ratio_requests_per_s=_ratios(reference, ok, "requests_per_s") if is_peer else None,
                ratio_cpu=_ratios(reference, ok, "cpu_us_per_request") if is_peer else None,
                reason=reason,
            )
        )
    return rows


def _cell(text: str | None, limit: int = 160) -> str:
    """One line of text that cannot break a Markdown table."""
    flat = " ".join((text or "").split()).replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _count(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"


METRICS_SERVER = "ftserve-metrics"


def _metrics_overhead(summary: list[SummaryRow]) -> list[str]:
    """What ``--metrics`` costs: ftserve-metrics against ftserve, same run."""
    rows = [r for r in summary if r.server == METRICS_SERVER and r.ratio_requests_per_s and r.ratio_cpu]
    if not rows:
        return []
    lines = [
        "",
        "## Metrics overhead",
        "",
        f"{METRICS_SERVER} is ftserve with `--metrics` (Prometheus listener on its own port); change against "
        + "ftserve, from the same-run ratios above.",
        "",
        "| scenario | threads | req/s | CPU µs/req |",
        "|---|---|--:|--:|",
    ]
    for r in rows:
        assert r.ratio_requests_per_s and r.ratio_cpu
        lines.append(
            f"| {r.scenario} | {r.workers} | {1 / r.ratio_requests_per_s - 1:+.1%} | {1 / r.ratio_cpu - 1:+.1%} |"
        )
    return lines


def _load_cpu(runs: list[RunRecord]) -> list[str]:
    """How busy wsload was: evidence that the load generator was not the bottleneck."""
    busy: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        if run.load_cpu_fraction is not None:
            busy.setdefault((run.scenario, run.workers), []).append(run.load_cpu_fraction)
    if not busy:
        return []
    cells = ", ".join(f"{scenario} {workers}: {max(values):.0%}" for (scenario, workers), values in busy.items())
    return ["", f"wsload's own CPU use, busiest run (100 % = one CPU busy; scenario threads/workers): {cells}."]


def to_markdown(report: Report) -> str:
    """The human-readable report: throughput/CPU table, memory table, server versions."""
    m, s = report.machine, report.settings
    load = s.get("load") or f"{s['load_tool']} -t{s['load_threads']} -c{s['connections']}"
    lines = [
        f"# ftserver benchmark — {report.generated}",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, "
        + f"load average at start {m['loadavg_at_start']}",
        f"- Load: {load}, {s['duration_s']:g} s per run "
        + f"after a {s['warmup_s']:g} s warm-up, {s['reps']} repetition(s) interleaved across servers, "
        + "a fresh server start per run",
        f"- CPU pinning: {s['pinning']}",
        *([f"- {BASELINE}: ftserve of git revision {s['baseline']}, same interpreter and arguments"]
          if s.get("baseline") else []),
        "- Figures are medians over repetitions. Ratios are ftserve/peer within each repetition (same run, "
        + "minutes apart at most), then the median: a req/s ratio > 1 means ftserve is faster, a CPU ratio < 1 "
        + "means ftserve spends less server CPU per request.",
        "- CPU µs/req: user+system time of the whole server process tree (all threads) during the run / responses.",
        *(["- WebSocket rows (`ws_*`): req/s are echoes per second (each client sends its next message when the "
           + "echo of the last one is back), CPU µs per echoed message, p99 of the echo's round trip."]
          if any(r.scenario.startswith("ws_") for r in report.summary) else []),
        "",
        "## Throughput and server CPU per request",
        "",
        "| scenario | server | threads/workers | req/s | min–max | ftserve/peer req/s | CPU µs/req "
        + "| ftserve/peer CPU | p99 ms | errors |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in report.summary:
        who = f"{row.scenario} | {row.server} | {_count(row.workers, row.unit)}"
        if row.requests_per_s is None:
            lines.append(f"| {who} | n/a ({_cell(row.reason)}) | | | | | | |")
            continue
        lines.append(
            f"| {who} | {_num(row.requests_per_s)} | {_num(row.requests_per_s_min)}–{_num(row.requests_per_s_max)} "
            f"| {_num(row.ratio_requests_per_s, 2)} | {_num(row.cpu_us_per_request)} | {_num(row.ratio_cpu, 2)} "
            f"| {_num(row.latency_p99_ms, 1)} | {row.errors} |"
        )
    lines += _metrics_overhead(report.summary) + _load_cpu(report.runs)
    if report.memory:
        workers = report.memory[0].workers
        lines += [
            "",
            f"## Memory with {workers} threads/workers (after a few requests)",
            "",
            "RSS sums every process of the server (pages shared between processes count once per process); "
            + "PSS splits shared pages between their sharers.",
            "",
            "| server | RSS MB | PSS MB | processes | threads |",
            "|---|--:|--:|--:|--:|",
        ]
        for mem in report.memory:
            if mem.error:
                lines.append(f"| {mem.server} | n/a ({_cell(mem.error)}) | | | |")
            else:
                lines.append(
                    f"| {mem.server} | {_num(mem.rss_mb)} | {_num(mem.pss_mb)} | {mem.processes} | {mem.threads} |"
                )
    lines += [
        "",
        "## Servers",
        "",
        "| server | version | interpreter | GIL after import | status |",
        "|---|---|---|---|---|",
    ]
    for info in report.servers:
        gil = {None: "–", True: "**on**", False: "off"}[info.gil_after_import]
        status = f"n/a ({_cell(info.reason)})" if info.reason else "ok"
        lines.append(f"| {info.name} | {info.version or '–'} | {info.python or '–'} | {gil} | {status} |")
    lines += ["", f"Load generator: {m['wrk']}. Orchestrator: {m['orchestrator_python']}."]
    return "\n".join(lines) + "\n"
