"""Hot reload for development, ``ftserve --reload``: a parent that binds the socket once and
runs the server as a child (``--fd N``), restarted when a watched file changes
(docs/supervisor.md, "--reload").
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from ftserver.config import Config
from ftserver.logs import configure_logging_for
from ftserver.net import close_listeners
from ftserver.startup import Listening, bind_listener, install_signal_handlers

logger = logging.getLogger("ftserver.error")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", "*.py[cod]", "__pycache__", ".venv*", "venv", "site-packages", "node_modules", "*~")

# Options that belong to the reloader, or that the child replaces with --fd.
PARENT_ONLY_OPTIONS = frozenset({"reload", "reload_dirs", "reload_includes", "reload_excludes", "reload_delay", "host", "port", "uds", "uds_permissions", "fd"})
#: Options the child gets in its environment, not on its command line (which any user can read).
SECRET_OPTIONS = ("ssl_keyfile_password",)
#: --drain-delay stays with the reloader too: a restart on a change does not wait for it.
PARENT_ONLY_OPTIONS |= {"drain_delay"}

Snapshot = dict[str, tuple[int, int]]


# -- what to watch ---------------------------------------------------------------------


class GlobSet:
    """Glob patterns (``fnmatch``) matched against a file or directory name, or against its
    path relative to the watched directory when the pattern has a ``/``. Compiled into one
    regular expression per kind: a scan matches thousands of names."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)
        self._name = _compile(p for p in self.patterns if "/" not in p)
        self._path = _compile(p for p in self.patterns if "/" in p)

    def matches(self, name: str, parent: str) -> bool:
        """``parent`` is the relative path of the directory holding ``name``, with a trailing ``/``."""
        if self._name is not None and self._name(name) is not None:
            return True
        return self._path is not None and self._path(parent + name) is not None


def _compile(patterns: Iterable[str]) -> Callable[[str], Any] | None:
    regexes = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(regexes)).match if regexes else None


class FileWatcher:
    """Finds the watched files under ``dirs`` and tells what changed between two scans.

    A file is watched when its name (or its path relative to the watched directory)
    matches an include pattern and neither it nor any directory on the way matches an
    exclude pattern; excluded directories are not entered, symbolic links to directories
    are not followed. The user's own includes win over the default excludes for file
    names (``--reload-include .env`` watches ``.env``); the user's excludes win over
    everything. The watched directories themselves are never excluded.
    """

    def __init__(self, dirs: Iterable[Path | str], includes: Iterable[str] = (), excludes: Iterable[str] = ()) -> None:
        self.dirs = tuple(Path(d) for d in dirs)
        self.user_includes = GlobSet(includes)
        self.user_excludes = GlobSet(excludes)
        self.includes = GlobSet(DEFAULT_INCLUDES + tuple(p for p in includes if p not in DEFAULT_INCLUDES))
        self.excludes = GlobSet(DEFAULT_EXCLUDES + tuple(p for p in excludes if p not in DEFAULT_EXCLUDES))

    @classmethod
    def from_config(cls, config: Config) -> FileWatcher:
        """``--reload-dir`` (default: the app directory), with nested directories counted once."""
        resolved: list[Path] = []
        for path in (Path(d).resolve() for d in config.reload_dirs or (config.app_dir or ".",)):
            if not any(path.is_relative_to(other) for other in resolved):
                resolved = [other for other in resolved if not other.is_relative_to(path)] + [path]
        return cls(resolved, config.reload_includes, config.reload_excludes)

    def describe(self) -> str:
        dirs = ", ".join(_display(d) for d in self.dirs)
        return f"{dirs} (include {' '.join(self.includes.patterns)}; exclude {' '.join(self.excludes.patterns)})"

    def snapshot(self) -> Snapshot:
        """``{path: (mtime_ns, size)}`` for every watched file now."""
        found: Snapshot = {}
        for root in self.dirs:
            self._scan(root, "", found)
        return found

    def _scan(self, directory: Path | str, parent: str, found: Snapshot) -> None:
        try:
            entries = os.scandir(directory)
        except OSError:  # removed or unreadable meanwhile: the next scan will tell
            return
        with entries:
            for entry in entries:
                name = entry.name
                try:
                    is_dir = entry.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if not self.excludes.matches(name, parent):
                        self._scan(entry.path, f"{parent}{name}/", found)
                    continue
                if not self._wanted(name, parent):
                    continue
                try:
                    st = entry.stat()  # follows a symlink to the file it names
                except OSError:
                    continue
                found[entry.path] = (st.st_mtime_ns, st.st_size)

    def _wanted(self, name: str, parent: str) -> bool:
        if self.user_excludes.matches(name, parent):
            return False
        if self.user_includes.matches(name, parent):
            return True
        return self.includes.matches(name, parent) and not self.excludes.matches(name, parent)


