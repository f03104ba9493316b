"""``ftserve`` under a service manager (ftserver/service.py): the ``sd_notify`` messages a
fake ``NOTIFY_SOCKET`` receives from a real ``ftserve``, socket activation through
``LISTEN_FDS``, and ``--drain-delay``; threads mode, process mode and ``--no-supervisor``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftserver.config import Config, ConfigError
from ftserver.service import Notifier, activated_socket
from tests.ftserve_process import FREE_THREADED, FTSERVE, ROOT, Served, get, refused, start_ftserve, wait_for

ENV_APP = "tests.test_service:env_app"

#: The layouts every test runs in: threads mode (one worker process of 2 threads),
#: process mode (2 worker processes) and the server in the ftserve process itself.
MODES = {
    "threads": ("--mode", "threads", "--threads", "2"),
    "processes": ("--mode", "processes", "--threads", "2"),
    "no-supervisor": ("--no-supervisor", "--mode", "threads", "--threads", "2"),
}
if not FREE_THREADED:
    MODES["threads"] = ("--mode", "threads", "--threads", "1")
    MODES["no-supervisor"] = ("--no-supervisor", "--mode", "threads", "--threads", "1")


async def env_app(scope, receive, send):  # type: ignore[no-untyped-def]
    """Answers with the service variables the worker process still sees, and its pid."""
    if scope["type"] != "http":
        return
    names = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
    body = json.dumps({"pid": os.getpid(), **{name: os.environ.get(name) for name in names}}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class FakeNotifySocket:
    """What systemd listens on: a Unix datagram socket; ``messages`` as received."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.messages: list[dict[str, str]] = []
        self._closed = threading.Event()

    def start(self) -> FakeNotifySocket:
        """Read in a thread from now on, as systemd does (its queue holds 10 datagrams)."""
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        self.sock.settimeout(0.2)
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            fields["at"] = str(time.monotonic())
            self.messages.append(fields)

    def receive(self) -> None:
        time.sleep(0.02)

    def wait(self, key: str, value: str = "1", timeout: float = 20.0, after: int = 0) -> int:
        """Receive until a message from index ``after`` on has ``key=value``; its index."""
        deadline = time.monotonic() + timeout
        while True:
            for index, message in enumerate(self.messages[after:], after):
                if message.get(key) == value:
                    return index
            if time.monotonic() > deadline:
                raise AssertionError(f"no {key}={value} within {timeout} s; received: {self.messages}")
            self.receive()

    def wait_count(self, key: str, count: int, timeout: float = 20.0) -> None:
        """Receive until ``count`` messages have ``key``."""
        deadline = time.monotonic() + timeout
        while self.count(key) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {count} {key} within {timeout} s; received: {self.messages}")
            self.receive()

    def collect(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.receive()

    def count(self, key: str) -> int:
        return sum(1 for message in self.messages if key in message)

    def close(self) -> None:
        self._closed.set()
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def notify(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeNotifySocket]:
    address = str(tmp_path / "notify") if request.param == "path" else f"@ftserve-test-{uuid.uuid4().hex}"
    fake = FakeNotifySocket(address).start()
    yield fake
    fake.close()


@pytest.fixture
def started() -> Iterator[list[Served]]:
    servers: list[Served] = []
    yield servers
    for served in servers:
        served.stop()


@pytest.mark.parametrize("mode", MODES)
def test_ready_once_serving_then_stopping(mode: str, notify: FakeNotifySocket, started: list[Served]) -> None:
    served = start_ftserve(*MODES[mode], env={"NOTIFY_SOCKET": notify.address}, app=ENV_APP)
    started.append(served)
    ready = notify.wait("READY")
    assert notify.messages[ready]["STATUS"].startswith(f"Serving on {served.url}")
    if mode == "processes":
        assert len(served.workers()) == 2
    status, body = get(served.port, "/")
    assert status == 200
    seen = json.loads(body)
    # The variables were taken out of the environment: a worker (or the app's own
    # subprocesses) cannot notify in the server's name.
    assert seen["NOTIFY_SOCKET"] is None
    assert (seen["pid"] == served.pid) == (mode == "no-supervisor")
    served.signal(signal.SIGTERM)
    stopping = notify.wait("STOPPING", after=ready)
    assert notify.messages[stopping]["STATUS"].startswith("Stopping")
    assert served.proc.wait(20) == 0
    assert notify.count("READY") == 1


def test_reloading_then_ready_on_hup(notify: FakeNotifySocket, started: list[Served]) -> None:
    served = start_ftserve(*MODES["processes"], env={"NOTIFY_SOCKET": notify.address}, app=ENV_APP)
    started.append(served)
    ready = notify.wait("READY")
    old = served.workers()
    served.signal(signal.SIGHUP)
    reloading = notify.wait("RELOADING", after=ready)
    usec = int(notify.messages[reloading]["MONOTONIC_USEC"])
    assert abs(usec / 1e6 - time.monotonic()) < 30  # CLOCK_MONOTONIC, in microseconds
    again = notify.wait("READY", after=reloading)
    assert notify.messages[again]["STATUS"] == f"Serving on {served.url}: reloaded"
    served.wait_workers(2, exclude=old)  # the old workers were replaced
    assert served.output.count("is ready; stopping") == 2


@pytest.mark.parametrize("mode", ["threads", "no-supervisor"])
def test_watchdog_pings(mode: str, notify: FakeNotifySocket, started: list[Served]) -> None:
    env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000"}  # a ping every 0.1 s
    served = start_ftserve(*MODES[mode], env=env, app=ENV_APP)
    started.append(served)
    notify.wait("READY")
    notify.wait_count("WATCHDOG", 5)  # (at 10 a second: half a second on an idle machine)
    assert json.loads(get(served.port)[1])["WATCHDOG_USEC"] is None


def test_no_watchdog_pings_for_another_pid(notify: FakeNotifySocket, started: list[Served]) -> None:
    env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
    served = start_ftserve(*MODES["threads"], env=env, app=ENV_APP)
    started.append(served)
    notify.wait("READY")
    notify.collect(1.0)
    assert notify.count("WATCHDOG") == 0


def test_unreachable_notify_socket_does_not_stop_the_server(tmp_path: Path, started: list[Served]) -> None:
    served = start_ftserve(*MODES["threads"], env={"NOTIFY_SOCKET": str(tmp_path / "nobody")}, app=ENV_APP)
    started.append(served)
    assert get(served.port)[0] == 200
    served.wait_log("sd_notify: cannot send to NOTIFY_SOCKET")
    assert served.stop() == 0


@pytest.mark.parametrize("mode", ["threads", "no-supervisor"])
def test_a_notify_socket_nobody_reads_does_not_block(mode: str, tmp_path: Path, started: list[Served]) -> None:
    """The manager's queue full (systemd hung): messages are dropped, the server goes on."""
    deaf = FakeNotifySocket(str(tmp_path / "deaf"))  # never read: 10 datagrams fill it
    try:
        env = {"NOTIFY_SOCKET": deaf.address, "WATCHDOG_USEC": "20000"}  # a ping every 10 ms
        served = start_ftserve(*MODES[mode], env=env, app=ENV_APP)
        started.append(served)
        served.wait_log("sd_notify: cannot send to NOTIFY_SOCKET")
        assert get(served.port)[0] == 200
        served.signal(signal.SIGTERM)  # handled by the main loop, which must not hang in a send
        assert served.proc.wait(20) == 0
    finally:
        deaf.close()


# -- socket activation -------------------------------------------------------------------

#: Runs ftserve as systemd would: a listening socket on fd 3, LISTEN_PID the pid that execs
#: ftserve. It prints the socket's port first.
ACTIVATE = """
import os, socket, sys
listener = socket.create_server(("127.0.0.1", 0), backlog=64)
print("activated port", listener.getsockname()[1], flush=True)
if listener.fileno() == 3:
    listener.detach()
    os.set_inheritable(3, True)
else:
    os.dup2(listener.fileno(), 3)  # (inheritable)
    listener.close()
os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="web", LISTEN_PID=str(os.getpid()))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def activated(*args: str) -> tuple[Served, int]:
    """ftserve started with socket activation, and the port of the activated socket."""
    served = start_ftserve(argv=[sys.executable, "-c", ACTIVATE, *FTSERVE[1:], *args, ENV_APP])
    return served, int(served.wait_log(r"activated port (\d+)").group(1))


@pytest.mark.parametrize("mode", MODES)
def test_socket_activation(mode: str, started: list[Served]) -> None:
    # --port is ignored: the activated socket is served instead of binding.
    served, port = activated(*MODES[mode], "--port", "1")
    started.append(served)
    assert served.port == port
    served.wait_log(r"Socket activation: serving the socket systemd passed on fd 3 \(web\)")
    for _ in range(5):
        status, body = get(port)
        assert status == 200
        seen = json.loads(body)
        assert seen["LISTEN_FDS"] is None and seen["LISTEN_PID"] is None
    assert served.stop() == 0


@pytest.mark.skipif(not shutil.which("systemd-socket-activate"), reason="systemd-socket-activate is not installed")
def test_systemd_socket_activate(started: list[Served]) -> None:
    """systemd's own tool binds, and execs ftserve on the first connection."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free a moment ago
    tool = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=ftserve"]
    tool += [f"-E{name}" for name in ("PATH", "PYTHONPATH", "HOME", "LANG") if name in os.environ]
    first: list[tuple[int, str]] = []
    thread = threading.Thread(target=lambda: first.append(get_when_up(port)), daemon=True)
    thread.start()
    served = start_ftserve(argv=[*tool, *FTSERVE, *MODES["threads"], ENV_APP])
    started.append(served)
    thread.join(30)
    assert first and first[0][0] == 200  # the connection that started it was served
    assert served.port == port
    served.wait_log(r"Socket activation: serving the socket systemd passed on fd 3 \(ftserve\)")
    assert get(port)[0] == 200
    assert served.stop() == 0


def get_when_up(port: int) -> tuple[int, str]:
    """``get`` once something listens on ``port``."""
    wait_for(lambda: not refused(port), 20, "the port to listen")
    return get(port, timeout=30)


@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_socket_activation_unix(mode: str, tmp_path: Path, started: list[Served]) -> None:
    path = tmp_path / "ftserve.sock"
    script = ACTIVATE.replace('socket.create_server(("127.0.0.1", 0), backlog=64)', f"socket.socket(socket.AF_UNIX); listener.bind({str(path)!r}); listener.listen(64)")
    script = script.replace("listener.getsockname()[1]", "0")
    served = start_ftserve(argv=[sys.executable, "-c", script, *FTSERVE[1:], *MODES[mode], ENV_APP])
    started.append(served)
    assert served.url == f"unix:{path}"
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(b"GET / HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n")
        response = b""
        while data := client.recv(65536):
            response += data
    assert response.startswith(b"HTTP/1.1 200 ")
    assert served.stop() == 0
    assert path.exists()  # systemd's socket: not ours to remove


def test_activated_socket_rules(tmp_path: Path) -> None:
    config = Config(app="a:b", uds=str(tmp_path / "s"))
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1"}  # another process's
    assert activated_socket(config, env) == (config, None)
    assert env["LISTEN_FDS"] == "1"
    env = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid()), "LISTEN_FDNAMES": "metrics:web"}
    with pytest.raises(ConfigError, match="FileDescriptorName=ftserve"):
        activated_socket(config, env)
    assert env == {}  # taken out, even when refused
    r, w = os.pipe()  # fds 3.. are in use in a test process: only the choice is checked
    os.close(r), os.close(w)
    env = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getpid()), "LISTEN_FDNAMES": "metrics:ftserve"}
    chosen, line = activated_socket(config, env)
    assert chosen.fd == 4 and chosen.uds is None and line is not None and "(ftserve)" in line


