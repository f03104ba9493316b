"""Benchmark ftserve against Uvicorn, Granian and Hypercorn: ``python bench/run.py [--quick]``.

Every server gets its own venv (``bench/.venvs/``) on the free-threaded interpreter. Each scenario
runs against every server at each thread/worker count, interleaved, repeated ``--reps`` times,
with a fresh server start per run. Per run we record wrk's req/s and latency and the server's
CPU time per request (whole process group, from /proc). A separate phase starts each server with
8 threads/workers and sums its memory. Results: ``bench/results/latest.{md,json,png}``.

Runs with any Python >= 3.11 (stdlib only); matplotlib for the chart lives in ``bench/.venvs/chart``.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import checks
import envs
import loadgen
import procs
import report
import scenarios
import servers
from envs import BENCH, REPO, Env, SetupError
from report import MemoryRecord, Report, RunRecord, ServerInfo
from scenarios import Scenario
from servers import Launch, ServerSpec

HOST = "127.0.0.1"
READY_TIMEOUT_S = 30.0
MEMORY_READY_TIMEOUT_S = 90.0
MEMORY_REQUESTS = 16
LOGS = BENCH / ".logs"
METRICS_READY_TIMEOUT_S = 5.0
CHART_REQUIREMENTS = ("matplotlib",)


@dataclass(frozen=True)
class Settings:
    """What one invocation measures; fixed once the arguments are parsed."""

    scenarios: tuple[Scenario, ...]
    servers: tuple[ServerSpec, ...]
    workers: tuple[int, ...]
    reps: int
    duration_s: int  # wrk takes whole seconds only
    warmup_s: int
    connections: int
    memory_workers: int  # 0: skip the memory phase
    out: Path
    chart: bool
    baseline: str | None  # --baseline: "REV (short sha)"


@dataclass(frozen=True)
class Ready:
    """A server whose venv is built and whose command answers ``--help``."""

    spec: ServerSpec
    env: Env


def parse_args(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: hello only, 1 rep, 3 s (~1 minute)")
    parser.add_argument("--gil", action="store_true", help="also run the peers' best setups on a GIL build")
    parser.add_argument(
        "--pgo",
        action="store_true",
        help="run the 3.13t servers on a 3.13t built with PGO and LTO (as uv ships it; built once into the cache by "
        "ci/ft-python.sh if uv has none: about an hour on 2 vCPUs), each in its own bench/.venvs/<name>-pgo",
    )
    parser.add_argument("--scenarios", help="comma-separated names, or 'all' (default: the default set)")
    parser.add_argument("--servers", help="comma-separated names (default: all 3.13t servers)")
    parser.add_argument("--threads", default="1,2", help="thread/worker counts, e.g. 1,2,4 (default 1,2)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--duration", type=int, default=2, help="whole seconds per measured run (default 2)")
    parser.add_argument("--warmup", type=int, default=1, help="whole seconds of warm-up per run (default 1)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument("--memory-workers", type=int, default=8, help="threads/workers for RSS (0: skip)")
    parser.add_argument("--out", type=Path, default=BENCH / "results", help="output folder")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    parser.add_argument(
        "--baseline", metavar="REV", help=f"add {servers.BASELINE}: ftserve of git revision REV (bench/.base/)"
    )
    args = parser.parse_args(argv)

    def names(value: str | None) -> list[str] | None:
        return [n.strip() for n in value.split(",") if n.strip()] if value else None

    base, baseline = None, None
    if args.baseline:
        try:
            short, folder = envs.baseline_tree(args.baseline)
        except SetupError as exc:
            parser.error(str(exc))
        base, baseline = servers.baseline(folder), f"{args.baseline} ({short})"
    try:
        chosen_scenarios = scenarios.select(["hello"] if args.quick and not args.scenarios else names(args.scenarios))
        chosen_servers = servers.select(names(args.servers), args.gil, base)
        if args.pgo:
            chosen_servers = [servers.on_pgo(s) for s in chosen_servers]
    except ValueError as exc:
        parser.error(str(exc))
    return Settings(
        scenarios=tuple(chosen_scenarios),
        servers=tuple(chosen_servers),
        workers=tuple(int(n) for n in args.threads.split(",")),
        reps=1 if args.quick else args.reps,
        duration_s=3 if args.quick else args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        memory_workers=args.memory_workers,
        out=args.out,
        chart=not args.no_chart,
        baseline=baseline,
    )


def prepare(spec: ServerSpec) -> tuple[Ready | None, ServerInfo]:
    """Build (or reuse) the server's venv and check that its command starts at all."""
    try:
        if spec.project_venv is not None and (spec.project_venv / "bin" / spec.executable).exists():
            env = Env(spec.project_venv)
        else:
            env = envs.ensure_venv(spec.venv or spec.name, spec.python, spec.requirements)
    except SetupError as exc:
        return None, ServerInfo(spec.name, spec.unit, reason=str(exc))
    info = ServerInfo(
        spec.name,
        spec.unit,
        version=envs.distribution_version(env, spec.distribution),
        python=envs.describe(env.python),
        gil_after_import=envs.gil_enabled_after_import(env, spec.modules),
        venv=str(env.path),
    )
    try:
        done = subprocess.run(
            [str(env.bin(spec.executable)), "--help"], check=False, capture_output=True, text=True, timeout=60, cwd=REPO
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, replace(info, reason=f"{spec.executable} --help: {exc}")
    if done.returncode != 0:
        return None, replace(info, reason=f"{spec.executable} --help: {envs.last_line(done.stderr)}")
    if spec.import_first is not None:  # the server must import the package from there, not the editable install
        code = "import ftserver; print(ftserver.__file__)"
        done = subprocess.run(  # -P: no cwd first on sys.path, as for the console script
            [str(env.python), "-P", "-c", code], check=False, capture_output=True, text=True, timeout=60,
            cwd=REPO, env=environment(spec),
        )  # fmt: skip
        if not done.stdout.startswith(str(spec.import_first)):
            return None, replace(info, reason=f"imports ftserver from {done.stdout.strip() or done.stderr.strip()}")
    return Ready(spec, env), info


def environment(spec: ServerSpec) -> dict[str, str]:
    """The server's environment: this repository (for the apps) on PYTHONPATH, after ``import_first``."""
    path = [str(p) for p in (spec.import_first, REPO) if p is not None]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}


