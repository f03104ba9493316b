"""The server's configuration: one frozen dataclass, validated once at start-up."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import InitVar, dataclass, fields, replace
from typing import Any, Literal

from ftserver.accessformat import AccessFormat, AccessFormatError
from ftserver.envfile import EnvFileError, parse_env_file
from ftserver.net import parse_permissions, parse_trusted
from ftserver.protocols.default_headers import parse_header
from ftserver.protocols.http2.settings import H2Settings
from ftserver.protocols.limits import Limits
from ftserver.protocols.proxy_protocol import PROXY_PROTOCOL_MODES, ProxyProtocolMode

Interface = Literal["auto", "asgi", "asgi3", "asgi2", "wsgi", "rsgi"]
HTTP1Mode = Literal["fast", "h11"]
HTTPMode = Literal["auto", "1", "2"]
AcceptMode = Literal["queue", "reuseport"]
LifespanMode = Literal["auto", "on", "off"]
Mode = Literal["auto", "threads", "processes"]
WSMode = Literal["auto", "on", "wsproto", "none", "off"]
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
SSLProtocol = Literal["tls1.2", "tls1.3"]
SSLCertReqs = Literal["none", "optional", "required"]

INTERFACES = ("auto", "asgi", "asgi3", "asgi2", "wsgi", "rsgi")
HTTP1_MODES = ("fast", "h11")
HTTP_MODES = ("auto", "1", "2")
ACCEPT_MODES = ("queue", "reuseport")
LIFESPAN_MODES = ("auto", "on", "off")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
MODES = ("auto", "threads", "processes")
SSL_PROTOCOLS = ("tls1.2", "tls1.3")
SSL_CERT_REQS = ("none", "optional", "required")
#: ``--ws``: auto, on and wsproto serve WebSocket (with wsproto); none and off do not.
WS_MODES = ("auto", "on", "wsproto", "none", "off")

#: The largest ``wsgi_body_buffer``: what a connection reads ahead of the app (the driver's
#: read window, ``READ_HIGH_WATER`` in ``ftserver/threads/http1.py``).
MAX_WSGI_BODY_BUFFER = 256 * 1024

#: Options that only the supervisor acts on (``--no-supervisor`` runs without one).
SUPERVISOR_OPTIONS = ("workers_lifetime", "max_requests", "workers_max_rss", "preload")


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which and why."""


def default_threads() -> int:
    """The CPUs this process may use: its CPU affinity, lowered to a cgroup CPU quota
    (a container's ``--cpus``) rounded up."""
    return cpu_budget()[0]


def cpu_budget() -> tuple[int, str]:
    """``default_threads()``, and where the number comes from (for the banner)."""
    try:
        count, origin = len(os.sched_getaffinity(0)), "the CPU affinity"
    except (AttributeError, OSError):
        count, origin = os.cpu_count() or 1, "the CPU count"
    quota = cgroup_cpu_quota()
    if quota is not None and math.ceil(quota) < count:
        count, origin = math.ceil(quota), f"the cgroup CPU quota ({quota:g} CPUs)"
    return max(1, count), origin


