"""Running under a service manager: systemd's ``sd_notify`` protocol (``Notifier``),
socket activation (``activated_socket``) and the ``--drain-delay`` before a graceful
stop (``Lifecycle``). ``docs/deployment.md`` shows them at work.

systemd's variables are read once, by the process systemd started (the supervisor, or a
``--no-supervisor`` server), and removed, so that the worker processes and whatever the
app starts neither notify nor take the activated sockets.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import MutableMapping

from ftserver.config import Config, ConfigError

logger = logging.getLogger("ftserver.error")

#: systemd passes activated sockets from this descriptor on (sd_listen_fds(3)).
LISTEN_FDS_START = 3
#: The ``FileDescriptorName=`` that picks the socket to serve when several are passed.
FDNAME = "ftserve"
#: How long a state message (READY, STOPPING...) waits for room in the manager's queue.
SEND_WAIT = 1.0
#: State messages kept to resend while the manager's queue stays full (the oldest dropped).
MAX_PENDING = 8
#: Seconds between two tries at resending them.
RETRY_INTERVAL = 0.1


class Notifier:
    """Sends ``sd_notify`` messages (``READY=1``, ``STOPPING=1``, ``WATCHDOG=1``...) to
    ``NOTIFY_SOCKET``, a Unix datagram socket (``@name``: Linux's abstract namespace).

    Without an address it does nothing. A failure to send is logged once and never raised:
    the server keeps serving whatever the service manager does. A state message that found
    the manager's queue full is kept and sent again, in order, before anything else
    (``tick``): a queue full of watchdog pings never loses ``READY=1``.
    """

    def __init__(self, address: str | None = None, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        if self.address is not None and self.address.startswith("@"):
            self.address = "\0" + self.address[1:]
        #: Seconds between two ``WATCHDOG=1`` (half of ``WATCHDOG_USEC``), or ``None``.
        self.watchdog_interval = watchdog_usec / 2e6 if watchdog_usec and self.address else None
        self.next_ping = 0.0
        self._sock: socket.socket | None = None
        self._warned = False
        self._pending: list[tuple[str, ...]] = []

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier ``NOTIFY_SOCKET`` and ``WATCHDOG_USEC``/``WATCHDOG_PID`` describe;
        the variables are removed (sd_notify's ``unset_environment``)."""
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None)
        usec, pid = env.pop("WATCHDOG_USEC", ""), env.pop("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isdigit() and int(usec) > 0 else None
        if pid and pid != str(os.getpid()):
            watchdog = None  # the watchdog is another process's to feed
        if address and not address.startswith(("/", "@")):
            logger.warning("NOTIFY_SOCKET=%r: only Unix socket paths and @abstract names are supported; not notifying", address)
            address = None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str, wait: float = SEND_WAIT) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one message; whether it went.

        A manager whose queue is full (it is not reading) gets ``wait`` seconds to make room;
        then the message is kept for ``tick`` to resend (a ``WATCHDOG=1`` ping is not: the
        next is as good): a hung manager slows the main loop, never stops it.
        """
        if self.address is None:
            return False
        if (not self._pending or self._flush()) and self._deliver(fields, wait):
            return True  # (kept ones not all sent: this one waits in line behind them)
        if fields != ("WATCHDOG=1",):
            self._pending.append(fields)
            del self._pending[:-MAX_PENDING]
        return False

    def _deliver(self, fields: tuple[str, ...], wait: float) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                # Connected: then a full queue makes the socket unwritable, and the wait sleeps.
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.connect(self.address)
            self._sock.settimeout(wait)
            self._sock.send("\n".join(fields).encode())
            return True
        except OSError as exc:  # TimeoutError and BlockingIOError included
            if not isinstance(exc, (TimeoutError, BlockingIOError)):
                self.close()  # gone (or never there): connect again next time
            if not self._warned:
                self._warned = True
                logger.warning("sd_notify: cannot send to NOTIFY_SOCKET %r: %s", self.address.replace("\0", "@"), exc)
            return False

    def _flush(self) -> bool:
        """Resend the kept state messages, oldest first, while there is room; whether all went."""
        while self._pending:
            if not self._deliver(self._pending[0], 0.0):
                return False
            del self._pending[0]
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self, status: str) -> None:
        """``RELOADING=1``; ``ready()`` follows once the new workers serve."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.send(f"STATUS={status}")

    def tick(self, now: float) -> float:
        """Resend kept state messages, feed the watchdog if due; the seconds until this is
        wanted again (``inf``: never)."""
        if self._pending and not self._flush():
            return RETRY_INTERVAL  # (no ping either: it would not fit, and would come first)
        interval = self.watchdog_interval
        if interval is None:
            return math.inf
        if now >= self.next_ping:
            self.send("WATCHDOG=1", wait=0.0)  # the next ping is as good
            self.next_ping = now + interval
        return self.next_ping - now

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class Lifecycle:
    """What a stop signal means (``--drain-delay``), and what the service manager is told:
    the one policy of the supervisor and of a ``--no-supervisor`` server.

    The first SIGTERM with a drain delay starts the drain: the server keeps serving
    normally (a load balancer or Kubernetes stops sending new traffic meanwhile) and the
    graceful stop begins once the delay is over. A second SIGINT/SIGTERM ends the drain at
    once; a signal during the graceful stop forces it.
    """

    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.drain_delay = config.drain_delay
        self.grace = config.timeout_graceful_shutdown
        self.notifier = notifier or Notifier()
        self.drain_until: float | None = None
        self.stopping = False

    @property
    def draining(self) -> bool:
        return self.drain_until is not None

    def stop_signal(self, name: str) -> str:
        """Log what SIGINT/SIGTERM (``name``) does now: ``"drain"``, ``"stop"`` (the graceful
        stop begins: ``begin_stop`` was called) or ``"force"``."""
        if self.stopping:
            logger.warning("Received %s again: forcing shutdown", name)
            return "force"
        if self.drain_until is not None:
            logger.info("Received %s while draining: shutting down gracefully now (again to force)", name)
        elif name == "SIGTERM" and self.drain_delay > 0:
            self.drain_until = time.monotonic() + self.drain_delay
            logger.info("Received SIGTERM: draining for %gs (still serving), then shutting down gracefully (again to skip the delay)", self.drain_delay)
            self.notifier.stopping(f"Draining: still serving for {self.drain_delay:g}s, then shutting down")
            return "drain"
        else:
            logger.info("Received %s: shutting down gracefully (again to force)", name)
        self.begin_stop()
        return "stop"

    def drain_ended(self, now: float) -> bool:
        """Whether a drain in progress has just lasted its delay (the graceful stop begins)."""
        if self.drain_until is None or now < self.drain_until or self.stopping:
            return False
        logger.info("Drain delay of %gs over: shutting down gracefully", self.drain_delay)
        self.begin_stop()
        return True

    def begin_stop(self) -> None:
        """The graceful stop begins (or the server stops on an error): tell the manager."""
        if not self.stopping:
            self.stopping = True
            self.drain_until = None
            self.notifier.stopping(f"Stopping: in-flight requests get up to {self.grace:g}s")

    def timeout(self, now: float, longest: float) -> float:
        """How long the main loop may wait: feeds the watchdog on the way."""
        wait = min(longest, self.notifier.tick(now))
        if self.drain_until is not None and not self.stopping:
            wait = min(wait, max(0.0, self.drain_until - now))
        return wait