def pinning(workers: int) -> tuple[str | None, str | None]:
    """(server CPUs, load generator CPUs): separate CPUs when the server leaves one free, else unpinned."""
    cpus = sorted(os.sched_getaffinity(0))
    if workers >= len(cpus):
        return None, None
    return ",".join(map(str, cpus[:workers])), ",".join(map(str, cpus[workers:]))


def describe_pinning(workers: tuple[int, ...]) -> str:
    parts = []
    for n in workers:
        server_cpus, load_cpus = pinning(n)
        if server_cpus is None:
            parts.append(f"{n} threads/workers: unpinned (no CPU left for the load generator)")
        else:
            parts.append(f"{n} threads/workers: server on CPU {server_cpus}, load generator on CPU {load_cpus}")
    return "; ".join(parts)


def describe_load(settings: Settings) -> str:
    """The load generators of the run's scenarios and their settings, for the report."""
    tools = {s.tool: s for s in settings.scenarios}
    parts = []
    if "wrk" in tools:
        parts.append(f"wrk -t1 -c{settings.connections} (HTTP/1.1)")
    if "h2load" in tools:
        h2 = tools["h2load"]
        parts.append(f"h2load -t1 -c{h2.connections or settings.connections} -m{h2.streams} (HTTP/2)")
    if "wsload" in tools:
        ws = tools["wsload"]
        parts.append(f"bench/wsload.py -c{ws.connections or settings.connections}, 1 process (WebSocket echo)")
    return "; ".join(parts)


def start(
    ready: Ready, scenario: Scenario, workers: int, cpus: str | None, log_name: str
) -> tuple[procs.ServerProcess, Launch]:
    """Start a server for ``scenario`` on a fresh port (pinned to ``cpus`` via taskset when given)."""
    launch = Launch(
        scenario.app, scenario.interface, HOST, procs.free_port(HOST), workers, scenario.access_log,
        checks.tls_files(HOST) if scenario.tls else None, scenario.protocol, procs.free_port(HOST),
    )  # fmt: skip
    argv = [str(ready.env.bin(ready.spec.executable)), *ready.spec.arguments(launch)]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    return procs.ServerProcess(argv, cwd=REPO, env=environment(ready.spec), log_path=LOGS / f"{log_name}.log"), launch