def test_notifier_sends_nothing_without_address() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled and not notifier.send("READY=1")
    assert notifier.tick(0.0) == float("inf")


def test_a_state_message_that_finds_the_queue_full_is_sent_later_in_order(tmp_path: Path) -> None:
    """Pings filled the manager's queue: READY=1 (then STATUS) is kept, goes first once
    there is room, and no ping overtakes it."""
    manager = FakeNotifySocket(str(tmp_path / "slow"))  # (not reading until told)
    notifier = Notifier(manager.address, watchdog_usec=200_000)
    try:
        pings = 0
        while notifier.send("WATCHDOG=1", wait=0.0):
            pings += 1
        assert pings >= 1
        notifier.send("READY=1", "STATUS=serving", wait=0.05)
        notifier.status("still serving")
        assert notifier.tick(100.0) == pytest.approx(0.1)  # (kept: retried soon; no ping meanwhile)
        manager.sock.settimeout(1.0)
        received = [manager.sock.recv(4096) for _ in range(pings)]
        assert set(received) == {b"WATCHDOG=1"}
        notifier.tick(200.0)  # room now: the kept ones, then the ping
        after = [manager.sock.recv(4096) for _ in range(3)]
        assert after == [b"READY=1\nSTATUS=serving", b"STATUS=still serving", b"WATCHDOG=1"]
    finally:
        notifier.close()
        manager.close()


