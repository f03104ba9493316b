"""The ``ftserve`` command line: the options in sections, each also settable as ``FTSERVE_<OPTION>``."""

from __future__ import annotations

import functools
import os
import re
import sys
from typing import Any

import click
from click.core import ParameterSource

from ftserver.api import serve
from ftserver.config import (
    ACCEPT_MODES,
    HTTP1_MODES,
    HTTP_MODES,
    INTERFACES,
    LIFESPAN_MODES,
    LOG_LEVELS,
    MODES,
    SSL_CERT_REQS,
    SSL_PROTOCOLS,
    WS_MODES,
    Config,
    ConfigError,
    default_threads,
)
from ftserver.loading import AppImportError
from ftserver.protocols.proxy_protocol import PROXY_PROTOCOL_MODES
from ftserver.protocols.default_headers import parse_header
from ftserver.reloader import DEFAULT_EXCLUDES
from ftserver.runtime import python_build
from ftserver.startup import STARTUP_FAILURES, exit_code_for
from ftserver.version import __version__

ENV_PREFIX = "FTSERVE"

#: ``--help`` shows the options in these sections, in this order; everyday options first.
SECTIONS: dict[str, tuple[str, ...]] = {
    "App": ("interface", "factory", "app_dir", "env_file", "lifespan", "root_path"),
    "Binding": ("host", "port", "uds", "uds_permissions", "fd", "backlog", "accept"),
    "Proxies": ("proxy_headers", "forwarded_allow_ips", "proxy_protocol", "proxy_protocol_allow_ips"),
    "Metrics": ("metrics", "metrics_host", "metrics_port"),
    "Workers": ("threads", "workers", "mode", "blocking_threads"),
    "HTTP": ("http", "http1", "server_header", "date_header", "headers", "wsgi_body_buffer"),
    "HTTP/2": (
        "h2_max_concurrent_streams", "h2_initial_window_size", "h2_max_frame_size", "h2_max_header_list_size",
        "h2_ping_interval", "h2_ping_timeout",
    ),
    "WebSocket": ("ws", "ws_max_size", "ws_ping_interval", "ws_ping_timeout", "ws_per_message_deflate"),
    "Static files": ("static_path_route", "static_path_mount", "static_path_dir_to_file", "static_path_expires"),
    "TLS": (
        "ssl_certfile", "ssl_keyfile", "ssl_keyfile_password", "ssl_protocol_min", "ssl_ciphers",
        "ssl_ca_certs", "ssl_cert_reqs", "ssl_crl", "ssl_handshake_timeout",
    ),
    "Logging": ("log_level", "access_log", "log_file", "access_log_file", "access_log_format", "log_config"),
    "Timeouts and limits": (
        "timeout_keep_alive", "timeout_header_read", "timeout_graceful_shutdown", "drain_delay", "timeout_io", "limit_request_body",
        "limit_request_line", "limit_request_headers", "limit_request_fields", "limit_concurrency",
        "limit_max_connections",
    ),
    "Supervisor": (
        "supervisor", "preload", "pid_file", "max_requests", "max_requests_jitter", "workers_lifetime",
        "workers_lifetime_jitter", "workers_max_rss", "rss_sample_interval", "rss_samples",
        "respawn_failed_workers", "respawn_limit", "respawn_window", "workers_kill_timeout",
        "heartbeat_timeout", "startup_timeout",
    ),
    "Development": ("reload", "reload_dirs", "reload_includes", "reload_excludes", "reload_delay"),
}

#: Seconds per unit of a :class:`Duration`.
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")


class Duration(click.ParamType):
    """Seconds, written plainly (``30``, ``0.5``) or with a unit: ``250ms``, ``30s``, ``5m``, ``1h``."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        match = _DURATION.fullmatch(value)
        if match is None:
            self.fail(f"{value!r} is not a duration: seconds, or a number with a unit (250ms, 30s, 5m, 1h)", param, ctx)
        return float(match[1]) * DURATION_UNITS[match[2] or "s"]


DURATION = Duration()


class HeaderField(click.ParamType):
    """``NAME:VALUE``; from ``FTSERVE_HEADER``, one per line (a value may hold spaces and
    commas, never a line break)."""

    name = "header"
    envvar_list_splitter = "\n"

    def split_envvar_value(self, rv: str) -> list[str]:  # type: ignore[override]
        return [line for line in rv.splitlines() if line.strip()]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            parse_header(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return value


class EnvOption(click.Option):
    """An option whose help shows its ``FTSERVE_*`` variable, and whose errors name the
    variable when the bad value came from it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("show_envvar", True)
        super().__init__(*args, **kwargs)

    def envvar_name(self) -> str:
        if isinstance(self.envvar, str):
            return self.envvar
        return f"{ENV_PREFIX}_{(self.name or '').upper()}"

    def get_error_hint(self, ctx: click.Context | None) -> str:
        if ctx is not None and self.name and ctx.get_parameter_source(self.name) is ParameterSource.ENVIRONMENT:
            return f"{self.envvar_name()} ({' / '.join(self.opts)})"
        return super().get_error_hint(ctx)


