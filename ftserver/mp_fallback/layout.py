"""Before the first fork: how many worker processes of how many threads (``Config.plan``).

With ``--preload`` (or an app object) the supervisor imports the app itself; with
``--mode auto`` on a free-threaded build it imports it in a throw-away *probe* process,
to learn whether the import turns the GIL on without keeping the app's modules. psutil
(``--workers-max-rss``) is imported here too, watched the same way: workers inherit it.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ftserver.config import Config, ConfigError, WorkerPlan
from ftserver.loading import AppImportError, AppLoadError
from ftserver.runtime import GILReport, free_threaded_build, gil_enabled, watch_gil
from ftserver.startup import EXIT_FORCED, SupervisorError, load_app

logger = logging.getLogger("ftserver.error")

#: How often the probe's wait checks for a stop signal.
POLL_INTERVAL = 0.25


@dataclass
class Layout:
    """What the supervisor runs, decided once at start-up."""

    plan: WorkerPlan
    #: The preloaded app (``--preload``, or an app object), else ``None``.
    app: Any = None
    #: What importing the app did to the GIL, when it was imported here or in the probe.
    gil: GILReport | None = None
    interface: str | None = None
    #: (level, message) logged right after the banner: why ``--mode auto`` chose processes.
    note: tuple[int, str] | None = None


def choose_layout(config: Config, *, in_child: Callable[[], None], interrupted: Callable[[], bool]) -> Layout:
    """Import the app here (``--preload``), in a probe process (when the mode depends on
    what the import does to the GIL) or not at all, and plan the workers.

    ``in_child`` runs first thing in the probe process; ``interrupted`` says whether a stop
    signal arrived meanwhile (the probe is killed then).
    """
    if config.workers_max_rss is not None:
        import_psutil()
    gil_at_start = gil_enabled()
    app: Any = None
    gil: GILReport | None = None
    interface: str | None = None
    if config.preload or not isinstance(config.app, str):
        app, gil, interface = load_app(config)
    elif config.mode == "auto" and config.workers is None and free_threaded_build() and not gil_at_start:
        gil, interface = probe_app(config, in_child=in_child, interrupted=interrupted)
    plan = config.plan(gil.after if gil is not None else gil_at_start)
    note = None
    if config.mode == "auto" and plan.mode == "processes" and config.workers is None:
        if free_threaded_build():
            report = gil or GILReport(before=True, after=True)
            note = (logging.WARNING, f"{report.describe()}: running {plan.describe()} (--mode auto; --mode threads keeps one process)")
        else:
            note = (logging.INFO, f"Regular (GIL) build of CPython: running {plan.describe()} (--mode auto)")
    return Layout(plan, app, gil, interface, note)


def import_psutil() -> None:
    """psutil reads the workers' memory. Imported only when needed, and watched: an
    extension that turns the GIL on in the supervisor would turn it on in every worker
    forked from it (an old psutil without free-threaded support does)."""
    try:
        _, report = watch_gil(lambda: __import__("psutil"))
    except ImportError:
        raise SupervisorError("--workers-max-rss needs psutil (pip install psutil)") from None
    if report.reenabled:
        logger.warning(
            "%s (psutil, imported for --workers-max-rss): the workers inherit the GIL; "
            "install a psutil with free-threading support (7.1 or newer)",
            report.describe(),
        )


def probe_app(config: Config, *, in_child: Callable[[], None], interrupted: Callable[[], bool]) -> tuple[GILReport, str]:
    """Import the app in a throw-away child to learn whether it turns the GIL on, and its
    interface.

    The supervisor itself stays free of the app's modules, so that every worker it forks
    later imports the code afresh (what SIGHUP relies on).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            in_child()
            try:
                loaded = load_app(config)
                payload: dict[str, Any] = {"gil": loaded.gil.as_dict(), "interface": loaded.interface}
            except (AppLoadError, ConfigError) as exc:
                payload = {"error": str(exc)}
            except BaseException as exc:  # noqa: BLE001 - the app's own import-time bug
                payload = {"error": str(AppImportError(config.app, exc)).rstrip("\n")}
            os.write(write_fd, json.dumps(payload).encode())
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + config.startup_timeout
    with selectors.DefaultSelector() as sel:
        sel.register(read_fd, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or interrupted():
                os.kill(pid, signal.SIGKILL)
                break
            if sel.select(min(left, POLL_INTERVAL)):
                data = os.read(read_fd, 65536)
                if not data:
                    break
                chunks.append(data)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if interrupted():
        raise SupervisorError("interrupted while importing the app", EXIT_FORCED)
    if not chunks:
        code = os.waitstatus_to_exitcode(status)
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        if time.monotonic() >= deadline:
            how = f"not done within --startup-timeout {config.startup_timeout:g} s"
        raise SupervisorError(f"importing the app failed ({how})")
    result = json.loads(b"".join(chunks))
    if "error" in result:
        raise SupervisorError(result["error"])
    return GILReport.from_dict(result["gil"]), result["interface"]
