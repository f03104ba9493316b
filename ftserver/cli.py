"""The ``ftserve`` command line. Every option can also be set as ``FTSERVE_<OPTION>``."""

from __future__ import annotations

import sys
from typing import Any

import click

from ftserver.api import serve
from ftserver.config import ACCEPT_MODES, HTTP1_MODES, INTERFACES, LIFESPAN_MODES, LOG_LEVELS, MODES, Config, ConfigError, default_threads
from ftserver.loading import AppImportError
from ftserver.reloader import DEFAULT_EXCLUDES
from ftserver.runtime import python_build
from ftserver.startup import STARTUP_FAILURES, exit_code_for
from ftserver.version import __version__


def _version_message() -> str:
    return f"ftserver {__version__} ({python_build()})"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("app", envvar="FTSERVE_APP")
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind to this address.")
@click.option("--port", default=8000, show_default=True, type=int, help="Bind to this port (0 picks a free port; the log shows it).")
@click.option("--uds", default=None, help="Bind to this Unix domain socket instead of TCP.")
@click.option(
    "--threads",
    default=None,
    type=int,
    help=(
        "Threads per worker process, each with its own event loop. On a GIL build (or when importing the app "
        "turns the GIL on), --mode auto runs processes instead: --threads N without --workers becomes N processes "
        f"of 1 thread.  [default: the CPUs this process may use (affinity, lowered to a cgroup CPU quota), here {default_threads()}; 1 with --workers]"
    ),
)
@click.option("--mode", type=click.Choice(MODES), default="auto", show_default=True, help="threads: one worker process running --threads threads. processes: --threads becomes the number of worker processes, of 1 thread each. auto: threads on a free-threaded build with the GIL still off after importing the app, else processes (with a warning naming the module that turned the GIL on).")
@click.option("--workers", default=None, type=int, help="Worker processes (each runs --threads threads, default 1). Giving it means processes mode.")
@click.option("--supervisor/--no-supervisor", default=True, show_default=True, help="--no-supervisor serves from this very process (threads mode only; no respawn, recycling, reload or heartbeat).")
@click.option("--preload", is_flag=True, default=False, help="Import the app in the supervisor before forking the workers (less memory; SIGHUP then restarts workers without re-importing the code).")
@click.option("--respawn-failed-workers/--no-respawn-failed-workers", default=True, show_default=True, help="Replace a worker process that dies unexpectedly (otherwise the server stops).")
@click.option("--respawn-limit", default=5, show_default=True, type=int, help="Stop the server, instead of respawning, after this many worker failures within --respawn-window.")
@click.option("--respawn-window", default=60.0, show_default=True, type=float, help="Seconds over which --respawn-limit counts failures.")
@click.option("--workers-lifetime", default=None, type=float, help="Recycle each worker process after this many seconds (a replacement starts first).")
@click.option("--workers-lifetime-jitter", default=None, type=float, help="Add up to this many random seconds to each worker's lifetime.  [default: a tenth of --workers-lifetime]")
@click.option("--max-requests", default=None, type=int, help="Recycle a worker process after it has served this many requests (a replacement starts first).")
@click.option("--max-requests-jitter", default=0, show_default=True, type=int, help="Add up to this many (random) requests to each worker's --max-requests.")
@click.option("--workers-max-rss", default=None, type=float, help="Recycle a worker process whose resident memory stays above this many MiB for --rss-samples samples.")
@click.option("--rss-sample-interval", default=5.0, show_default=True, type=float, help="Seconds between two memory samples of the workers.")
@click.option("--rss-samples", default=3, show_default=True, type=int, help="Consecutive samples over --workers-max-rss that recycle a worker.")
@click.option("--workers-kill-timeout", default=None, type=float, help="Seconds a stopping worker process gets before it is killed (SIGKILL).  [default: --timeout-graceful-shutdown + 10]")
@click.option("--heartbeat-timeout", default=30.0, show_default=True, type=float, help="Replace a worker process whose event loop has not run for this many seconds (an app blocking its loop); 0 turns the check off.")
@click.option("--startup-timeout", default=60.0, show_default=True, type=float, help="Seconds a new worker process gets to import the app and finish its lifespan startup.")
@click.option("--pid-file", default=None, help="Write the server's process id to this file (refused if it names a running process; removed at exit).")
@click.option("--log-file", default=None, help="Write the server log to this file instead of stderr (reopened on SIGUSR1).")
@click.option("--access-log-file", default=None, help="Write the access log to this file instead of stdout (turns the access log on; reopened on SIGUSR1).")
@click.option("--interface", type=click.Choice(INTERFACES), default="auto", show_default=True, help="Application interface. auto: RSGI if the app has __rsgi__, WSGI if it is a plain callable of (environ, start_response), else ASGI 3 (apps that cannot be ASGI 3 are refused, naming the fix). asgi3 = asgi; asgi2: an app(scope) returning instance(receive, send).")
@click.option("--http1", type=click.Choice(HTTP1_MODES), default="fast", show_default=True, help="HTTP/1.1 implementation: our fast strict parser, or h11 (strict reference).")
@click.option("--accept", type=click.Choice(ACCEPT_MODES), default="queue", show_default=True, help="How connections reach worker threads: a shared accept queue (least-loaded thread) or one SO_REUSEPORT listener per thread.")
@click.option("--backlog", default=2048, show_default=True, type=int, help="Listen backlog.")
@click.option("--lifespan", type=click.Choice(LIFESPAN_MODES), default="auto", show_default=True, help="ASGI lifespan protocol (run once per worker thread). auto: skip if the app does not support it.")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True, help="Server log level.")
@click.option("--access-log/--no-access-log", default=False, show_default=True, help="Log one line per request to stdout.")
@click.option("--root-path", default="", help="ASGI root_path: the prefix the app is mounted under behind a proxy.")
@click.option("--timeout-graceful-shutdown", default=30.0, show_default=True, type=float, help="Seconds in-flight requests get to finish on shutdown before connections are closed.")
@click.option("--timeout-keep-alive", default=5.0, show_default=True, type=float, help="Close idle keep-alive connections (and stalled request heads) after this many seconds.")
@click.option("--blocking-threads", default=8, show_default=True, type=int, help="WSGI: handler threads per worker thread; the app runs on them (in parallel on a free-threaded build).")
@click.option("--timeout-io", default=60.0, show_default=True, type=float, help="Seconds a request body may make no progress (the app is told the client went, the client gets 408) and a response may wait for a client that reads none of it (the connection is dropped), on every interface; WSGI: also how long a handler waits for a client that does not read its response.")
@click.option("--wsgi-body-buffer", default=65536, show_default=True, type=int, metavar="BYTES", help="WSGI: a request body up to this size is read on the event loop before the app gets a handler thread, so slow uploads hold no thread (a stalled one gets 408 after --timeout-io); larger bodies are handed over after this many bytes. 0: hand every request over at once. At most 262144.")
@click.option("--factory", is_flag=True, default=False, help="APP names a factory: call it (no arguments) to get the app.")
@click.option("--app-dir", default=".", show_default=True, help="Look for the app module in this directory (put first on sys.path; it must exist).")
@click.option("--server-header/--no-server-header", default=True, show_default=True, help="Send 'server: ftserver'.")
@click.option("--date-header/--no-date-header", default=True, show_default=True, help="Send a 'date' header.")
@click.option("--limit-request-line", default=8190, show_default=True, type=int, help="Longest request line in bytes (414 beyond).")
@click.option("--limit-request-headers", default=65536, show_default=True, type=int, help="Largest header section in bytes (431 beyond).")
@click.option("--limit-request-fields", default=100, show_default=True, type=int, help="Most header fields in a request (431 beyond).")
@click.option("--limit-request-body", default=None, type=int, help="Largest request body in bytes (413 beyond).  [default: unlimited]")
@click.option("--fd", default=None, type=int, metavar="N", help="Serve on the listening socket already open on this file descriptor (systemd socket activation; the reloader's server process); replaces --host/--port/--uds.")
@click.option("--reload", is_flag=True, default=False, help="Development: run the server in a child process and restart it when a watched file changes. The listening socket stays open across restarts.")
@click.option("--reload-dir", "reload_dirs", multiple=True, metavar="DIR", envvar="FTSERVE_RELOAD_DIR", help="Directory to watch with --reload (repeatable).  [default: --app-dir, i.e. the current directory]")
@click.option("--reload-include", "reload_includes", multiple=True, metavar="GLOB", envvar="FTSERVE_RELOAD_INCLUDE", help="Also watch files matching this glob (repeatable; file names, or relative paths if it has a '/'). Wins over the default excludes.  [default: *.py]")
@click.option("--reload-exclude", "reload_excludes", multiple=True, metavar="GLOB", envvar="FTSERVE_RELOAD_EXCLUDE", help="Ignore files and directories matching this glob (repeatable), besides the defaults: " + " ".join(DEFAULT_EXCLUDES))
@click.option("--reload-delay", default=0.25, show_default=True, type=float, metavar="SECONDS", help="Seconds between two scans of the watched files (stat polling).")
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
    if threads is not None:
        options["threads"] = threads
    try:
        config = Config(app=app, **options)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        code = serve(config)  # the reloader, the supervisor or this process (see ftserver.api)
    except STARTUP_FAILURES as exc:
        # An AppImportError ends with the app's own traceback (a SyntaxError...), and its newline.
        click.echo(f"Error: {exc}", err=True, nl=not isinstance(exc, AppImportError))
        sys.exit(exit_code_for(exc))
    sys.exit(code)


def main() -> None:
    cli(auto_envvar_prefix="FTSERVE")


if __name__ == "__main__":
    main()