option = functools.partial(click.option, cls=EnvOption)


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists the options by :data:`SECTIONS`."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records: dict[str | None, tuple[str, str]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None and not isinstance(param, click.Argument):
                records[param.name] = record
        for title, names in SECTIONS.items():
            rows = [records.pop(name) for name in names if name in records]
            if rows:
                with formatter.section(f"{title} options"):
                    formatter.write_dl(rows)
        if records:  # --help, --version
            with formatter.section("Other options"):
                formatter.write_dl(list(records.values()))


def naming_the_variable(ctx: click.Context, message: str) -> str:
    """A ``Config`` error (``"name: why"``) about a value that came from an ``FTSERVE_*``
    variable names the variable, as click's own errors do (``EnvOption``)."""
    name, sep, why = message.partition(": ")
    param = next((p for p in ctx.command.params if p.name == name), None)
    if sep and isinstance(param, EnvOption) and ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT:
        return f"{param.get_error_hint(ctx)}: {why}"
    return message


def web_concurrency() -> int | None:
    """``WEB_CONCURRENCY`` (set by Heroku and other platforms), or ``None`` when unset."""
    value = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise click.BadParameter(f"{value!r} is not a whole number of at least 1.", param_hint="WEB_CONCURRENCY (--threads)")
    return int(value)


def _version_message() -> str:
    return f"ftserver {__version__} ({python_build()})"