def cgroup_cpu_quota(root: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup") -> float | None:
    """CPUs' worth of time the cgroup of this process may use (cgroup v2 ``cpu.max`` of
    its cgroup and every ancestor, or v1 ``cpu.cfs_quota_us``); ``None`` when unlimited."""
    limits: list[float] = []
    try:
        with open(self_cgroup) as file:
            entries = [line.rstrip("\n").split(":", 2) for line in file]
    except OSError:
        entries = []
    for entry in entries:
        if len(entry) != 3:
            continue
        if entry[0] == "0" and entry[1] == "":  # v2: the one unified hierarchy
            path = entry[2].strip("/")
            while True:
                limits += _quota(os.path.join(root, path, "cpu.max"), None)
                if not path:
                    break
                path = os.path.dirname(path)
        elif "cpu" in entry[1].split(","):  # v1: the cpu controller's hierarchy
            base = os.path.join(root, entry[1])
            for folder in (os.path.join(base, entry[2].strip("/")), base):
                limits += _quota(os.path.join(folder, "cpu.cfs_quota_us"), os.path.join(folder, "cpu.cfs_period_us"))
    return min(limits) if limits else None


def _quota(path: str, period_path: str | None) -> list[float]:
    """``[quota / period]`` read from cgroup files, or ``[]`` (absent, unlimited, unreadable)."""
    try:
        with open(path) as file:
            text = file.read().split()
        if period_path is not None:
            with open(period_path) as file:
                text.append(file.read().strip())
        quota, period = int(text[0]), int(text[1])
    except (OSError, ValueError, IndexError):  # "max" (v2 unlimited) is a ValueError
        return []
    return [quota / period] if quota > 0 and period > 0 else []


@dataclass(frozen=True)
class WorkerPlan:
    """How the server is laid out: ``processes`` worker processes of ``threads`` threads each."""

    mode: Literal["threads", "processes"]
    processes: int
    threads: int

    def describe(self) -> str:
        threads = f"{self.threads} thread{'' if self.threads == 1 else 's'}"
        if self.mode == "threads" and self.processes == 1:
            return threads
        return f"{self.processes} worker{'' if self.processes == 1 else 's'} x {threads}"


@dataclass(frozen=True)
class Config:
    """Everything the server needs to run. Build it once; it validates itself.

    ``app`` is an ASGI, WSGI or RSGI callable or an import string ``"module:attribute"``
    (``"module:factory"`` with ``factory=True``).

    ``threads`` is the number of threads per worker process. Left at ``None`` it becomes
    the number of CPUs, or 1 when ``workers`` is given; after construction it is always an
    int. How many processes run is decided by :meth:`plan` once the GIL state is known.
    ``threads_from`` says where a given ``threads`` came from (the CLI passes
    ``"--threads"``, ``"FTSERVE_THREADS"`` or ``"WEB_CONCURRENCY"``); the banner shows it.
    """

    app: str | Callable[..., Any]
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    uds_permissions: int | str | None = None
    threads: int | None = None
    mode: Mode = "auto"
    workers: int | None = None
    interface: Interface = "auto"
    http1: HTTP1Mode = "fast"
    http: HTTPMode = "auto"
    h2_max_concurrent_streams: int = 100
    h2_initial_window_size: int = 65535
    h2_max_frame_size: int = 16384
    h2_max_header_list_size: int = 65536
    h2_ping_interval: float | None = None
    h2_ping_timeout: float = 20.0
    accept: AcceptMode = "queue"
    backlog: int = 2048
    lifespan: LifespanMode = "auto"
    log_level: LogLevel = "info"
    access_log: bool = False
    root_path: str = ""
    timeout_graceful_shutdown: float = 30.0
    drain_delay: float = 0.0
    timeout_keep_alive: float = 5.0
    timeout_header_read: float = 10.0
    blocking_threads: int = 8
    timeout_io: float = 60.0
    wsgi_body_buffer: int = 65536
    ws: WSMode = "auto"
    ws_max_size: int = 16 * 1024 * 1024
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = True
    factory: bool = False
    app_dir: str | None = "."
    server_header: bool = True
    date_header: bool = True
    limit_request_line: int = 8190
    limit_request_headers: int = 65536
    limit_request_fields: int = 100
    limit_request_body: int | None = None
    #: ``--header``: "name:value" strings or (name, value) pairs; "name: value" after validation.
    headers: tuple[Any, ...] = ()
    limit_concurrency: int | None = None
    limit_max_connections: int | None = None
    fd: int | None = None
    reload: bool = False
    reload_dirs: tuple[str, ...] = ()
    reload_includes: tuple[str, ...] = ()
    reload_excludes: tuple[str, ...] = ()
    reload_delay: float = 0.25
    # -- the supervisor (ftserver/mp_fallback/supervisor.py) ------------------------------------------
    supervisor: bool = True
    preload: bool = False
    respawn_failed_workers: bool = True
    respawn_limit: int = 5
    respawn_window: float = 60.0
    workers_lifetime: float | None = None
    workers_lifetime_jitter: float | None = None
    max_requests: int | None = None
    max_requests_jitter: int = 0
    workers_max_rss: float | None = None
    rss_sample_interval: float = 5.0
    rss_samples: int = 3
    workers_kill_timeout: float | None = None
    heartbeat_timeout: float = 30.0
    startup_timeout: float = 60.0
    pid_file: str | None = None
    log_file: str | None = None
    access_log_file: str | None = None
    access_log_format: str | None = None
    log_config: str | None = None
    env_file: str | None = None
    static_path_route: tuple[str, ...] = ()
    static_path_mount: tuple[str, ...] = ()
    static_path_dir_to_file: str | None = None
    static_path_expires: float | None = 86400.0
    proxy_headers: bool = False
    metrics: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9090
    forwarded_allow_ips: str | tuple[str, ...] = "127.0.0.1"
    proxy_protocol: ProxyProtocolMode = "off"
    proxy_protocol_allow_ips: str | tuple[str, ...] = "127.0.0.1"
    #: Not an option: where ``threads`` came from (see the class docstring).
    threads_from: InitVar[str | None] = None
    # -- TLS (ftserver/tls.py, docs/tls.md) -----------------------------------------------------------
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_protocol_min: SSLProtocol = "tls1.2"
    ssl_ciphers: str | None = None
    ssl_ca_certs: str | None = None
    ssl_cert_reqs: SSLCertReqs = "none"
    ssl_crl: tuple[str, ...] = ()
    ssl_handshake_timeout: float = 10.0

    def __post_init__(self, threads_from: str | None) -> None:
        if isinstance(self.app, str):
            module, sep, attr = self.app.partition(":")
            if not sep or not module or not attr:
                raise ConfigError(f'app: import string must be "module:attribute", got {self.app!r}')
        elif not callable(self.app) and not hasattr(self.app, "__rsgi__"):
            raise ConfigError(f"app: must be a callable (or an RSGI object) or an import string, got {type(self.app).__name__}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port: must be 0..65535 (0 picks a free port), got {self.port}")
        if self.threads is None:
            threads, threads_from = (1, "the default with --workers") if self.workers is not None else cpu_budget()
            object.__setattr__(self, "threads", threads)
        elif self.threads < 1:
            raise ConfigError(f"threads: must be at least 1, got {self.threads}")
        object.__setattr__(self, "threads_from", threads_from or "the threads option")  # (replace() passes it on)
        _choice("interface", self.interface, INTERFACES)
        _choice("http1", self.http1, HTTP1_MODES)
        self._validate_http2()
        _choice("accept", self.accept, ACCEPT_MODES)
        _choice("lifespan", self.lifespan, LIFESPAN_MODES)
        _choice("log_level", self.log_level, LOG_LEVELS)
        if self.uds is not None and self.accept == "reuseport":
            raise ConfigError("accept: 'reuseport' needs a TCP listener; use --accept queue with --uds")
        if self.backlog < 1:
            raise ConfigError(f"backlog: must be at least 1, got {self.backlog}")
        if self.timeout_graceful_shutdown < 0:
            raise ConfigError(f"timeout_graceful_shutdown: must be >= 0, got {self.timeout_graceful_shutdown}")
        if not 0 <= self.drain_delay < math.inf:
            raise ConfigError(f"drain_delay: must be >= 0 seconds, got {self.drain_delay}")
        if not self.timeout_header_read > 0:
            raise ConfigError(f"timeout_header_read: must be > 0, got {self.timeout_header_read}")
        if self.timeout_keep_alive <= 0:
            raise ConfigError(f"timeout_keep_alive: must be > 0, got {self.timeout_keep_alive}")
        if self.blocking_threads < 1:
            raise ConfigError(f"blocking_threads: must be at least 1, got {self.blocking_threads}")
        if self.timeout_io <= 0:
            raise ConfigError(f"timeout_io: must be > 0, got {self.timeout_io}")
        if not 0 <= self.wsgi_body_buffer <= MAX_WSGI_BODY_BUFFER:
            raise ConfigError(
                f"wsgi_body_buffer: must be between 0 and {MAX_WSGI_BODY_BUFFER} bytes, got {self.wsgi_body_buffer}"
            )
        _choice("ws", self.ws, WS_MODES)
        if self.ws_max_size < 1:
            raise ConfigError(f"ws_max_size: must be at least 1 byte, got {self.ws_max_size}")
        for name in ("ws_ping_interval", "ws_ping_timeout"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ConfigError(f"{name}: must be >= 0 seconds (0: off), got {value}")
        if self.root_path and (not self.root_path.startswith("/") or self.root_path.endswith("/")):
            raise ConfigError(f"root_path: must start with '/' and not end with '/', got {self.root_path!r}")
        for name in ("limit_request_line", "limit_request_headers", "limit_request_fields"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.limit_request_body is not None and self.limit_request_body < 0:
            raise ConfigError(f"limit_request_body: must be >= 0, got {self.limit_request_body}")
        self._validate_backpressure()
        if self.fd is not None and (self.fd < 0 or self.uds is not None):
            raise ConfigError(f"fd: must be a file descriptor number >= 0 and not combined with uds, got {self.fd}")
        self._validate_reload()
        self._validate_workers()
        self._validate_logging()
        self._validate_static()
        self._validate_tls()
        if not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port: must be 0..65535 (0 picks a free port), got {self.metrics_port}")
        for name in ("forwarded_allow_ips", "proxy_protocol_allow_ips"):
            try:
                parse_trusted(getattr(self, name))
            except ValueError as exc:
                raise ConfigError(f"{name}: {exc}") from None
        _choice("proxy_protocol", self.proxy_protocol, PROXY_PROTOCOL_MODES)
        if self.uds_permissions is not None:
            try:
                object.__setattr__(self, "uds_permissions", parse_permissions(self.uds_permissions))
            except ValueError as exc:
                raise ConfigError(f"uds_permissions: {exc}") from None
            if self.uds is None:
                raise ConfigError("uds_permissions: the mode of the --uds socket file; add --uds PATH")

    def _validate_backpressure(self) -> None:
        """``--header``, ``--limit-concurrency``, ``--limit-max-connections`` (docs/limits.md)."""
        headers = (self.headers,) if isinstance(self.headers, str) else tuple(self.headers)
        try:
            headers = tuple(parse_header(header) for header in headers)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"headers: {exc}") from None
        if sum(name == "server" for name, _ in headers) > 1:
            raise ConfigError("headers: 'server' is given more than once")
        # frozen: normalise once, here, to "name: value" (the option's own form: --reload passes it on)
        object.__setattr__(self, "headers", tuple(f"{name}: {value}" for name, value in headers))
        for name in ("limit_concurrency", "limit_max_connections"):
            value = getattr(self, name)
            if value is not None and (type(value) is not int or value < 1):
                raise ConfigError(f"{name}: must be a whole number of at least 1 (unset: no limit), got {value!r}")

    def _validate_static(self) -> None:
        routes, mounts = tuple(self.static_path_route), tuple(self.static_path_mount)
        object.__setattr__(self, "static_path_route", routes)  # frozen: normalise lists once, here
        object.__setattr__(self, "static_path_mount", mounts)
        if routes and not mounts:
            raise ConfigError("static_path_route: needs a --static-path-mount directory for each route")
        if mounts and not routes:
            routes = ("/static",) if len(mounts) == 1 else ()
        if len(routes) != len(mounts):
            raise ConfigError(f"static_path_mount: {len(mounts)} directories for {len(routes)} routes; give one --static-path-route per --static-path-mount")
        for route in routes:
            if not route.startswith("/") or any(char in route for char in "?#%\\"):
                raise ConfigError(f"static_path_route: must be a path starting with '/', without '?', '#' or '%', got {route!r}")
        for mount in mounts:
            if not os.path.isdir(mount):
                raise ConfigError(f"static_path_mount: {mount!r} is not a directory")
        index = self.static_path_dir_to_file
        if index is not None and (not index or "/" in index or index in (".", "..")):
            raise ConfigError(f"static_path_dir_to_file: must be a file name, got {index!r}")
        if self.static_path_expires is not None and self.static_path_expires < 0:
            raise ConfigError(f"static_path_expires: must be >= 0 seconds (0: no Cache-Control), got {self.static_path_expires}")

    @property
    def static_routes(self) -> tuple[tuple[str, str], ...]:
        """(route, directory) pairs of the static files served without the app."""
        routes = self.static_path_route or (("/static",) if self.static_path_mount else ())
        return tuple(zip(routes, self.static_path_mount))

    def _validate_logging(self) -> None:
        if self.access_log_format is not None:
            if not self.access_log:
                object.__setattr__(self, "access_log", True)  # giving the format asks for the log
            try:
                AccessFormat(self.access_log_format)
            except AccessFormatError as exc:
                raise ConfigError(f"access_log_format: {exc}") from None
        if self.log_config is not None and not os.path.isfile(self.log_config):
            raise ConfigError(f"log_config: {self.log_config!r} is not a file")
        if self.env_file is not None:
            try:
                parse_env_file(self.env_file)
            except OSError as exc:
                raise ConfigError(f"env_file: cannot read {self.env_file!r}: {exc.strerror or exc}") from None
            except EnvFileError as exc:
                raise ConfigError(f"env_file: {exc}") from None

    def _validate_http2(self) -> None:
        if isinstance(self.http, int):
            object.__setattr__(self, "http", str(self.http))  # (http=2 from Python)
        _choice("http", self.http, HTTP_MODES)
        if not 1 <= self.h2_max_concurrent_streams <= 2**31 - 1:
            raise ConfigError(f"h2_max_concurrent_streams: must be at least 1, got {self.h2_max_concurrent_streams}")
        if not 1024 <= self.h2_initial_window_size <= 2**31 - 1:
            raise ConfigError(f"h2_initial_window_size: must be 1024..2147483647 bytes, got {self.h2_initial_window_size}")
        if not 16384 <= self.h2_max_frame_size <= 16777215:
            raise ConfigError(f"h2_max_frame_size: must be 16384..16777215 bytes (RFC 9113 §6.5.2), got {self.h2_max_frame_size}")
        if not 1024 <= self.h2_max_header_list_size <= 2**31 - 1:
            raise ConfigError(f"h2_max_header_list_size: must be at least 1024 bytes, got {self.h2_max_header_list_size}")
        if self.h2_ping_interval is not None and not self.h2_ping_interval > 0:
            raise ConfigError(f"h2_ping_interval: must be > 0 seconds (leave it unset for no PING), got {self.h2_ping_interval}")
        if not self.h2_ping_timeout > 0:
            raise ConfigError(f"h2_ping_timeout: must be > 0 seconds, got {self.h2_ping_timeout}")

    def _validate_reload(self) -> None:
        for name in ("reload_dirs", "reload_includes", "reload_excludes"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) and item for item in value):
                raise ConfigError(f"{name}: must be a sequence of non-empty strings, got {value!r}")
            object.__setattr__(self, name, tuple(value))  # frozen: normalise lists once, here
        for path in self.reload_dirs:
            if not os.path.isdir(path):
                raise ConfigError(f"reload_dirs: {path!r} is not a directory")
        if not self.reload_delay > 0:
            raise ConfigError(f"reload_delay: must be > 0 seconds, got {self.reload_delay}")
        if self.reload and not isinstance(self.app, str):
            raise ConfigError('reload: needs the app as an import string "module:attribute" (the server process imports it afresh on each change)')

    def _validate_workers(self) -> None:
        _choice("mode", self.mode, MODES)
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers: must be at least 1, got {self.workers}")
        if self.mode == "threads" and self.workers is not None and self.workers > 1:
            raise ConfigError(
                f"workers: {self.workers} worker processes cannot run in --mode threads (one process); "
                "use --mode processes or auto, or drop --workers"
            )
        if not self.supervisor:
            if self.mode == "processes" or (self.workers or 1) > 1:
                raise ConfigError("supervisor: worker processes need the supervisor; drop --no-supervisor")
            for name in SUPERVISOR_OPTIONS:
                if getattr(self, name):
                    option = "--" + name.replace("_", "-")
                    raise ConfigError(f"{name}: {option} needs the supervisor; drop --no-supervisor")
        for name in ("respawn_limit", "rss_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("respawn_window", "rss_sample_interval", "startup_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be > 0 seconds, got {getattr(self, name)}")
        if self.heartbeat_timeout < 0:
            raise ConfigError(f"heartbeat_timeout: must be >= 0 seconds (0 turns the check off), got {self.heartbeat_timeout}")
        if self.heartbeat_timeout and self.heartbeat_timeout < 2:
            raise ConfigError(f"heartbeat_timeout: must be at least 2 seconds (workers beat once a second), got {self.heartbeat_timeout}")
        if self.workers_kill_timeout is not None and not self.workers_kill_timeout > 0:
            raise ConfigError(f"workers_kill_timeout: must be > 0 seconds, got {self.workers_kill_timeout}")
        if self.workers_lifetime is not None and self.workers_lifetime < 1:
            raise ConfigError(f"workers_lifetime: must be at least 1 second, got {self.workers_lifetime}")
        if self.workers_lifetime_jitter is not None and self.workers_lifetime_jitter < 0:
            raise ConfigError(f"workers_lifetime_jitter: must be >= 0 seconds, got {self.workers_lifetime_jitter}")
        if self.max_requests is not None and self.max_requests < 1:
            raise ConfigError(f"max_requests: must be at least 1, got {self.max_requests}")
        if self.max_requests_jitter < 0:
            raise ConfigError(f"max_requests_jitter: must be >= 0, got {self.max_requests_jitter}")
        if self.workers_max_rss is not None and not self.workers_max_rss > 0:
            raise ConfigError(f"workers_max_rss: must be > 0 MiB, got {self.workers_max_rss}")
        if self.access_log_file is not None and not self.access_log:
            object.__setattr__(self, "access_log", True)  # naming the file asks for the log
        for name in ("pid_file", "log_file", "access_log_file"):
            path = getattr(self, name)
            if path is not None:
                parent = os.path.dirname(os.path.abspath(path))
                if not path or os.path.isdir(path) or not os.path.isdir(parent):
                    raise ConfigError(f"{name}: {path!r} must be a file path in an existing directory")

    def _validate_tls(self) -> None:
        """The TLS options' values and how they combine; the files are read by
        ``ftserver.tls.server_context`` at start-up (one line for each problem there)."""
        _choice("ssl_protocol_min", self.ssl_protocol_min, SSL_PROTOCOLS)
        _choice("ssl_cert_reqs", self.ssl_cert_reqs, SSL_CERT_REQS)
        if isinstance(self.ssl_crl, str) or not all(isinstance(item, str) and item for item in self.ssl_crl):
            raise ConfigError(f"ssl_crl: must be a sequence of file paths, got {self.ssl_crl!r}")
        object.__setattr__(self, "ssl_crl", tuple(self.ssl_crl))  # frozen: normalise lists once, here
        if not self.ssl_handshake_timeout > 0:
            raise ConfigError(f"ssl_handshake_timeout: must be > 0 seconds, got {self.ssl_handshake_timeout}")
        for name in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
            if getattr(self, name) == "":
                raise ConfigError(f"{name}: must be a file path, got ''")
        if self.ssl_certfile is None:
            given = [name for name in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ciphers", "ssl_ca_certs", "ssl_crl") if getattr(self, name)]
            if self.ssl_cert_reqs != "none":
                given.append("ssl_cert_reqs")
            if given:
                raise ConfigError(f"{given[0]}: TLS options need the server's certificate: add --ssl-certfile (and --ssl-keyfile)")
            return
        if self.ssl_keyfile_password is not None and self.ssl_keyfile is None:
            raise ConfigError("ssl_keyfile_password: the password of --ssl-keyfile, which is missing")
        if self.ssl_cert_reqs != "none" and self.ssl_ca_certs is None:
            raise ConfigError(f"ssl_cert_reqs: {self.ssl_cert_reqs!r} verifies client certificates against --ssl-ca-certs, which is missing")
        if self.ssl_crl and self.ssl_cert_reqs == "none":
            raise ConfigError("ssl_crl: revocation lists check client certificates: add --ssl-cert-reqs optional or required (and --ssl-ca-certs)")

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS (``ssl_certfile`` given)."""
        return self.ssl_certfile is not None

    def plan(self, gil_enabled: bool) -> WorkerPlan:
        """The process/thread layout, given whether the GIL is on once the app is imported.

        ``--workers N`` gives N processes of ``threads`` threads. Without it, threads mode
        is one process of ``threads`` threads, and processes mode turns the thread count
        into a process count: ``threads`` processes of one thread each. ``auto`` is threads
        mode when the GIL is off, processes mode when it is on.
        """
        threads = self.threads or 1
        if self.workers is not None:
            mode = "threads" if self.mode == "threads" else "processes"
            return WorkerPlan(mode, self.workers, threads)
        if self.mode == "threads" or (self.mode == "auto" and not gil_enabled):
            return WorkerPlan("threads", 1, threads)
        return WorkerPlan("processes", threads, 1)

    @property
    def kill_timeout(self) -> float:
        """How long a stopping worker process gets before SIGKILL."""
        if self.workers_kill_timeout is not None:
            return self.workers_kill_timeout
        return self.timeout_graceful_shutdown + 10.0

    @property
    def ws_enabled(self) -> bool:
        """Whether ASGI and RSGI apps are served WebSocket (``--ws``)."""
        return self.ws not in ("none", "off")

    @property
    def limits(self) -> Limits:
        return Limits(
            max_request_line=self.limit_request_line,
            max_header_bytes=self.limit_request_headers,
            max_headers=self.limit_request_fields,
            max_body_size=self.limit_request_body,
        )

    @property
    def h2_settings(self) -> H2Settings | None:
        """The HTTP/2 settings, or ``None`` with ``--http 1``."""
        if self.http == "1":
            return None
        return H2Settings(
            max_concurrent_streams=self.h2_max_concurrent_streams,
            initial_window_size=self.h2_initial_window_size,
            max_frame_size=self.h2_max_frame_size,
            max_header_list_size=self.h2_max_header_list_size,
        )

    def replace(self, **changes: Any) -> Config:
        return replace(self, **changes)

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}; got {value!r}")
