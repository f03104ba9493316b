"""``--metrics``: Prometheus text exposition on a listener of its own.

Each worker thread counts in a ``ThreadMetrics`` of its own (no shared object on the request
path) and copies its counters once a second (``tick``) into its slot of a ``MetricsBoard``, a
file of doubles per process in a directory that the serving processes share
(``FTSERVER_METRICS_DIR``). ``MetricsEndpoint`` (in the supervisor, or the server process
with ``--no-supervisor``) sums the slots of every process when scraped, so worker processes
are merged; counters of processes that have exited are kept. See docs/metrics.md.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
import tempfile
import threading
from bisect import bisect_right
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import perf_counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftserver.interfaces.stream import Exchange
    from ftserver.protocols.events import Request

logger = logging.getLogger("ftserver.error")

#: The environment variable naming the shared directory of boards (inherited by workers).
DIR_ENV = "FTSERVER_METRICS_DIR"
#: Upper bounds (seconds) of the latency histogram's buckets (Prometheus' defaults); +Inf last.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
VERSIONS = ("1.0", "1.1", "2")
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")

# One slot: request counts by version and status class, the histogram, then the scalars.
_REQUESTS = 0
_BUCKETS = _REQUESTS + len(VERSIONS) * len(CLASSES)
_SUM = _BUCKETS + len(BUCKETS) + 1
_BYTES_OUT = _SUM + 1
_OPENED = _BYTES_OUT + 1
_CLOSED = _OPENED + 1
_OPEN = _CLOSED + 1  # a gauge
_LAG = _OPEN + 1  # a gauge: the loop's lateness at its last tick
_LAG_MAX = _LAG + 1  # a counter-like maximum since start
_ALIVE = _LAG_MAX + 1  # 1.0 while the thread runs (gauges of exited threads are not summed)
_REFUSED = _ALIVE + 1  # requests answered 503 by --limit-concurrency
SLOT_SIZE = _REFUSED + 1
_DOUBLE = struct.calcsize("d")


class ThreadMetrics:
    """The counters of one worker thread, written by that thread only.

    A response costs four items added to ``done`` (``report``); the once-a-second ``tick``
    folds them into the counters with C-level passes over slices of ``done`` before
    publishing, so the counts and buckets stay exact. (Flat, not a tuple per response: no
    container stays alive for the garbage collector to walk.)
    """

    def __init__(self, board: MetricsBoard, slot: int) -> None:
        self.view = board.slot(slot)
        # A replacement thread of the same slot goes on from its predecessor's counters.
        self.values = list(self.view)
        # Per-thread copies: no module-level dict or tuple read on the request path.
        self.index = {version: _REQUESTS + i * len(CLASSES) for i, version in enumerate(VERSIONS)}
        self.buckets = tuple(BUCKETS)
        self.expected = 0.0
        self.values[_ALIVE] = 1.0
        #: HTTP version, status, body bytes and seconds of each response since the last fold.
        self.done: list[str | int | float] = []
        self.extend = self.done.extend

    def report(self, exchange: Exchange, client: object, started_at: float) -> None:
        """One complete response (``WorkerHost.report_response`` has this signature, and
        is this method when there is no access log to write)."""
        self.extend((exchange.request.http_version, exchange.status, exchange.response_bytes, perf_counter() - started_at))

    def observe(self, request: Request, status: int, nbytes: int, duration: float) -> None:
        """One complete response, told field by field."""
        self.extend((request.http_version, status, nbytes, duration))

    def fold(self) -> None:
        """Count the responses ``report`` and ``observe`` noted."""
        done = self.done
        if not done:
            return
        versions, statuses, durations = done[0::4], done[1::4], done[3::4]
        values = self.values
        values[_BYTES_OUT] += sum(done[2::4])
        done.clear()
        count = len(versions)
        if versions.count(versions[0]) == count:  # the usual batch: one version
            tally = {(versions[0], status): n for status, n in _tally(statuses).items()}
        else:
            tally = Counter(zip(versions, statuses))
        index = self.index
        for (version, status), n in tally.items():
            klass = status // 100 - 1  # type: ignore[operator]
            first = index.get(version, _REQUESTS + len(CLASSES))  # 1.1 if unknown
            values[first + (klass if 0 <= klass < 5 else 4)] += n
        values[_SUM] += sum(durations)  # type: ignore[arg-type]
        buckets = self.buckets
        if max(durations) <= buckets[0]:  # type: ignore[type-var]
            values[_BUCKETS] += count  # the usual batch: all in the first bucket, no sort
            return
        durations.sort()  # type: ignore[call-arg]
        below = 0
        for at, bound in enumerate(buckets, _BUCKETS):
            upto = bisect_right(durations, bound)  # type: ignore[arg-type]  # (upper bounds: le)
            values[at] += upto - below
            below = upto
        values[_BUCKETS + len(buckets)] += count - below

    def server_response(self, status: int) -> None:
        """A response the server made to bytes that were no request (400, 408...)."""
        values = self.values
        values[_REQUESTS + len(CLASSES) + min(max(status // 100 - 1, 0), 4)] += 1

    def refused(self) -> None:
        """A request refused by ``--limit-concurrency`` (its 503 is also observed as a response)."""
        self.values[_REFUSED] += 1

    def tick(self, now: float, opened: int, closed: int) -> None:
        """Once a second on the worker's loop: the loop's lag, then publish."""
        values = self.values
        if self.expected:
            lag = max(0.0, now - self.expected)
            values[_LAG] = lag
            if lag > values[_LAG_MAX]:
                values[_LAG_MAX] = lag
        self.expected = now + 1.0
        values[_OPENED] = opened
        values[_CLOSED] = closed
        values[_OPEN] = opened - closed
        self.fold()
        self.publish()

    def publish(self) -> None:
        view = self.view
        for index, value in enumerate(self.values):
            view[index] = value

    def stop(self) -> None:
        self.fold()
        self.values[_ALIVE] = 0.0
        self.values[_OPEN] = 0.0
        self.values[_LAG] = 0.0
        self.publish()


class MetricsBoard:
    """One process's slots (one per worker thread) in a file of the shared directory."""

    def __init__(self, directory: str, slots: int) -> None:
        self.path = os.path.join(directory, f"worker-{os.getpid()}.bin")
        size = max(1, slots) * SLOT_SIZE * _DOUBLE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            self.memory = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self.slots = max(1, slots)

    def slot(self, index: int) -> memoryview:
        if not 0 <= index < self.slots:
            raise IndexError(f"metrics slot {index} of {self.slots}")
        return memoryview(self.memory)[index * SLOT_SIZE * _DOUBLE : (index + 1) * SLOT_SIZE * _DOUBLE].cast("d")