@click.command(
    cls=SectionedCommand,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100, "auto_envvar_prefix": ENV_PREFIX},
)
@click.argument("app", envvar="FTSERVE_APP")
@option("--host", default="127.0.0.1", show_default=True, help="Bind to this address.")
@option("--port", default=8000, show_default=True, type=int, help="Bind to this port (0 picks a free port; the log shows it).")
@option("--uds", default=None, help="Bind to this Unix domain socket instead of TCP.")
@option("--uds-permissions", default=None, metavar="MODE", show_default="0o666", help="Permissions of the --uds socket file, in octal (660, 0o660): who may connect.")
@option(
    "--threads",
    default=None,
    type=int,
    help=(
        "Threads per worker process, each with its own event loop. On a GIL build (or when importing the app "
        "turns the GIL on), --mode auto runs processes instead: --threads N without --workers becomes N processes "
        "of 1 thread. WEB_CONCURRENCY (as set by hosting platforms) sets it when neither --threads nor --workers "
        "is given, on the command line or as FTSERVE_*."
    ),
    show_default=f"the CPUs this process may use (affinity, lowered to a cgroup CPU quota), here {default_threads()}; 1 with --workers",
)
@option("--mode", type=click.Choice(MODES), default="auto", show_default=True, help="threads: one worker process running --threads threads. processes: --threads becomes the number of worker processes, of 1 thread each. auto: threads on a free-threaded build with the GIL still off after importing the app, else processes (with a warning naming the module that turned the GIL on).")
@option("--workers", default=None, type=int, help="Worker processes (each runs --threads threads, default 1). Giving it means processes mode.")
@option("--supervisor/--no-supervisor", default=True, show_default=True, help="--no-supervisor serves from this very process (threads mode only; no respawn, recycling, reload or heartbeat).")
@option("--preload", is_flag=True, default=False, help="Import the app in the supervisor before forking the workers (less memory; SIGHUP then restarts workers without re-importing the code).")
@option("--respawn-failed-workers/--no-respawn-failed-workers", default=True, show_default=True, help="Replace a worker process that dies unexpectedly (otherwise the server stops).")
@option("--respawn-limit", default=5, show_default=True, type=int, help="Stop the server, instead of respawning, after this many worker failures within --respawn-window.")
@option("--respawn-window", default=60.0, show_default=True, type=DURATION, help="Seconds over which --respawn-limit counts failures.")
@option("--workers-lifetime", default=None, type=DURATION, help="Recycle each worker process after this many seconds (a replacement starts first).")
@option("--workers-lifetime-jitter", default=None, type=DURATION, show_default='a tenth of --workers-lifetime', help="Add up to this many random seconds to each worker's lifetime.")
@option("--max-requests", default=None, type=int, help="Recycle a worker process after it has served this many requests: it stops accepting at once, closes its connections after their current response and is stopped once its replacement is ready.")
@option("--max-requests-jitter", default=0, show_default=True, type=int, help="Add up to this many (random) requests to each worker's --max-requests.")
@option("--workers-max-rss", default=None, type=float, help="Recycle a worker process whose resident memory stays above this many MiB for --rss-samples samples.")
@option("--rss-sample-interval", default=5.0, show_default=True, type=DURATION, help="Seconds between two memory samples of the workers.")
@option("--rss-samples", default=3, show_default=True, type=int, help="Consecutive samples over --workers-max-rss that recycle a worker.")
@option("--workers-kill-timeout", default=None, type=DURATION, show_default='--timeout-graceful-shutdown + 10', help="Seconds a stopping worker process gets before it is killed (SIGKILL).")
@option("--heartbeat-timeout", default=30.0, show_default=True, type=DURATION, help="Replace a worker process whose event loop has not run for this many seconds (an app blocking its loop); 0 turns the check off.")
@option("--startup-timeout", default=60.0, show_default=True, type=DURATION, help="Seconds a new worker process gets to import the app and finish its lifespan startup.")
@option("--pid-file", default=None, help="Write the server's process id to this file (refused if it names a running process; removed at exit).")
@option("--log-file", default=None, help="Write the server log to this file instead of stderr (reopened on SIGUSR1).")
@option("--access-log-file", default=None, help="Write the access log to this file instead of stdout (turns the access log on; reopened on SIGUSR1).")
@option("--access-log-format", default=None, metavar="FORMAT", help='Access-log lines in Gunicorn\'s atoms, e.g. \'%(h)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms\'; %({header}i)s, %({header}o)s and %({variable}e)s too (docs/logging.md). Default: time, client, request line, status, bytes, duration.')
@option("--log-config", default=None, metavar="FILE", help="Configure logging from this file: JSON or YAML (dictConfig; YAML needs PyYAML), else an .ini fileConfig. It decides handlers and formats; levels it leaves unset come from --log-level and --access-log.")
@option("--env-file", default=None, metavar="FILE", help="Load environment variables for the app from this dotenv file (NAME=value lines); variables already set win.")
@option("--proxy-headers/--no-proxy-headers", default=False, show_default=True, help="Take the client address, scheme and host from X-Forwarded-For/-Proto/-Host/-Port or RFC 7239 Forwarded, from trusted peers only (--forwarded-allow-ips); the app and the access log see them. Off by default (Uvicorn turns it on).")
@option("--forwarded-allow-ips", default=lambda: os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"), metavar="LIST", show_default="$FORWARDED_ALLOW_IPS, else 127.0.0.1", help="Comma-separated peers trusted with proxy headers: IP addresses, networks (10.0.0.0/8), 'unix' (peers on a Unix socket), '*' (everyone).")
@option("--proxy-protocol", type=click.Choice(PROXY_PROTOCOL_MODES), default="off", show_default=True, help="Read HAProxy's PROXY protocol header (v1 text, v2 binary) that a TCP proxy (HAProxy send-proxy, nginx stream proxy_protocol, AWS NLB) sends first; the app and the access log see the client it names. v1/v2: required from the peers of --proxy-protocol-allow-ips (a bad or missing header closes that connection); auto: either version, or none.")
@option("--proxy-protocol-allow-ips", default="127.0.0.1", show_default=True, metavar="LIST", help="Comma-separated peers whose connections start with a PROXY protocol header: IP addresses, networks, 'unix', '*'. Other peers' connections are served as they come.")
@option("--metrics/--no-metrics", default=False, show_default=True, help="Serve Prometheus metrics (requests, latency, connections, loop lag, worker restarts; merged across worker processes) at http://METRICS_HOST:METRICS_PORT/metrics.")
@option("--metrics-host", default="127.0.0.1", show_default=True, help="Address of the metrics listener.")
@option("--metrics-port", default=9090, show_default=True, type=int, help="Port of the metrics listener (0 picks a free one; the log shows it).")
@option("--static-path-route", "static_path_route", multiple=True, metavar="PATH", envvar="FTSERVE_STATIC_PATH_ROUTE", show_default="/static with one --static-path-mount", help="Serve the files of the matching --static-path-mount under this URL path, without calling the app (repeatable: the n-th route goes with the n-th mount).")
@option("--static-path-mount", "static_path_mount", multiple=True, metavar="DIR", envvar="FTSERVE_STATIC_PATH_MOUNT", help="A directory of static files (repeatable). GET and HEAD, ranges, ETag/Last-Modified (304); nothing outside the directory is reachable.")
@option("--static-path-dir-to-file", default=None, metavar="NAME", help="The file served for a directory under a static route (e.g. index.html; /dir is redirected to /dir/); without it a directory is 404.")
@option("--static-path-expires", default=86400.0, show_default=True, type=DURATION, help="Cache-Control max-age of static files; 0: no Cache-Control.")
@option("--interface", type=click.Choice(INTERFACES), default="auto", show_default=True, help="Application interface. auto: RSGI if the app has __rsgi__, WSGI if it is a plain callable of (environ, start_response), else ASGI 3 (apps that cannot be ASGI 3 are refused, naming the fix). asgi3 = asgi; asgi2: an app(scope) returning instance(receive, send).")
@option("--http", type=click.Choice(HTTP_MODES), default="auto", show_default=True, help="HTTP versions. auto: HTTP/1.1 and HTTP/2 (over TLS by ALPN; on cleartext by prior knowledge or Upgrade: h2c, on the same port). 1: HTTP/1.1 only. 2: HTTP/2 only (cleartext: prior knowledge; an HTTP/1.1 client gets 505 and is closed).")
@option("--h2-max-concurrent-streams", default=100, show_default=True, type=int, help="HTTP/2: streams a client may have open at once on a connection.")
@option("--h2-initial-window-size", default=65535, show_default=True, type=int, metavar="BYTES", help="HTTP/2: the receive window of each stream and of the connection. A stream's window is given back as its app reads the body (one app that does not read stalls only its stream); request bodies buffered per connection stay under --h2-max-concurrent-streams times this.")
@option("--h2-max-frame-size", default=16384, show_default=True, type=int, metavar="BYTES", help="HTTP/2: the largest frame payload accepted (16384..16777215).")
@option("--h2-max-header-list-size", default=65536, show_default=True, type=int, metavar="BYTES", help="HTTP/2: the largest request header block, checked before decoding (CONTINUATION floods) and after.")
@option("--h2-ping-interval", default=None, type=DURATION, show_default="off", help="HTTP/2: send a keep-alive PING after this long without hearing from the client.")
@option("--h2-ping-timeout", default=20.0, show_default=True, type=DURATION, help="HTTP/2: close a connection whose client does not answer the keep-alive PING within this.")
@option("--http1", type=click.Choice(HTTP1_MODES), default="fast", show_default=True, help="HTTP/1.1 implementation: our fast strict parser, or h11 (strict reference).")
@option("--accept", type=click.Choice(ACCEPT_MODES), default="queue", show_default=True, help="How connections reach worker threads: a shared accept queue (least-loaded thread) or one SO_REUSEPORT listener per thread.")
@option("--backlog", default=2048, show_default=True, type=int, help="Listen backlog.")
@option("--lifespan", type=click.Choice(LIFESPAN_MODES), default="auto", show_default=True, help="ASGI lifespan protocol (run once per worker thread). auto: skip if the app does not support it.")
@option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True, help="Server log level.")
@option("--access-log/--no-access-log", default=False, show_default=True, help="Log one line per request to stdout.")
@option("--root-path", default="", help="ASGI root_path: the prefix the app is mounted under behind a proxy.")
@option("--timeout-graceful-shutdown", default=30.0, show_default=True, type=DURATION, help="Seconds in-flight requests get to finish on shutdown before connections are closed.")
@option("--drain-delay", default=0.0, show_default=True, type=DURATION, help="On SIGTERM, keep serving normally this many seconds (while a load balancer or Kubernetes stops sending new traffic), then shut down gracefully; a second SIGTERM or SIGINT skips the rest of the delay. Under systemd it reports the drain in its status (docs/deployment.md).")
@option("--timeout-keep-alive", default=5.0, show_default=True, type=DURATION, help="Close idle keep-alive connections (and stalled request heads) after this many seconds.")
@option("--timeout-header-read", default=10.0, show_default=True, type=DURATION, help="A request head must be complete within this many seconds of its first bytes, however slowly it trickles in (408 otherwise; checked once a second). --timeout-keep-alive, counted from the connection's last response, applies to it too: the first to run out ends it.")
@option("--blocking-threads", default=8, show_default=True, type=int, help="WSGI: handler threads per worker thread; the app runs on them (in parallel on a free-threaded build).")
@option("--timeout-io", default=60.0, show_default=True, type=DURATION, help="Seconds a request body may make no progress (the app is told the client went, the client gets 408) and a response may wait for a client that reads none of it (the connection is dropped), on every interface; WSGI: also how long a handler waits for a client that does not read its response.")
@option("--wsgi-body-buffer", default=65536, show_default=True, type=int, metavar="BYTES", help="WSGI: a request body up to this size is read on the event loop before the app gets a handler thread, so slow uploads hold no thread (a stalled one gets 408 after --timeout-io); larger bodies are handed over after this many bytes. 0: hand every request over at once. At most 262144.")
@option("--ws", type=click.Choice(WS_MODES), default="auto", show_default=True, help="WebSocket for ASGI and RSGI apps (wsproto; over HTTP/1.1 Upgrade and HTTP/2 extended CONNECT). auto, on, wsproto: served; none, off: an Upgrade: websocket is plain HTTP.")
@option("--ws-max-size", default=16 * 1024 * 1024, show_default=True, type=int, metavar="BYTES", help="Largest WebSocket message received, reassembled and inflated (the connection is closed with 1009 beyond).")
@option("--ws-ping-interval", default=20.0, show_default=True, type=DURATION, help="Send a WebSocket ping after this many seconds (0: no keep-alive pings).")
@option("--ws-ping-timeout", default=20.0, show_default=True, type=DURATION, help="Close a WebSocket whose ping waits this long for its pong (0: wait forever).")
@option("--ws-per-message-deflate/--no-ws-per-message-deflate", default=True, show_default=True, help="Accept permessage-deflate (RFC 7692) when the client offers it.")
@option("--factory", is_flag=True, default=False, help="APP names a factory: call it (no arguments) to get the app.")
@option("--app-dir", default=".", show_default=True, help="Look for the app module in this directory (put first on sys.path; it must exist).")
@option("--server-header/--no-server-header", default=True, show_default=True, help="Send 'server: ftserver'.")
@option("--date-header/--no-date-header", default=True, show_default=True, help="Send a 'date' header.")
@option("--header", "--headers", "headers", multiple=True, type=HeaderField(), metavar="NAME:VALUE", envvar="FTSERVE_HEADER", help="Add this field to every response (repeatable; FTSERVE_HEADER: one per line), unless the app sets a field of the same name: app responses on every protocol and interface, static files, the server's own error answers. 'server:NAME' replaces 'ftserver'. Framing fields and date are refused.")
@option("--limit-concurrency", default=None, type=int, metavar="N", show_default="unlimited", help="Requests (and WebSockets) in progress at once per worker process; beyond it a request is answered 503 with 'retry-after: 1' without running the app (counted: ftserver_requests_refused_total).")
@option("--limit-max-connections", default=None, type=int, metavar="N", show_default="unlimited", help="Connections per worker thread: at N the thread stops accepting (new connections wait in the kernel's listen queue, up to --backlog), and resumes once it is down to 90% of N.")
@option("--limit-request-line", default=8190, show_default=True, type=int, help="Longest request line in bytes (414 beyond).")
@option("--limit-request-headers", default=65536, show_default=True, type=int, help="Largest header section in bytes (431 beyond).")
@option("--limit-request-fields", default=100, show_default=True, type=int, help="Most header fields in a request (431 beyond).")
@option("--limit-request-body", default=None, type=int, show_default='unlimited', help="Largest request body in bytes (413 beyond).")
@option("--fd", default=None, type=int, metavar="N", help="Serve on the listening socket already open on this file descriptor (systemd socket activation; the reloader's server process); replaces --host/--port/--uds.")
@option("--reload", is_flag=True, default=False, help="Development: run the server in a child process and restart it when a watched file changes. The listening socket stays open across restarts.")
@option("--reload-dir", "reload_dirs", multiple=True, metavar="DIR", envvar="FTSERVE_RELOAD_DIR", show_default='--app-dir, i.e. the current directory', help="Directory to watch with --reload (repeatable).")
@option("--reload-include", "reload_includes", multiple=True, metavar="GLOB", envvar="FTSERVE_RELOAD_INCLUDE", show_default='*.py', help="Also watch files matching this glob (repeatable; file names, or relative paths if it has a '/'). Wins over the default excludes.")
@option("--reload-exclude", "reload_excludes", multiple=True, metavar="GLOB", envvar="FTSERVE_RELOAD_EXCLUDE", help="Ignore files and directories matching this glob (repeatable), besides the defaults: " + " ".join(DEFAULT_EXCLUDES))
@option("--reload-delay", default=0.25, show_default=True, type=DURATION, help="Seconds between two scans of the watched files (stat polling).")
@option("--ssl-certfile", default=None, metavar="PATH", help="Serve HTTPS: the server's certificate (PEM; the chain after it; its private key too unless --ssl-keyfile is given).")
@option("--ssl-keyfile", default=None, metavar="PATH", help="The private key of --ssl-certfile (PEM).")
@option("--ssl-keyfile-password", default=None, metavar="TEXT", help="The password of an encrypted --ssl-keyfile (better given as FTSERVE_SSL_KEYFILE_PASSWORD: a command line is visible to other users).")
@option("--ssl-protocol-min", type=click.Choice(SSL_PROTOCOLS), default="tls1.2", show_default=True, help="The oldest TLS version a client may use.")
@option("--ssl-ciphers", default=None, metavar="LIST", show_default="OpenSSL's secure defaults", help="TLS 1.2 cipher suites, as an OpenSSL cipher list (TLS 1.3's are always OpenSSL's).")
@option("--ssl-ca-certs", default=None, metavar="PATH", help="CA certificates (PEM file, or a hashed directory) that client certificates are verified against (mTLS, with --ssl-cert-reqs).")
@option("--ssl-cert-reqs", type=click.Choice(SSL_CERT_REQS), default="none", show_default=True, help="Client certificates: none (not asked for), optional (asked for, verified if sent), required (the handshake fails without a valid one). The app sees the certificate (ASGI 'tls' extension, WSGI SSL_CLIENT_*).")
@option("--ssl-crl", "ssl_crl", multiple=True, metavar="PATH", envvar="FTSERVE_SSL_CRL", help="A certificate revocation list (PEM) of a client CA (repeatable): a revoked client certificate fails the handshake. Every CA that issues client certificates then needs its CRL here.")
@option("--ssl-handshake-timeout", default=10.0, show_default=True, type=DURATION, help="Seconds a client gets to complete the TLS handshake (and the closing close_notify exchange).")
@click.version_option(__version__, "--version", message=_version_message())
def cli(app: str, threads: int | None, **options: Any) -> None:
    """Serve APP, an ASGI 3, WSGI or RSGI application given as "module:attribute" (e.g. "main:app").

    A supervisor process runs the worker processes. On a free-threaded Python (3.13t)
    that is one worker process of --threads threads, each with its own event loop, all
    running in parallel; on a GIL build, processes of one thread each (see --mode).

    Signals to the supervisor: SIGINT/SIGTERM stop gracefully (a second one forces),
    SIGHUP reloads the workers without dropping requests, SIGTTIN/SIGTTOU add/remove a
    worker process, SIGUSR1 reopens the log files. With --reload (development) the
    server restarts whenever a watched file changes.
    """
    ctx = click.get_current_context()
    from_env = ctx.get_parameter_source("threads") is ParameterSource.ENVIRONMENT
    options["threads_from"] = "FTSERVE_THREADS" if from_env else "--threads"
    if threads is None and options["workers"] is None:
        threads = web_concurrency()  # only when neither --threads nor --workers is given (nor their FTSERVE_*)
        options["threads_from"] = "WEB_CONCURRENCY"
    if threads is not None:
        options["threads"] = threads
    try:
        config = Config(app=app, **options)
    except ConfigError as exc:
        raise click.UsageError(naming_the_variable(ctx, str(exc))) from None
    try:
        code = serve(config)  # the reloader, the supervisor or this process (see ftserver.api)
    except STARTUP_FAILURES as exc:
        # An AppImportError ends with the app's own traceback (a SyntaxError...), and its newline.
        click.echo(f"Error: {exc}", err=True, nl=not isinstance(exc, AppImportError))
        sys.exit(exit_code_for(exc))
    sys.exit(code)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
