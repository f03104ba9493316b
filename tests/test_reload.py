"""``ftserve --reload``: a real reloader subprocess on a temporary app directory.

Every process started here is stopped by PID (the reloader, and each server process it
logs as started); durations are bounded by deadlines, never asserted.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ftserver.cli import cli
from ftserver.config import Config, ConfigError
from ftserver.reloader import PARENT_ONLY_OPTIONS, FileWatcher, changed_paths, server_command
from ftserver.server import Server
from tests.ftserve_process import wait_accepted

FTSERVE = [sys.executable, "-m", "ftserver"]
DEADLINE = 30.0

APP = """\
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": {body!r}}})
"""


def write_app(directory: Path, body: bytes, name: str = "app.py") -> None:
    (directory / name).write_text(APP.format(body=body))


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FTSERVE_")}


class Reloader:
    """``ftserve --reload`` in a subprocess, its merged output collected line by line."""

    def __init__(self, app_dir: Path, *args: str, new_session: bool = False) -> None:
        self.proc = subprocess.Popen(
            [*FTSERVE, "--reload", "--reload-delay", "0.1", "--port", "0", "--threads", "1",
             "--timeout-graceful-shutdown", "5", *args, "app:app"],
            cwd=app_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=clean_env(), start_new_session=new_session,
        )
        self.lines: list[str] = []
        self.children: dict[int, psutil.Process] = {}
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            match = re.search(r"Started server process (\d+)", line)
            if match:
                try:  # kept with its create time, so that a reused PID is never touched
                    self.children[int(match.group(1))] = psutil.Process(int(match.group(1)))
                except psutil.NoSuchProcess:
                    pass
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, pattern: str, start: int = 0, timeout: float = DEADLINE) -> tuple[int, re.Match[str]]:
        """The first line from ``start`` on that matches: (its index, the match)."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    if match:
                        return index, match
                    index += 1
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(self.lines)}")
                self._cond.wait(min(remaining, 0.5))

    def count(self, pattern: str) -> int:
        with self._cond:
            return sum(1 for line in self.lines if re.search(pattern, line))

    def url(self) -> str:
        return self.wait_for(r"holds (http://\S+)")[1].group(1)

    def live_children(self) -> list[psutil.Process]:
        return [p for p in self.children.values() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    def stop(self) -> None:
        """Kill whatever is left (by PID): the reloader, then the server processes it started."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for child in self.children.values():
            try:
                if child.is_running():
                    child.kill()
                    child.wait(10)
            except psutil.NoSuchProcess:
                pass
        self._reader.join(5)


@pytest.fixture
def reloader(tmp_path):
    started: list[Reloader] = []

    def start(*args: str, new_session: bool = False) -> Reloader:
        r = Reloader(tmp_path, *args, new_session=new_session)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def wait_for_body(url: str, expected: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(url, timeout=2).text
            if last == expected:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"expected {expected!r}, last got {last!r}")


def gone(process: psutil.Process, timeout: float = DEADLINE) -> bool:
    try:
        process.wait(timeout)
    except psutil.TimeoutExpired:
        return False
    return True


# -- the reloader, end to end ----------------------------------------------------------


def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_edit_is_served_on_the_same_port_and_never_refused(tmp_path, reloader):
    write_app(tmp_path, b"version 1")
    r = reloader()
    url = r.url()
    index, _ = r.wait_for(r"Listening on (http://\S+)")
    assert r.lines[index].split("Listening on ")[1].split()[0] == url  # the server serves the reloader's socket
    wait_for_body(url, "version 1")
    first_child = r.live_children()[0]

    refused: list[Exception] = []
    bodies: set[str] = set()
    done = threading.Event()

    def hammer() -> None:  # a fresh connection each time: every connect() meets the reload
        while not done.is_set():
            try:
                bodies.add(httpx.get(url, timeout=5).text)
            except httpx.ConnectError as exc:
                refused.append(exc)
            except httpx.HTTPError:
                pass  # a connection accepted by the old server as it drained: not a refusal

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        until(lambda: "version 1" in bodies)  # the hammer runs before the edit...
        write_app(tmp_path, b"version 22")
        wait_for_body(url, "version 22")
        until(lambda: "version 22" in bodies)  # ...and through the reload
    finally:
        done.set()
        thread.join(10)
    assert not refused, refused[:3]
    assert {"version 1", "version 22"} <= bodies
    r.wait_for(r"Detected changes in 'app\.py': reloading")
    assert gone(first_child)
    assert first_child.pid not in [p.pid for p in r.live_children()]
    assert r.wait_for(r"Listening on (http://\S+)", index + 1)[1].group(1) == url  # port 0 kept its port


def test_syntax_error_keeps_the_reloader_waiting(tmp_path, reloader):
    write_app(tmp_path, b"good")
    r = reloader()
    url = r.url()
    wait_for_body(url, "good")
    start = len(r.lines)
    with open(tmp_path / "app.py", "a") as f:
        f.write("def broken(:\n")
    r.wait_for(r"SyntaxError", start)
    r.wait_for(r"exited with code 1; waiting for changes to reload", start)
    assert r.proc.poll() is None
    assert not r.live_children()
    output = "".join(r.lines[start:])
    assert "app.py" in output and "def broken(:" in output
    assert "ftserver/server.py" not in output and "click" not in output  # the app's error, not our stack
    write_app(tmp_path, b"fixed")
    wait_for_body(url, "fixed")
    assert r.proc.poll() is None


def test_app_failing_at_first_start_waits_for_a_fix(tmp_path, reloader):
    (tmp_path / "app.py").write_text("raise RuntimeError('not ready yet (expected by the test)')\n")
    r = reloader()
    url = r.url()
    r.wait_for(r"waiting for changes to reload")
    assert "RuntimeError: not ready yet" in r.log
    # The reloader holds the socket: a connection is queued, not refused.
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    write_app(tmp_path, b"now ready")
    wait_for_body(url, "now ready")


def test_excluded_and_unwatched_files_do_not_reload(tmp_path, reloader):
    write_app(tmp_path, b"one")
    for rel in ("scratch_notes.py", ".hidden/mod.py", "__pycache__/x.py", "data/notes.txt", "template.html"):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        (tmp_path / rel).write_text("x = 1\n")
    r = reloader("--reload-exclude", "scratch_*", "--reload-include", "*.html")
    url = r.url()
    wait_for_body(url, "one")
    for rel in ("scratch_notes.py", ".hidden/mod.py", "__pycache__/x.py", "data/notes.txt", "data/new.txt"):
        (tmp_path / rel).write_text("x = 2  # changed\n")
    time.sleep(1.5)  # fifteen scans at --reload-delay 0.1
    assert r.count("Detected changes") == 0, r.log
    assert r.count("Started server process") == 1
    # The watcher was live all along: an included file does reload.
    (tmp_path / "template.html").write_text("<p>changed</p>\n")
    index, _ = r.wait_for(r"Detected changes in 'template\.html'")
    r.wait_for(r"Started server process", index + 1)
    wait_for_body(url, "one")


def test_reload_with_reuseport_listeners(tmp_path, reloader):
    """The inherited socket serves thread 0; the other threads bind beside it with SO_REUSEPORT."""
    write_app(tmp_path, b"rp 1")
    r = reloader("--accept", "reuseport", "--threads", "2")
    url = r.url()
    wait_for_body(url, "rp 1")
    write_app(tmp_path, b"rp 22")
    wait_for_body(url, "rp 22")
    for _ in range(20):  # whichever listener the kernel picks, the new code answers
        assert httpx.get(url, timeout=5).text == "rp 22"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_reloader_and_server(tmp_path, reloader, signum):
    write_app(tmp_path, b"hi")
    r = reloader()
    wait_for_body(r.url(), "hi")
    [child] = r.live_children()
    r.proc.send_signal(signum)
    assert r.proc.wait(DEADLINE) == 0
    assert gone(child, 5)
    assert "shutting down gracefully" in r.log and "forcing" not in r.log


def test_ctrl_c_at_the_terminal_is_one_graceful_stop(tmp_path, reloader):
    """CTRL+C signals the whole process group; the server ignores SIGINT and gets one SIGTERM."""
    write_app(tmp_path, b"hi")
    r = reloader(new_session=True)  # its own group, so that killpg reaches only what we started
    wait_for_body(r.url(), "hi")
    [child] = r.live_children()
    assert os.getpgid(child.pid) == r.proc.pid
    os.killpg(r.proc.pid, signal.SIGINT)
    assert r.proc.wait(DEADLINE) == 0
    assert gone(child, 5)
    assert r.count("shutting down gracefully") == 1 and "forcing" not in r.log


SLOW_APP = """\
import asyncio

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await asyncio.sleep(30 if scope["path"] == "/slow" else 0)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
"""


def test_second_signal_forces_the_draining_server(tmp_path, reloader):
    (tmp_path / "app.py").write_text(SLOW_APP)
    r = reloader("--timeout-graceful-shutdown", "60")
    url = r.url()
    wait_for_body(url, "ok")
    [child] = r.live_children()
    port = httpx.URL(url).port
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_accepted(child.pid, sock)  # the request is in flight (a fixed sleep promises nothing on a busy box)
    r.proc.send_signal(signal.SIGINT)
    r.wait_for(r"shutting down gracefully")
    assert r.proc.poll() is None  # draining: the stuck request holds it
    r.proc.send_signal(signal.SIGINT)
    assert r.proc.wait(DEADLINE) == 1  # the server's forced exit, passed on
    assert gone(child, 5)
    try:
        answer = sock.recv(65536)
    except ConnectionResetError:
        answer = b""
    sock.close()
    assert answer == b""  # the stuck request got no response: the connection was closed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killed_reloader_leaves_no_orphan(tmp_path, reloader):
    write_app(tmp_path, b"hi")
    r = reloader()
    wait_for_body(r.url(), "hi")
    [child] = r.live_children()
    r.proc.kill()
    r.proc.wait(10)
    assert gone(child), "the server process outlived its reloader"


def test_reload_on_a_unix_socket(tmp_path, reloader):
    app_dir = tmp_path / "src"
    app_dir.mkdir()
    write_app(app_dir, b"uds 1")
    path = str(tmp_path / "ft.sock")
    r = reloader("--uds", path, "--app-dir", str(app_dir))
    r.wait_for(r"Listening on unix:" + re.escape(path))
    client = httpx.Client(transport=httpx.HTTPTransport(uds=path))
    with client:
        deadline = time.monotonic() + DEADLINE
        while client.get("http://x/", timeout=2).text != "uds 1" and time.monotonic() < deadline:
            time.sleep(0.05)
        write_app(app_dir, b"uds 2")
        r.wait_for(r"Detected changes in '.*app\.py'")
        deadline = time.monotonic() + DEADLINE
        body = ""
        while body != "uds 2" and time.monotonic() < deadline:
            try:
                body = client.get("http://x/", timeout=2).text
            except httpx.HTTPError:
                time.sleep(0.05)
        assert body == "uds 2"
    assert os.path.exists(path)
    r.proc.send_signal(signal.SIGTERM)
    assert r.proc.wait(DEADLINE) == 0
    assert not os.path.exists(path)


# -- --fd: the socket handed to the server process ---------------------------------------


def test_fd_serves_an_inherited_socket(tmp_path):
    write_app(tmp_path, b"from fd")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen([*FTSERVE, "--fd", str(fd), "--threads", "1", "app:app"], cwd=tmp_path, pass_fds=(fd,),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env())
    try:
        line = ""
        while "Listening on" not in line:
            line = proc.stdout.readline()
            assert line, "server exited early"
        assert f"http://127.0.0.1:{port}" in line
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "from fd"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
    # The server closed only its own descriptor: the socket still listens here.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    listener.close()


@pytest.mark.parametrize("make_fd", ["closed", "regular file", "unbound socket"])
def test_fd_that_is_not_a_listening_socket(tmp_path, make_fd):
    keep = []
    if make_fd == "closed":
        fd = 1000
    elif make_fd == "regular file":
        f = open(tmp_path / "f", "w")
        keep.append(f)
        fd = f.fileno()
    else:
        s = socket.socket()
        keep.append(s)
        fd = s.fileno()
    write_app(tmp_path, b"x")
    pass_fds = () if make_fd == "closed" else (fd,)
    proc = subprocess.run([*FTSERVE, "--fd", str(fd), "app:app"], cwd=tmp_path, pass_fds=pass_fds,
                          capture_output=True, text=True, timeout=DEADLINE, env=clean_env())
    for k in keep:
        k.close()
    assert proc.returncode == 1
    assert f"cannot listen on fd {fd}" in proc.stderr
    assert "Traceback" not in proc.stderr


# -- validation and the CLI --------------------------------------------------------------


@pytest.mark.parametrize(
    "args,message",
    [
        (["--reload-dir", "/nonexistent/dir"], "reload_dirs: '/nonexistent/dir' is not a directory"),
        (["--reload-delay", "0"], "reload_delay: must be > 0"),
        (["--fd", "-1"], "fd: must be a file descriptor number >= 0"),
        (["--fd", "3", "--uds", "/tmp/x.sock"], "not combined with uds"),
    ],
)
def test_bad_reload_options_are_usage_errors(args, message):
    proc = subprocess.run([*FTSERVE, "--reload", *args, "app:app"], capture_output=True, text=True, timeout=DEADLINE, env=clean_env())
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_reload_needs_an_import_string():
    async def app(scope, receive, send):
        pass

    with pytest.raises(ConfigError, match="reload: needs the app as an import string"):
        Config(app=app, reload=True)


def test_config_normalises_reload_lists(tmp_path):
    config = Config(app="app:app", reload_dirs=[str(tmp_path)], reload_includes=["*.html"])
    assert config.reload_dirs == (str(tmp_path),) and config.reload_includes == ("*.html",)
    with pytest.raises(ConfigError, match="reload_excludes"):
        Config(app="app:app", reload_excludes="*.tmp")  # a string, not a list of globs
    with pytest.raises(ConfigError, match="reload_includes"):
        Config(app="app:app", reload_includes=[""])


def test_help_describes_reload():
    out = subprocess.run([*FTSERVE, "--help"], capture_output=True, text=True, timeout=DEADLINE).stdout
    for option in ("--reload ", "--reload-dir", "--reload-include", "--reload-exclude", "--reload-delay", "--fd"):
        assert option in out


def test_every_config_field_is_the_cli_option_of_the_same_name():
    """What server_command relies on to hand the Config to the server process."""
    options = {opt for param in cli.params for opt in (*param.opts, *param.secondary_opts)}
    for field in dataclasses.fields(Config):
        if field.name == "app" or field.name in PARENT_ONLY_OPTIONS:
            continue
        option = "--" + field.name.replace("_", "-")
        assert option in options, f"Config.{field.name} has no CLI option {option}"
        if field.default is True:
            assert "--no-" + option[2:] in options, f"Config.{field.name} defaults to True: needs --no-{option[2:]}"


def test_server_command_round_trips_through_the_cli(tmp_path):
    config = Config(
        app="mod:make", host="0.0.0.0", port=0, threads=3, interface="asgi", http1="h11", accept="reuseport",
        backlog=10, lifespan="off", log_level="debug", access_log=True, root_path="/api", timeout_graceful_shutdown=2.5,
        timeout_keep_alive=7.0, factory=True, app_dir=str(tmp_path), server_header=False, date_header=False,
        limit_request_line=100, limit_request_headers=2000, limit_request_fields=7, limit_request_body=1000,
        headers=("X-A:  1, 2 ", ("Server", "edge")), limit_concurrency=5, limit_max_connections=9,
        reload=True, reload_dirs=(str(tmp_path),), reload_includes=("*.html",), reload_excludes=("x*",), reload_delay=0.5,
    )
    command = server_command(config)
    assert command[0] == sys.executable and command[command.index("-m") + 1] == "ftserver"
    args = command[command.index("-m") + 2:]
    assert args[-2:] == ["--", "mod:make"]
    assert not any(arg.startswith(("--reload", "--port", "--host", "--uds", "--fd")) for arg in args)
    assert "--server-header" not in args and "--no-server-header" in args
    ctx = cli.make_context("ftserve", [*args[:-2], "--fd", "7", *args[-2:]])
    parsed = Config(**ctx.params)
    defaults = Config(app="mod:make")
    assert parsed == config.replace(
        host=defaults.host, port=defaults.port, fd=7, reload=False, reload_dirs=(), reload_includes=(), reload_excludes=(),
        reload_delay=defaults.reload_delay,
    )
    assert server_command(Config(app="m:a"))[-4:] == ["-m", "ftserver", "--", "m:a"]  # defaults are not repeated


def test_environment_options_reach_the_server_process_as_arguments(tmp_path):
    write_app(tmp_path, b"env")
    proc = subprocess.Popen(
        [*FTSERVE, "app:app"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**clean_env(), "FTSERVE_RELOAD": "1", "FTSERVE_PORT": "0", "FTSERVE_THREADS": "3", "FTSERVE_SERVER_HEADER": "false",
             "FTSERVE_RELOAD_EXCLUDE": "a* b*"},
    )
    try:
        lines = []
        while not any("Listening on" in line for line in lines):
            lines.append(proc.stdout.readline())
            assert lines[-1], "".join(lines)
        text = "".join(lines)
        assert "exclude .* *.py[cod]" in text and " a* b*)" in text
        child = psutil.Process(proc.pid).children()[0]
        assert child.cmdline()[child.cmdline().index("-m"):] == ["-m", "ftserver", "--threads", "3", "--no-server-header", "--fd", child.cmdline()[-3], "--", "app:app"]
        assert not any(key.startswith("FTSERVE_") for key in child.environ())
        url = re.search(r"Listening on (http://\S+)", text).group(1)
        assert "server" not in httpx.get(url, timeout=5).headers
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0


def test_python_api_reload(tmp_path):
    """ftserver.run("app:app", reload=True) from a script, as with uvicorn.run."""
    write_app(tmp_path, b"api 1")
    (tmp_path / "main.py").write_text(
        "import ftserver\n\nif __name__ == '__main__':\n"
        "    raise SystemExit(ftserver.run('app:app', port=0, threads=1, reload=True, reload_delay=0.1))\n"
    )
    proc = subprocess.Popen([sys.executable, "main.py"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env())
    children = []
    try:
        line = ""
        while "holds" not in line:
            line = proc.stdout.readline()
            assert line, "reloader exited early"
        url = re.search(r"holds (http://\S+)", line).group(1)
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        wait_for_body(url, "api 1")
        children = psutil.Process(proc.pid).children()
        write_app(tmp_path, b"api 2")
        wait_for_body(url, "api 2")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(DEADLINE) == 0
        for child in children:
            assert gone(child, 5)


def test_a_server_object_does_not_reload():
    with pytest.raises(ConfigError, match="use ftserver.run"):
        Server(Config(app="m:a", reload=True))


# -- the file watcher --------------------------------------------------------------------


def touch(path: Path, text: str = "x = 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_watcher_sees_added_modified_and_removed_files(tmp_path):
    touch(tmp_path / "a.py")
    touch(tmp_path / "pkg" / "b.py")
    watcher = FileWatcher.from_config(Config(app="a:app", reload_dirs=(str(tmp_path),)))
    before = watcher.snapshot()
    assert set(before) == {str(tmp_path / "a.py"), str(tmp_path / "pkg" / "b.py")}
    assert changed_paths(before, watcher.snapshot()) == []
    touch(tmp_path / "a.py", "x = 22\n")  # another size: seen whatever the clock's resolution
    (tmp_path / "pkg" / "b.py").unlink()
    touch(tmp_path / "pkg" / "c.py")
    assert changed_paths(before, watcher.snapshot()) == sorted(
        [str(tmp_path / "a.py"), str(tmp_path / "pkg" / "b.py"), str(tmp_path / "pkg" / "c.py")]
    )


def test_watcher_sees_a_same_size_rewrite_by_its_mtime(tmp_path):
    touch(tmp_path / "a.py", "x = 1\n")
    watcher = FileWatcher(dirs=(tmp_path,))
    before = watcher.snapshot()
    st = os.stat(tmp_path / "a.py")
    touch(tmp_path / "a.py", "x = 2\n")
    os.utime(tmp_path / "a.py", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert changed_paths(before, watcher.snapshot()) == [str(tmp_path / "a.py")]


def test_watcher_patterns(tmp_path):
    for rel in ("app.py", "sub/mod.py", "sub/mod.pyc", ".git/hook.py", ".venv/lib/site.py", "venv/x.py",
                "lib/site-packages/dep.py", "__pycache__/app.cpython-313.py", "node_modules/x.py", "app.py~",
                ".env", "templates/index.html", "static/app.js", "scratch/tmp.py", "gen/out_pb2.py"):
        touch(tmp_path / rel)
    config = Config(
        app="app:app", reload_dirs=(str(tmp_path),),
        reload_includes=("*.html", ".env"), reload_excludes=("scratch", "gen/*_pb2.py"),
    )
    found = {str(Path(p).relative_to(tmp_path)) for p in FileWatcher.from_config(config).snapshot()}
    assert found == {"app.py", "sub/mod.py", ".env", "templates/index.html"}


def test_watcher_default_dir_is_the_app_dir_and_nested_dirs_count_once(tmp_path):
    (tmp_path / "inner").mkdir()
    watcher = FileWatcher.from_config(Config(app="a:app", app_dir=str(tmp_path)))
    assert watcher.dirs == (tmp_path.resolve(),)
    watcher = FileWatcher.from_config(Config(app="a:app", reload_dirs=(str(tmp_path / "inner"), str(tmp_path))))
    assert watcher.dirs == (tmp_path.resolve(),)
    touch(tmp_path / "inner" / "m.py")
    assert list(watcher.snapshot()) == [str(tmp_path.resolve() / "inner" / "m.py")]


def test_watcher_survives_a_directory_removed_meanwhile(tmp_path):
    touch(tmp_path / "gone" / "m.py")
    watcher = FileWatcher(dirs=(tmp_path / "gone",))
    assert watcher.snapshot()
    (tmp_path / "gone" / "m.py").unlink()
    (tmp_path / "gone").rmdir()
    assert watcher.snapshot() == {}
