"""Before the first fork: how many worker processes of how many threads (``Config.plan``).

With ``--preload`` (or an app object) the supervisor imports the app itself. With
``--mode auto`` on a free-threaded build the layout depends on whether the app's import
turns the GIL on: the first worker process imports it and decides (``Layout.plan_if_gil``),
so the app is imported once, not once more in a probe. psutil (``--workers-max-rss``) is
imported here, watched the same way: workers inherit it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ftserver.config import Config, WorkerPlan
from ftserver.runtime import GILReport, free_threaded_build, gil_enabled, watch_gil
from ftserver.startup import SupervisorError, load_app

logger = logging.getLogger("ftserver.error")


@dataclass
class Layout:
    """What the supervisor runs, decided once at start-up."""

    plan: WorkerPlan
    #: The preloaded app (``--preload``, or an app object), else ``None``.
    app: Any = None
    #: What importing the app did to the GIL, when it was imported here.
    gil: GILReport | None = None
    interface: str | None = None
    #: (level, message) logged right after the banner: why ``--mode auto`` chose processes.
    note: tuple[int, str] | None = None
    #: Not decided yet: ``plan`` holds if the app's import leaves the GIL off, this one if
    #: it turns it on. The first worker process imports the app and runs the one that
    #: holds (one thread, of this plan's processes, if the GIL came on); the supervisor
    #: learns which from its ``ready`` message and starts the other processes then.
    plan_if_gil: WorkerPlan | None = None


def choose_layout(config: Config) -> Layout:
    """Import the app here (``--preload``) or not at all, and plan the workers."""
    if config.workers_max_rss is not None:
        import_psutil()
    gil_at_start = gil_enabled()
    if config.preload or not isinstance(config.app, str):
        app, gil, interface = load_app(config)
        plan = config.plan(gil.after)
        return Layout(plan, app, gil, interface, mode_note(config, plan, gil))
    if config.mode == "auto" and config.workers is None and free_threaded_build() and not gil_at_start:
        return Layout(config.plan(False), plan_if_gil=config.plan(True))
    plan = config.plan(gil_at_start)
    return Layout(plan, note=mode_note(config, plan, None))


def mode_note(config: Config, plan: WorkerPlan, gil: GILReport | None) -> tuple[int, str] | None:
    """Why ``--mode auto`` chose processes (logged after the banner), if it did."""
    if config.mode != "auto" or plan.mode != "processes" or config.workers is not None:
        return None
    if free_threaded_build():
        report = gil or GILReport(before=True, after=True)
        return (logging.WARNING, f"{report.describe()}: running {plan.describe()} (--mode auto; --mode threads keeps one process)")
    return (logging.INFO, f"Regular (GIL) build of CPython: running {plan.describe()} (--mode auto)")


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