def _tally(items: list[Any]) -> dict[Any, int]:
    """How many times each item occurs: one C-level pass when they are all the same."""
    first = items[0]
    if items.count(first) == len(items):
        return {first: len(items)}
    return Counter(items)


_boards: dict[int, MetricsBoard] = {}
_boards_lock = threading.Lock()
#: The totals the supervisor reports restarts to (set by ``MetricsEndpoint``).
active_totals: list[Totals] = []


def thread_metrics(slot: int, slots: int) -> ThreadMetrics | None:
    """The counters of the calling worker thread in this process's board (made on first
    use, after a fork too), or ``None`` when no metrics endpoint is running."""
    directory = os.environ.get(DIR_ENV)
    if not directory:
        return None
    pid = os.getpid()
    with _boards_lock:  # start-up only
        board = _boards.get(pid)
        if board is None:
            _boards.clear()  # a board inherited through fork is the parent's
            board = _boards[pid] = MetricsBoard(directory, slots)
    return ThreadMetrics(board, min(slot, board.slots - 1))


_RESTART_LABELS = (("--workers-lifetime", "lifetime"), ("--workers-max-rss", "max-rss"), ("max-requests", "max-requests"), ("heartbeat", "heartbeat"), ("reload", "reload"), ("died", "died"))


def count_restart(reason: str) -> None:
    """A worker process was replaced (the supervisor calls it with its reason in words)."""
    label = next((label for key, label in _RESTART_LABELS if key in reason), "other")
    for totals in active_totals:
        totals.count_restart(label)


