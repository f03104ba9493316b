"""The servers under test: how to install each one and how to start it.

``FT_SERVERS`` run on the free-threaded interpreter; ``GIL_SERVERS`` (``run.py --gil``) are the
peers' fastest setups on a GIL build. ftserve on 3.13t (named ``REFERENCE``) is what every
ratio is taken against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from envs import REPO

REFERENCE = "ftserve"
BASELINE = "ftserve-base"
ALL_PROTOCOLS = frozenset({"http/1.1", "h2", "websocket"})

#: The frameworks of the framework scenarios (``bench/frameworks/``), installed into every peer's venv
#: at the versions the project's own test venvs hold (ftserve runs from those). pydantic-core has
#: cp313t wheels up to 2.41.x only; ``--only-binary`` keeps pip from trying a Rust source build.
APP_REQUIREMENTS = (
    "starlette==1.10.0",
    "fastapi==0.165.0",
    "pydantic==2.12.3",
    "--only-binary=pydantic-core",
    "flask==3.1.3",
    "django==6.1.3",
)


@dataclass(frozen=True)
class Launch:
    """What one server start serves, and where."""

    app: str  # module:attr
    interface: str
    host: str
    port: int
    workers: int  # threads for ftserve, processes (or Granian's workers) for the peers
    access_log: bool = False  # log every request (and run at log level info so it shows)
    tls: tuple[str, str] | None = None  # (certificate, key) PEM files: serve HTTPS
    protocol: str = "http/1.1"  # the scenario's: "http/1.1", "h2" or "websocket"
    metrics_port: int = 0  # a free port for a metrics listener (ftserve-metrics)


def _tls(launch: Launch, cert_option: str, key_option: str) -> list[str]:
    """The server's certificate and key options, when the run is over TLS."""
    if launch.tls is None:
        return []
    return [cert_option, launch.tls[0], key_option, launch.tls[1]]


@dataclass(frozen=True)
class ServerSpec:
    """A server under test."""

    name: str
    python: str  # "ft", "ft-pgo" or "gil" (envs.KINDS): the interpreter its venv is built on
    requirements: tuple[str, ...]  # pip arguments for bench/.venvs/<name>
    executable: str  # console script in the venv's bin/
    arguments: Callable[[Launch], list[str]]
    interfaces: frozenset[str]
    distribution: str  # whose version is reported
    modules: tuple[str, ...]  # imported to check that the GIL stays off on 3.13t
    unit: str  # what --threads/--workers N counts: "thread" or "worker"
    project_venv: Path | None = None  # used instead of bench/.venvs/<name> when it has `executable`
    import_first: Path | None = None  # put before the repository on PYTHONPATH (ftserve-base: the old ftserver)
    tls: bool = True  # serves HTTPS (Launch.tls)
    protocols: frozenset[str] = frozenset({"http/1.1"})  # of "http/1.1", "h2", "websocket"
    scenarios: frozenset[str] | None = None  # None: every scenario of its interfaces and protocols
    venv: str | None = None  # share bench/.venvs/<venv> (default: its own, bench/.venvs/<name>)


def _logging(launch: Launch, on: list[str], off: list[str]) -> list[str]:
    """Log level and access-log arguments: info with the access log on, else warning."""
    return ["--log-level", "info", *on] if launch.access_log else ["--log-level", "warning", *off]


def _ftserve(launch: Launch) -> list[str]:
    return [
        "--host", launch.host, "--port", str(launch.port), "--threads", str(launch.workers),
        "--interface", launch.interface, *_logging(launch, ["--access-log"], ["--no-access-log"]),
        *_tls(launch, "--ssl-certfile", "--ssl-keyfile"), launch.app,
    ]  # fmt: skip


def _ftserve_h11(launch: Launch) -> list[str]:
    return [*_ftserve(launch)[:-1], "--http1", "h11", launch.app]


def _ftserve_metrics(launch: Launch) -> list[str]:
    return [*_ftserve(launch)[:-1], "--metrics", "--metrics-port", str(launch.metrics_port), launch.app]


def _floor(canned: bool) -> Callable[[Launch], list[str]]:
    def arguments(launch: Launch) -> list[str]:
        return [
            str(REPO / "bench" / "floor.py"), "--host", launch.host, "--port", str(launch.port),
            "--threads", str(launch.workers), *(["--canned"] if canned else []), launch.app,
        ]  # fmt: skip

    return arguments


def _uvicorn_h11(ws: str) -> Callable[[Launch], list[str]]:
    def arguments(launch: Launch) -> list[str]:
        return [
            "--host", launch.host, "--port", str(launch.port), "--workers", str(launch.workers),
            "--http", "h11", "--loop", "asyncio", "--ws", ws,
            *_logging(launch, ["--access-log"], ["--no-access-log"]),
            *_tls(launch, "--ssl-certfile", "--ssl-keyfile"), launch.app,
        ]  # fmt: skip

    return arguments