def changed_paths(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths added, removed or modified between two snapshots, sorted."""
    changed = {path for path, stat in after.items() if before.get(path) != stat}
    changed.update(path for path in before if path not in after)
    return sorted(changed)


# -- the child's command line ------------------------------------------------------------


def server_command(config: Config) -> list[str]:
    """``python -m ftserver`` with ``config``'s options, minus the reloader's own.

    Each ``Config`` field is the CLI option of the same name (``limit_request_body`` is
    ``--limit-request-body``; a test holds every field to it). Values left at their default
    are not repeated; the reloader adds ``--fd N``.
    """
    defaults = Config(app=config.app)
    args: list[str] = []
    for field in fields(Config):
        name = field.name
        value = getattr(config, name)
        if name == "app" or name in PARENT_ONLY_OPTIONS or name in SECRET_OPTIONS or value is None or value == getattr(defaults, name):
            continue
        option = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(option if value else "--no-" + option[2:])
        else:
            for item in value if isinstance(value, tuple) else (value,):
                args += [option, str(item)]
    return [sys.executable, *_interpreter_flags(), "-m", "ftserver", *args, "--", str(config.app)]


def _interpreter_flags() -> list[str]:
    """-X/-W/-O flags of this interpreter, so that the child runs like the parent."""
    try:
        return subprocess._args_from_interpreter_flags()  # type: ignore[attr-defined]  # what multiprocessing uses
    except Exception:  # noqa: BLE001 - a private helper; without it the child runs with defaults
        return []


def child_environment() -> dict[str, str]:
    """This environment without ``FTSERVE_*``: the child's configuration is its command line
    (the CLI folded those variables into the Config already)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("FTSERVE_")}


# -- the reloader ------------------------------------------------------------------------