class Totals:
    """Sums of every board in the directory; boards of exited processes are folded into
    ``archived`` (counters only) and removed."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.archived = [0.0] * SLOT_SIZE
        self.restarts: dict[str, int] = {}
        self.lock = threading.Lock()

    def collect(self) -> tuple[list[float], int]:
        """(the summed slot, the number of live worker threads)."""
        with self.lock:
            total = list(self.archived)
            live = 0
            for name in sorted(os.listdir(self.directory)):
                if not (name.startswith("worker-") and name.endswith(".bin")):
                    continue
                path = os.path.join(self.directory, name)
                pid = int(name[7:-4])
                try:
                    with open(path, "rb") as file:
                        data = file.read()
                except OSError:
                    continue
                slots = [struct.unpack_from(f"{SLOT_SIZE}d", data, offset) for offset in range(0, len(data) - SLOT_SIZE * _DOUBLE + 1, SLOT_SIZE * _DOUBLE)]
                alive = _process_alive(pid)
                for values in slots:
                    counted = alive and values[_ALIVE] > 0
                    live += counted
                    for index, value in enumerate(values):
                        if index == _LAG_MAX or (index == _LAG and counted):
                            total[index] = max(total[index], value)
                        elif index in (_OPEN, _ALIVE):
                            total[index] += value if counted else 0.0
                        elif index != _LAG:
                            total[index] += value
                if not alive:
                    for values in slots:
                        for index, value in enumerate(values):
                            if index == _LAG_MAX:
                                self.archived[index] = max(self.archived[index], value)
                            elif index not in (_OPEN, _LAG, _ALIVE):
                                self.archived[index] += value
                    try:
                        os.unlink(path)
                    except OSError:
                        pass
            return total, live

    def count_restart(self, reason: str) -> None:
        with self.lock:
            self.restarts[reason] = self.restarts.get(reason, 0) + 1

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        total, live = self.collect()
        lines = [
            "# HELP ftserver_requests_total Responses completed, by HTTP version and status class.",
            "# TYPE ftserver_requests_total counter",
        ]
        for i, version in enumerate(VERSIONS):
            for j, klass in enumerate(CLASSES):
                lines.append(f'ftserver_requests_total{{http_version="{version}",status="{klass}"}} {_number(total[_REQUESTS + i * len(CLASSES) + j])}')
        lines += [
            "# HELP ftserver_request_duration_seconds Time from the request head to the complete response.",
            "# TYPE ftserver_request_duration_seconds histogram",
        ]
        cumulative = 0.0
        for bound, index in zip((*BUCKETS, float("inf")), range(_BUCKETS, _SUM)):
            cumulative += total[index]
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'ftserver_request_duration_seconds_bucket{{le="{le}"}} {_number(cumulative)}')
        lines.append(f"ftserver_request_duration_seconds_sum {total[_SUM]!r}")
        lines.append(f"ftserver_request_duration_seconds_count {_number(cumulative)}")
        scalars = (
            ("ftserver_response_body_bytes_total", "counter", "Response body bytes sent.", total[_BYTES_OUT]),
            ("ftserver_connections_opened_total", "counter", "Connections accepted.", total[_OPENED]),
            ("ftserver_connections_closed_total", "counter", "Connections closed.", total[_CLOSED]),
            ("ftserver_connections_open", "gauge", "Connections open now.", total[_OPEN]),
            ("ftserver_event_loop_lag_seconds", "gauge", "The largest lateness of a worker thread's loop at its last once-a-second tick.", total[_LAG]),
            ("ftserver_event_loop_lag_max_seconds", "gauge", "The largest loop lateness seen since start.", total[_LAG_MAX]),
            ("ftserver_worker_threads", "gauge", "Worker threads serving now.", float(live)),
            ("ftserver_requests_refused_total", "counter", "Requests answered 503 by --limit-concurrency.", total[_REFUSED]),
        )
        for name, kind, help_text, value in scalars:
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {_number(value)}"]
        lines += ["# HELP ftserver_worker_restarts_total Worker processes replaced, by reason.", "# TYPE ftserver_worker_restarts_total counter"]
        with self.lock:
            restarts = dict(self.restarts)
        for reason, count in sorted(restarts.items()):
            lines.append(f'ftserver_worker_restarts_total{{reason="{reason}"}} {count}')
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) else repr(value)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) counts as exited
        with open(f"/proc/{pid}/stat", "rb") as file:
            return file.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class MetricsEndpoint:
    """The ``/metrics`` listener (a thread of its own) and the shared directory of boards."""

    def __init__(self, host: str, port: int) -> None:
        self.directory = tempfile.mkdtemp(prefix="ftserver-metrics-")
        os.environ[DIR_ENV] = self.directory  # the worker processes (and this one) find it
        self.totals = Totals(self.directory)
        totals = self.totals

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = totals.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
                pass

        try:
            self.server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            from ftserver.config import ConfigError

            raise ConfigError(f"metrics: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.server.daemon_threads = True
        active_totals[:] = [totals]
        self.thread = threading.Thread(target=self.server.serve_forever, name="ftserver-metrics", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/metrics"

    def start(self) -> None:
        self.thread.start()
        logger.info("Metrics on %s", self.url)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        for name in os.listdir(self.directory):
            try:
                os.unlink(os.path.join(self.directory, name))
            except OSError:
                pass
        try:
            os.rmdir(self.directory)
        except OSError:
            pass
        if os.environ.get(DIR_ENV) == self.directory:
            del os.environ[DIR_ENV]
        active_totals.clear()