def _uvicorn_fast(launch: Launch) -> list[str]:
    return [
        "--host", launch.host, "--port", str(launch.port), "--workers", str(launch.workers),
        "--http", "httptools", "--loop", "uvloop", *_logging(launch, ["--access-log"], ["--no-access-log"]),
        *_tls(launch, "--ssl-certfile", "--ssl-keyfile"), launch.app,
    ]  # fmt: skip


def _granian(loop: str) -> Callable[[Launch], list[str]]:
    def arguments(launch: Launch) -> list[str]:
        return [
            "--interface", launch.interface, "--host", launch.host, "--port", str(launch.port),
            "--workers", str(launch.workers), "--loop", loop, *(["--http", "2"] if launch.protocol == "h2" else []),
            *_logging(launch, ["--access-log"], ["--no-access-log"]),
            *_tls(launch, "--ssl-certificate", "--ssl-keyfile"), launch.app,
        ]  # fmt: skip

    return arguments


def _hypercorn(launch: Launch) -> list[str]:
    return [
        "--bind",
        f"{launch.host}:{launch.port}",
        "--workers",
        str(launch.workers),
        *_logging(launch, ["--access-logfile", "-"], []),
        *_tls(launch, "--certfile", "--keyfile"),
        launch.app,
    ]


def _gunicorn_gthread(launch: Launch) -> list[str]:
    return [
        "--bind", f"{launch.host}:{launch.port}", "--workers", str(launch.workers),
        "--worker-class", "gthread", "--threads", "4", *_logging(launch, ["--access-logfile", "-"], []),
        *_tls(launch, "--certfile", "--keyfile"), launch.app,
    ]  # fmt: skip


def _stick(
    name: str, arguments: Callable[[Launch], list[str]], scenarios: frozenset[str] | None = None,
    protocols: frozenset[str] = frozenset({"http/1.1"}),
) -> ServerSpec:
    """A measuring stick of ours (``bench/floor.py``, ``bench/wsfloor.py``) as a server under test."""
    return ServerSpec(
        name=name,
        python="ft",
        requirements=(),
        executable="python",
        arguments=arguments,
        interfaces=frozenset({"asgi"}),
        distribution="ftserver",
        modules=(),
        unit="thread",
        project_venv=REPO / ".venv" / "ft",
        tls=False,
        scenarios=scenarios,
        protocols=protocols,
    )


FT_SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(
        name=REFERENCE,
        python="ft",
        requirements=("-e", str(REPO), *APP_REQUIREMENTS),  # the frameworks: without a project venv
        executable="ftserve",
        arguments=_ftserve,
        interfaces=frozenset({"asgi", "wsgi", "rsgi"}),
        distribution="ftserver",
        modules=("ftserver.cli",),
        unit="thread",
        project_venv=REPO / ".venv" / "ft",
        protocols=ALL_PROTOCOLS,
    ),
    ServerSpec(
        name="uvicorn",
        python="ft",
        # pure Python: h11 and asyncio (httptools/uvloop have no cp313t wheels); websockets and wsproto for --ws
        requirements=("uvicorn", "websockets", "wsproto", *APP_REQUIREMENTS),
        executable="uvicorn",
        arguments=_uvicorn_h11("websockets-sansio"),
        interfaces=frozenset({"asgi"}),
        distribution="uvicorn",
        modules=("uvicorn.main", "h11", "uvicorn.protocols.websockets.websockets_sansio_impl"),
        unit="worker",
        protocols=frozenset({"http/1.1", "websocket"}),
    ),
    ServerSpec(
        name="uvicorn-wsproto",  # Uvicorn's other WebSocket implementation; WebSocket scenarios only
        python="ft",
        requirements=("uvicorn", "websockets", "wsproto", *APP_REQUIREMENTS),
        executable="uvicorn",
        arguments=_uvicorn_h11("wsproto"),
        interfaces=frozenset({"asgi"}),
        distribution="uvicorn",
        modules=("uvicorn.main", "h11", "uvicorn.protocols.websockets.wsproto_impl"),
        unit="worker",
        protocols=frozenset({"websocket"}),
        venv="uvicorn",
    ),
    ServerSpec(
        name="granian",
        python="ft",
        # 2.7.9 is the last release with cp313t wheels. It aborts on SIGINT on 3.13t: procs stops with SIGTERM.
        requirements=("granian==2.7.9", *APP_REQUIREMENTS),
        executable="granian",
        arguments=_granian("asyncio"),
        interfaces=frozenset({"asgi", "wsgi", "rsgi"}),
        distribution="granian",
        modules=("granian._granian",),
        unit="worker",
        protocols=ALL_PROTOCOLS,
    ),
    ServerSpec(
        name="hypercorn",
        python="ft",
        requirements=("hypercorn", *APP_REQUIREMENTS),
        executable="hypercorn",
        arguments=_hypercorn,
        interfaces=frozenset({"asgi", "wsgi"}),
        distribution="hypercorn",
        modules=("hypercorn.asyncio",),
        unit="worker",
        protocols=ALL_PROTOCOLS,
    ),
    ServerSpec(
        name="ftserve-metrics",  # ftserve with --metrics: its overhead on hello
        python="ft",
        requirements=("-e", str(REPO), *APP_REQUIREMENTS),  # the frameworks: without a project venv
        executable="ftserve",
        arguments=_ftserve_metrics,
        interfaces=frozenset({"asgi"}),
        distribution="ftserver",
        modules=("ftserver.cli",),
        unit="thread",
        project_venv=REPO / ".venv" / "ft",
        scenarios=frozenset({"hello"}),
        venv="ftserve",
    ),
    # Not a server: the least Python a request can cost (bench/floor.py), the measure of
    # ftserve's own cost per request on hello and the ASGI frameworks.
    _stick("floor", _floor(False), frozenset({"hello", "starlette", "fastapi"})),
)