def wait_metrics(launch: Launch) -> str | None:
    """ftserve-metrics: wait for its metrics listener (it may open just after the app's port)."""
    deadline = time.monotonic() + METRICS_READY_TIMEOUT_S
    while (wrong := checks.check_metrics(HOST, launch.metrics_port)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return wrong


def measure(ready: Ready, scenario: Scenario, workers: int, rep: int, settings: Settings) -> RunRecord:
    """One server start, warm-up and measured load run."""
    server_cpus, load_cpus = pinning(workers)
    record = RunRecord(scenario.name, ready.spec.name, workers, rep, server_cpus, load_cpus)
    run_load = loadgen.TOOLS[scenario.tool]
    server, launch = start(ready, scenario, workers, server_cpus, f"{ready.spec.name}-{scenario.name}-{workers}")
    port = launch.port
    probe = (lambda: checks.h2_probe(HOST, port, scenario)) if scenario.protocol == "h2" else None
    with server:
        try:
            server.wait_ready(HOST, port, READY_TIMEOUT_S, tls=scenario.tls, probe=probe)
        except procs.NotReady as exc:
            return replace(record, error=f"did not start: {exc}")
        wrong = checks.check(HOST, port, scenario)
        if not wrong and "--metrics" in server.argv:
            wrong = wait_metrics(launch)
        if wrong:
            return replace(record, error=wrong)
        server.wait_quiet()

        def load(duration_s: int) -> loadgen.LoadResult:
            scheme = "ws" if scenario.protocol == "websocket" else "https" if scenario.tls else "http"
            return run_load(
                loadgen.LoadSpec(
                    url=f"{scheme}://{HOST}:{port}{scenario.path}",
                    duration_s=duration_s,
                    connections=scenario.connections or settings.connections,
                    threads=1,
                    method=scenario.method,
                    request_bytes=scenario.request_bytes,
                    cpus=load_cpus,
                    streams=scenario.streams,
                    message_bytes=scenario.message_bytes,
                )
            )

        try:
            if settings.warmup_s > 0:
                load(settings.warmup_s)
            cpu_before = procs.group_cpu_seconds(server.pgid)
            result = load(settings.duration_s)
            cpu_after = procs.group_cpu_seconds(server.pgid)
        except loadgen.LoadError as exc:
            return replace(record, error=str(exc))
        if not server.alive():
            return replace(record, error=f"server exited during the run: {server.log_tail()}")
    return replace(
        record,
        requests_per_s=result.requests_per_s,
        requests=result.requests,
        cpu_us_per_request=(cpu_after - cpu_before) / result.requests * 1e6 if result.requests else None,
        latency_p50_ms=result.latency_p50_ms,
        latency_p99_ms=result.latency_p99_ms,
        non_2xx=result.non_2xx,
        socket_errors=result.socket_errors,
        load_cpu_fraction=result.load_cpu_fraction,
    )


def benchmark(ready: dict[str, Ready], infos: list[ServerInfo], settings: Settings) -> list[RunRecord]:
    """All load runs: for each repetition, scenario and count, every server in turn.

    The server order flips on alternate repetitions so that no server always runs first.
    """
    runs: list[RunRecord] = []
    failed: dict[tuple[str, str, int], str] = {}  # a configuration that failed once is not retried
    plan = [
        (rep, scenario, workers, spec)
        for rep in range(1, settings.reps + 1)
        for scenario in settings.scenarios
        for workers in settings.workers
        for spec in (settings.servers if rep % 2 else settings.servers[::-1])
        if scenario.applies_to(spec)
    ]
    reasons = {i.name: i.reason for i in infos if i.reason}
    todo = [p for p in plan if p[3].name in ready]
    per_run = settings.duration_s + settings.warmup_s + 1.3  # + start, checks and stop
    print(f"\n{len(todo)} runs, about {len(todo) * per_run / 60:.0f} min", flush=True)
    for rep, scenario, workers, spec in plan:
        key = (scenario.name, spec.name, workers)
        if spec.name in reasons:
            if rep == 1:
                runs.append(RunRecord(scenario.name, spec.name, workers, rep, None, None, error=reasons[spec.name]))
            continue
        if key in failed:
            runs.append(RunRecord(scenario.name, spec.name, workers, rep, None, None, error=failed[key]))
            continue
        run = measure(ready[spec.name], scenario, workers, rep, settings)
        if run.error:
            failed[key] = run.error
        runs.append(run)
        done = sum(1 for r in runs if r.server in ready)
        figure = (
            " ".join(run.error.split())[:160]
            if run.error
            else (f"{run.requests_per_s:9,.0f} req/s {_fmt(run.cpu_us_per_request)} µs CPU/req")
        )
        print(
            f"[{done:3}/{len(todo)}] rep {rep} {scenario.name:10} {spec.name:16} "
            f"{workers} {spec.unit}{'s' if workers > 1 else ' '}  {figure}",
            flush=True,
        )
    return runs


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:6,.0f}"