def activated_socket(config: Config, environ: MutableMapping[str, str] | None = None) -> tuple[Config, str | None]:
    """``config`` serving the socket systemd passed (``LISTEN_FDS``, ``LISTEN_PID``), and a
    line saying so; ``config`` itself when there is none for this process or ``--fd`` is given.

    With several sockets the one named ``ftserve`` (``FileDescriptorName=``, seen in
    ``LISTEN_FDNAMES``) is served. The variables are removed and the descriptors made
    non-inheritable, so that nothing the app starts takes them.
    """
    env = os.environ if environ is None else environ
    count, pid, names = env.get("LISTEN_FDS", ""), env.get("LISTEN_PID", ""), env.get("LISTEN_FDNAMES", "")
    if not count or pid != str(os.getpid()):
        return config, None  # none, or another process's (an app that re-execs must not reuse them)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not count.isdigit() or int(count) < 1:
        raise ConfigError(f"fd: LISTEN_FDS={count!r} is not a number of sockets")
    fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)))
    for fd in fds:
        try:
            os.set_inheritable(fd, False)
        except OSError:
            pass
    labels = names.split(":") if names else []
    if len(fds) == 1:
        fd = fds[0]
    elif FDNAME in labels[: len(fds)]:
        fd = fds[labels.index(FDNAME)]
    else:
        raise ConfigError(f"fd: systemd passed {len(fds)} sockets (names: {names or 'none'}); ftserve serves one: name it with FileDescriptorName={FDNAME}")
    if config.fd is not None:
        return config, f"Socket activation: --fd {config.fd} given, the socket systemd passed on fd {fd} is not served"
    label = f" ({labels[fds.index(fd)]})" if len(labels) == len(fds) else ""
    return config.replace(fd=fd, uds=None), f"Socket activation: serving the socket systemd passed on fd {fd}{label}"