# -- --drain-delay -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_drain_delay_keeps_serving_then_stops(mode: str, notify: FakeNotifySocket, started: list[Served]) -> None:
    served = start_ftserve(*MODES[mode], "--drain-delay", "4", env={"NOTIFY_SOCKET": notify.address}, app=ENV_APP)
    started.append(served)
    ready = notify.wait("READY")
    served.signal(signal.SIGTERM)
    draining = notify.wait("STOPPING", after=ready)
    assert notify.messages[draining]["STATUS"].startswith("Draining")
    served.wait_log("Received SIGTERM: draining for 4s")
    # The delay is 4 s: well within it, new connections are still served.
    for _ in range(3):
        assert get(served.port)[0] == 200
        time.sleep(0.2)
    assert served.proc.poll() is None
    stopping = notify.wait("STATUS", "Stopping: in-flight requests get up to 30s", after=draining)
    assert float(notify.messages[stopping]["at"]) - float(notify.messages[draining]["at"]) >= 3.5
    assert served.proc.wait(20) == 0
    wait_for(lambda: refused(served.port), 5, "the port to be closed")


@pytest.mark.parametrize("mode", ["processes", "no-supervisor"])
def test_second_signal_skips_the_drain(mode: str, started: list[Served]) -> None:
    served = start_ftserve(*MODES[mode], "--drain-delay", "60", app=ENV_APP)
    started.append(served)
    served.signal(signal.SIGTERM)
    served.wait_log("Received SIGTERM: draining for 60s")
    assert get(served.port)[0] == 200
    served.signal(signal.SIGTERM)
    assert served.proc.wait(20) == 0  # long before the 60 s
    assert "shutting down gracefully now" in served.output
    assert "forcing" not in served.output


def test_sigint_does_not_drain(started: list[Served]) -> None:
    served = start_ftserve(*MODES["threads"], "--drain-delay", "60", app=ENV_APP)
    started.append(served)
    served.signal(signal.SIGINT)
    assert served.proc.wait(20) == 0
    assert "draining" not in served.output


def test_no_drain_delay_under_the_reloader() -> None:
    """--reload restarts its server process on each change: that does not wait for the delay."""
    from ftserver.reloader import server_command

    command = server_command(Config(app="a:b", reload=True, drain_delay=5, timeout_keep_alive=7))
    assert "--timeout-keep-alive" in command and "--drain-delay" not in command


def test_drain_delay_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="drain_delay"):
        Config(app="a:b", drain_delay=-1)
    import subprocess

    help_text = subprocess.run([*FTSERVE, "--help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "--drain-delay" in help_text and "FTSERVE_DRAIN_DELAY" in help_text