def measure_memory(ready: Ready, workers: int) -> MemoryRecord:
    """Start with ``workers`` threads/workers, send a few requests, sum the group's memory."""
    spec = ready.spec
    name = "hello" if "asgi" in spec.interfaces else "wsgi_hello"
    scenario = next(s for s in scenarios.SCENARIOS if s.name == name)
    server, launch = start(ready, scenario, workers, None, f"{spec.name}-memory-{workers}")
    port = launch.port
    with server:
        try:
            server.wait_ready(HOST, port, MEMORY_READY_TIMEOUT_S)
            for _ in range(MEMORY_REQUESTS):
                conn = http.client.HTTPConnection(HOST, port, timeout=5)
                conn.request("GET", "/")
                conn.getresponse().read()
                conn.close()
        except (procs.NotReady, OSError, http.client.HTTPException) as exc:
            return MemoryRecord(spec.name, workers, error=str(exc))
        server.wait_quiet()
        memory = procs.group_memory(server.pgid)
    return MemoryRecord(spec.name, workers, memory.rss_mb, memory.pss_mb, memory.processes, memory.threads)


def machine_info(settings: Settings) -> dict[str, object]:
    """Facts that make the figures comparable (or not) with another run."""
    model = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        "unknown",
    )
    wrk = subprocess.run(["wrk", "-v"], check=False, capture_output=True, text=True, timeout=10)
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    )
    info: dict[str, object] = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "kernel": platform.release(),
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "wrk": (wrk.stdout or wrk.stderr).splitlines()[0].strip(),
        "orchestrator_python": sys.version.split()[0],
        "git_commit": git.stdout.strip() or None,
        "PYTHON_GIL": os.environ.get("PYTHON_GIL"),
    }
    for kind in ("ft", "gil", *(["ft-pgo"] if any(s.python == "ft-pgo" for s in settings.servers) else [])):
        try:
            info[f"python_{kind}"] = envs.describe(envs.interpreter(kind))
        except SetupError as exc:
            info[f"python_{kind}"] = f"n/a ({exc})"
    return info


def draw_chart(json_path: Path, png_path: Path) -> str:
    """Render the chart in the chart venv (matplotlib); returns what happened, for the log."""
    try:
        env = envs.ensure_venv("chart", "gil", CHART_REQUIREMENTS)
    except SetupError as exc:
        return f"chart skipped: {exc}"
    done = subprocess.run(
        [str(env.python), str(BENCH / "chart.py"), str(json_path), str(png_path)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return f"wrote {png_path}" if done.returncode == 0 else f"chart failed: {envs.last_line(done.stderr)}"


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    started = datetime.datetime.now(datetime.UTC)
    print("Machine:", flush=True)
    machine = machine_info(settings)
    for key, value in machine.items():
        print(f"  {key}: {value}")
    print("Servers:", flush=True)
    ready: dict[str, Ready] = {}
    infos: list[ServerInfo] = []
    for spec in settings.servers:
        prepared, info = prepare(spec)
        infos.append(info)
        if prepared is not None:
            ready[spec.name] = prepared
        print(f"  {spec.name}: {info.version or '?'} — {f'n/a ({info.reason})' if info.reason else 'ok'}", flush=True)
    print(f"CPU pinning: {describe_pinning(settings.workers)}", flush=True)

    result = Report(
        generated=started.strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine,
        settings={
            "scenarios": [s.name for s in settings.scenarios],
            "workers": list(settings.workers),
            "reps": settings.reps,
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
            "connections": settings.connections,
            "load_tool": "wrk",
            "load_threads": 1,
            "load": describe_load(settings),
            "memory_workers": settings.memory_workers,
            "pinning": describe_pinning(settings.workers),
            "baseline": settings.baseline,
        },
        servers=infos,
    )
    result.runs = benchmark(ready, infos, settings)
    if settings.memory_workers > 0:
        print(f"\nMemory with {settings.memory_workers} threads/workers:", flush=True)
        reasons = {i.name: i.reason for i in infos}
        for spec in settings.servers:
            if spec.scenarios is not None or "http/1.1" not in spec.protocols:
                continue  # variants for a few scenarios (ftserve-metrics, uvicorn-wsproto): same memory
            if spec.name in ready:
                record = measure_memory(ready[spec.name], settings.memory_workers)
            else:
                record = MemoryRecord(spec.name, settings.memory_workers, error=reasons[spec.name])
            result.memory.append(record)
            print(f"  {spec.name}: {record.error or f'{record.rss_mb:.0f} MB RSS, {record.pss_mb or 0:.0f} MB PSS'}")
    result.summary = report.summarize(result.runs, infos)

    settings.out.mkdir(parents=True, exist_ok=True)
    markdown = report.to_markdown(result)
    (settings.out / "latest.md").write_text(markdown)
    result.write_json(settings.out / "latest.json")
    print("\n" + markdown)
    print(f"wrote {settings.out / 'latest.md'} and {settings.out / 'latest.json'}")
    if settings.chart:
        print(draw_chart(settings.out / "latest.json", settings.out / "latest.png"))
    print(f"took {(datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