class Reloader(Listening):
    """Runs the server in a child process and restarts it when a watched file changes.

    ``command`` is the child's command line without the socket (default:
    :func:`server_command`); the reloader adds ``--fd N``. ``run()`` must be called from
    the main thread (it handles SIGINT/SIGTERM); it blocks until one of them and returns
    the exit code: the child's, or 0 when no child was running.
    """

    def __init__(self, config: Config, command: Sequence[str] | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(config)
        self.config = config
        self.command = server_command(config) if command is None else list(command)
        self.env = child_environment() if env is None else env
        for name in SECRET_OPTIONS:
            if getattr(config, name) is not None:
                self.env[f"FTSERVE_{name.upper()}"] = getattr(config, name)
        self.watcher = FileWatcher.from_config(config)
        self.listener: socket.socket | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stop_timeout = config.timeout_graceful_shutdown + 10  # the child's own drain, plus lifespan shutdown
        self._events: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._exit_reported = False
        self._stop_requested = False
        self._pid = os.getpid()
        self._prctl = _load_prctl()

    def run(self) -> int:
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("the reloader handles signals: run it in the main thread")
        configure_logging_for(self.config, files=False)
        # With --accept reuseport the child binds more sockets beside this one.
        self.listener = bind_listener(self.config, reuse_port=self.config.accept == "reuseport")
        self.take_address(self.listener, inherited=True)  # named as the server process will name it
        restore = install_signal_handlers((signal.SIGINT, signal.SIGTERM), self._on_signal)
        try:
            logger.info("Watching %s for changes (stat polling every %ss)", self.watcher.describe(), self.config.reload_delay)
            logger.info("Reloader process %d holds %s across restarts of the server process", os.getpid(), self.url)
            snapshot = self.watcher.snapshot()
            self._start_child()
            while True:
                try:
                    signum = self._events.get(timeout=self.config.reload_delay)
                except queue.Empty:
                    pass
                else:
                    logger.info("Reloader received %s: stopping the server process", signal.Signals(signum).name)
                    self._stop_requested = True
                    return self._exit_code(self._stop_child())
                self._check_child()
                now = self.watcher.snapshot()
                if now == snapshot:
                    continue
                now = self._settle(now)
                changes = changed_paths(snapshot, now)
                snapshot = now
                if not changes:  # a file created and removed again, say
                    continue
                logger.warning("Detected changes in %s: reloading", _list_paths(changes))
                code = self._stop_child()
                if self._stop_requested:  # signalled while the old server drained
                    return self._exit_code(code)
                self._start_child()
        finally:
            if self.process is not None and self.process.poll() is None:  # an exception above: no orphans
                self.process.kill()
                self.process.wait()
            self._close_listener()
            restore()

    # -- the socket ------------------------------------------------------------------

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        if self.config.fd is not None:
            self.listener.detach()  # the caller's socket, not ours to close
        else:
            close_listeners([self.listener], self.config.uds)
        self.listener = None

    # -- the child -------------------------------------------------------------------

    def _start_child(self) -> None:
        assert self.listener is not None
        fd = self.listener.fileno()
        # "--fd N" goes before the "--" that ends the options.
        split = self.command.index("--") if "--" in self.command else len(self.command)
        command = [*self.command[:split], "--fd", str(fd), *self.command[split:]]
        self.process = subprocess.Popen(command, env=self.env, pass_fds=(fd,), preexec_fn=self._child_setup)
        self._exit_reported = False
        logger.info("Started server process %d", self.process.pid)

    def _child_setup(self) -> None:
        """Runs in the child between fork and exec (the reloader has no other thread)."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # stays ignored across exec; see the module docstring
        if self._prctl is not None:
            self._prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != self._pid:  # the reloader died before prctl took effect
            os._exit(1)

    def _check_child(self) -> None:
        process = self.process
        if process is None or self._exit_reported or process.poll() is None:
            return
        self._exit_reported = True
        code = process.returncode
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        logger.error("Server process %d %s; waiting for changes to reload", process.pid, how)

    def _stop_child(self) -> int | None:
        """Stop the child and return its exit code.

        SIGTERM (a graceful drain); a signal to the reloader meanwhile asks to exit once the
        child is gone, and the one after that forces the child (its second SIGTERM);
        SIGKILL if it is still there after ``stop_timeout``.
        """
        process = self.process
        if process is None:
            return None
        if process.poll() is not None:
            return process.returncode
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while True:
            try:
                return process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            try:
                signum = self._events.get_nowait()
            except queue.Empty:
                pass
            else:
                if not self._stop_requested:
                    self._stop_requested = True
                    logger.info("Reloader received %s: exiting once the server process has stopped", signal.Signals(signum).name)
                else:
                    logger.warning("Reloader received %s again: forcing the server process to stop", signal.Signals(signum).name)
                    process.send_signal(signal.SIGTERM)  # the server's second signal: forced shutdown
            if time.monotonic() > deadline:
                logger.error("Server process %d did not stop within %ss: killing it", process.pid, self.stop_timeout)
                process.kill()
                return process.wait()

    def _exit_code(self, returncode: int | None) -> int:
        if returncode is None or self._exit_reported:
            return 0  # no server was running: stopping the reloader is a clean exit
        return 128 - returncode if returncode < 0 else returncode

    def _settle(self, snapshot: Snapshot) -> Snapshot:
        """Wait until a burst of writes (an editor's save, a git checkout) is over."""
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            time.sleep(0.05)
            again = self.watcher.snapshot()
            if again == snapshot:
                break
            snapshot = again
        return snapshot

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._events.put(signum)


_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Any:
    """libc's prctl on Linux (loaded before any fork), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes  # only the reloader needs it

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _display(path: Path | str) -> str:
    """A path relative to the current directory when it is inside it."""
    path = Path(path)
    try:
        rel = path.relative_to(Path.cwd())
    except (ValueError, OSError):  # outside it, or the current directory is gone
        return str(path)
    return str(rel) if str(rel) != "." else "."


def _list_paths(paths: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(_display(p)) for p in paths[:limit])
    if len(paths) > limit:
        shown += f" and {len(paths) - limit} more"
    return shown