GIL_SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(
        name="ftserve-gil",
        python="gil",
        requirements=("-e", str(REPO), *APP_REQUIREMENTS),  # the frameworks: without a project venv
        executable="ftserve",
        arguments=_ftserve,
        interfaces=frozenset({"asgi", "wsgi", "rsgi"}),
        distribution="ftserver",
        modules=("ftserver.cli",),
        unit="thread",
        project_venv=REPO / ".venv" / "gil",
        protocols=ALL_PROTOCOLS,
    ),
    ServerSpec(
        name="uvicorn-gil",
        python="gil",
        requirements=("uvicorn", "httptools", "uvloop", "websockets", *APP_REQUIREMENTS),
        executable="uvicorn",
        arguments=_uvicorn_fast,
        interfaces=frozenset({"asgi"}),
        distribution="uvicorn",
        modules=("uvicorn.main", "httptools", "uvloop"),
        unit="worker",
        protocols=frozenset({"http/1.1", "websocket"}),
    ),
    ServerSpec(
        name="granian-gil",
        python="gil",
        requirements=("granian[uvloop]", *APP_REQUIREMENTS),
        executable="granian",
        arguments=_granian("uvloop"),
        interfaces=frozenset({"asgi", "wsgi", "rsgi"}),
        distribution="granian",
        modules=("granian._granian",),
        unit="worker",
        protocols=ALL_PROTOCOLS,
    ),
    ServerSpec(
        name="gunicorn-gthread",
        python="gil",
        requirements=("gunicorn", *APP_REQUIREMENTS),
        executable="gunicorn",
        arguments=_gunicorn_gthread,
        interfaces=frozenset({"wsgi"}),
        distribution="gunicorn",
        modules=("gunicorn.workers.gthread",),
        unit="worker",
    ),
)


#: Run only when named with --servers.
EXTRA_SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(
        name="ftserve-h11",  # the strict mode: h11 parses requests (compare with uvicorn, also h11)
        python="ft",
        requirements=("-e", str(REPO), *APP_REQUIREMENTS),  # the frameworks: without a project venv
        executable="ftserve",
        arguments=_ftserve_h11,
        interfaces=frozenset({"asgi"}),
        distribution="ftserver",
        modules=("ftserver.cli", "h11"),
        unit="thread",
        project_venv=REPO / ".venv" / "ft",
        venv="ftserve",
    ),
    _stick("floor-canned", _floor(True)),  # the floor's loop and system calls alone (floor.py --canned)
    _stick(
        "floor-ws",  # not a server: a WebSocket echo with no app and no checks (bench/wsfloor.py)
        lambda launch: [
            str(REPO / "bench" / "wsfloor.py"), "--host", launch.host, "--port", str(launch.port),
            "--threads", str(launch.workers), launch.app,
        ],  # fmt: skip
        protocols=frozenset({"websocket"}),
    ),
)


def on_pgo(spec: ServerSpec) -> ServerSpec:
    """``spec`` on the PGO+LTO 3.13t (``run.py --pgo``): its own venv there, ftserve included
    (``-e`` this repository), so no project venv."""
    if spec.python != "ft":
        return spec
    requirements = ("-e", str(REPO), *APP_REQUIREMENTS) if spec.project_venv is not None else spec.requirements
    return replace(spec, python="ft-pgo", project_venv=None, requirements=requirements)


def baseline(import_folder: Path) -> ServerSpec:
    """``ftserve-base``: ftserve, same venv and arguments, importing ftserver from ``import_folder``."""
    ftserve = next(s for s in FT_SERVERS if s.name == REFERENCE)
    return replace(ftserve, name=BASELINE, import_first=import_folder)


def select(names: list[str] | None, gil: bool, base: ServerSpec | None = None) -> list[ServerSpec]:
    """The servers to run: the 3.13t set (plus the GIL set with ``gil``, and ``base``), or the named ones."""
    pool = FT_SERVERS + GIL_SERVERS + EXTRA_SERVERS + ((base,) if base else ())
    if not names:
        return list(FT_SERVERS + (GIL_SERVERS if gil else ()) + ((base,) if base else ()))
    known = {s.name for s in pool}
    unknown = sorted(set(names) - known)
    if unknown:
        hint = f" ({BASELINE} needs --baseline REV)" if BASELINE in unknown else ""
        raise ValueError(f"unknown server(s) {', '.join(unknown)}{hint}; known: {', '.join(sorted(known))}")
    return [s for s in pool if s.name in names or s is base]  # (--baseline asks for it)
