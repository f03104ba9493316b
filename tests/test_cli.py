"""ftserve as users run it: a subprocess, port 0, signals, readable errors."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.ftserve_process import read_response, send_request, wait_accepted

ROOT = Path(__file__).resolve().parent.parent
FTSERVE = [sys.executable, "-m", "ftserver"]


def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """Start ftserve and return (process, url) once the banner names the real port."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen(
        [*FTSERVE, "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=full_env,
    )
    lines = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"Listening on (http://\S+)", line)
        if match:
            # Keep the pipe drained; what follows stays readable as proc.output.
            proc.output = lines  # type: ignore[attr-defined]
            proc.reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[attr-defined,arg-type]
            proc.reader.start()  # type: ignore[attr-defined]
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("server did not start:\n" + "".join(lines))


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serves_and_banner_names_real_port():
    proc, url = start("--threads", "2", "tests.apps.basic:hello")
    try:
        assert not url.endswith(":0")
        assert httpx.get(url).text == "Hello, world!"
    finally:
        assert stop(proc) == 0


def test_banner_reports_build_and_gil():
    proc = subprocess.Popen([*FTSERVE, "--port", "0", "--threads", "1", "tests.apps.basic:hello"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        free_threaded = bool(__import__("sysconfig").get_config_var("Py_GIL_DISABLED"))
        # --mode auto: threads with the GIL off, processes on a GIL build.
        assert "ftserver" in first and f"mode: {'threads' if free_threaded else 'processes'}" in first
        assert "GIL" in first
        assert bool(re.search(r"CPython \d+\.\d+\.\d+t \|", first)) == free_threaded
    finally:
        stop(proc)


def test_sigterm_lets_in_flight_request_finish():
    proc, url = start("--threads", "1", "tests.apps.basic:sleepy")
    sock = send_request(int(url.rsplit(":", 1)[1]), "/?3.0")
    wait_accepted(proc.pid, sock)  # the request is in flight (3 s: seen even on a busy machine)
    proc.send_signal(signal.SIGTERM)
    assert read_response(sock) == (200, "done")
    assert proc.wait(timeout=10) == 0


def test_graceful_timeout_closes_stuck_requests():
    proc, url = start("--timeout-graceful-shutdown", "0.5", "tests.apps.basic:sleepy")
    errors = []

    def stuck_request():
        try:
            httpx.get(url + "/?30", timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=stuck_request)
    t.start()
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert time.monotonic() - started < 10
    t.join(10)
    assert errors, "the stuck request should have been cut off"


def test_requests_cut_by_the_graceful_timeout_are_logged():
    proc, url = start("--timeout-graceful-shutdown", "0.5", "tests.apps.basic:sleepy")
    sock = send_request(int(url.rsplit(":", 1)[1]), "/?30")
    wait_accepted(proc.pid, sock)
    time.sleep(0.5)  # the head reached the app, which sleeps
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    sock.close()
    proc.reader.join(10)
    output = "".join(proc.output)
    assert "graceful shutdown timeout (0.5 s): 1 request(s) in progress cut, 1 connection(s) closed" in output, output


def test_second_sigint_forces_exit():
    proc, url = start("tests.apps.basic:sleepy")
    sock = send_request(int(url.rsplit(":", 1)[1]), "/?30")
    wait_accepted(proc.pid, sock)  # in flight: the graceful stop waits for it
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.poll() is None  # still draining
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 1
    sock.close()


@pytest.mark.parametrize(
    "app,message",
    [
        ("nosuchmodule:app", 'Could not import module "nosuchmodule"'),
        ("tests.apps.basic:nothere", 'Attribute "nothere" not found in module "tests.apps.basic"'),
        ("no_colon", "module:attribute"),
    ],
)
def test_bad_app_gives_readable_error(app, message):
    proc = subprocess.run([*FTSERVE, "--port", "0", app], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode in (1, 2)
    output = proc.stdout + proc.stderr
    assert message in output
    assert "Traceback" not in output


def test_wsgi_app_is_detected_and_served(tmp_path):
    (tmp_path / "wsgiapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [environ['wsgi.input'].read() or b'wsgi']\n"
    )
    proc, url = start("--app-dir", str(tmp_path), "--blocking-threads", "2", "wsgiapp:app")
    try:
        assert httpx.get(url).text == "wsgi"
        assert httpx.post(url, content=b"posted").text == "posted"
    finally:
        assert stop(proc) == 0


def test_blocking_threads_is_validated():
    proc = subprocess.run([*FTSERVE, "--blocking-threads", "0", "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "blocking_threads: must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("value", ["-1", "262145"])
def test_wsgi_body_buffer_is_validated(value):
    proc = subprocess.run([*FTSERVE, "--wsgi-body-buffer", value, "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "wsgi_body_buffer: must be between 0 and 262144 bytes" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_port_in_use_is_a_clear_error():
    proc, url = start("tests.apps.basic:hello")
    try:
        port = url.rsplit(":", 1)[1]
        second = subprocess.run([*FTSERVE, "--port", port, "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert "cannot listen on 127.0.0.1:" + port in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        stop(proc)


def test_invalid_option_value():
    proc = subprocess.run([*FTSERVE, "--threads", "0", "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "threads: must be at least 1" in proc.stderr


def test_env_vars_are_options():
    proc, url = start("tests.apps.basic:hello", env={"FTSERVE_THREADS": "3", "FTSERVE_SERVER_HEADER": "false"})
    try:
        r = httpx.get(url)
        assert "server" not in r.headers
    finally:
        stop(proc)


def test_version_and_help():
    out = subprocess.run([*FTSERVE, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert out.startswith("ftserver ")
    help_text = subprocess.run([*FTSERVE, "--help"], capture_output=True, text=True, timeout=30).stdout
    for option in ("--threads", "--accept", "--http1", "--lifespan", "--uds", "--timeout-graceful-shutdown", "--root-path"):
        assert option in help_text


def test_unix_socket(tmp_path):
    path = str(tmp_path / "ft.sock")
    proc = subprocess.Popen([*FTSERVE, "--uds", path, "tests.apps.basic:hello"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
            assert client.get("http://x/").text == "Hello, world!"
    finally:
        assert stop(proc) == 0
    assert not os.path.exists(path)


def test_access_log_line():
    proc = subprocess.Popen(
        [*FTSERVE, "--port", "0", "--access-log", "tests.apps.basic:hello"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = ""
        while "Listening on" not in line:
            line = proc.stderr.readline()
            assert line, "server exited early"
        url = re.search(r"Listening on (http://\S+)", line).group(1)
        httpx.get(url + "/some/path?q=1")
        access = proc.stdout.readline()
        assert '"GET /some/path?q=1 HTTP/1.1" 200 13' in access
    finally:
        stop(proc)


def test_factory(tmp_path):
    (tmp_path / "factoryapp.py").write_text(
        "from tests.apps.basic import hello\n\ndef create_app():\n    return hello\n"
    )
    proc, url = start("--factory", "--app-dir", str(tmp_path), "factoryapp:create_app")
    try:
        assert httpx.get(url).text == "Hello, world!"
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("option", ["--log-file", "--access-log-file", "--pid-file"])
@pytest.mark.parametrize("mode", [[], ["--no-supervisor"]])
def test_a_file_that_cannot_be_opened_is_one_line(option, mode):
    # /proc refuses new files even to root: the directory exists, the open fails.
    proc = subprocess.run([*FTSERVE, *mode, option, "/proc/ftserver-test.file", "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "cannot write" in proc.stderr and "/proc/ftserver-test.file" in proc.stderr
    assert "Traceback" not in proc.stderr


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*FTSERVE, *args], cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ, **(env or {})})


def test_help_lists_the_options_in_sections():
    help_text = run_cli("--help").stdout
    titles = ["App", "Binding", "Workers", "HTTP", "Logging", "Timeouts and limits", "Supervisor", "Development", "Other"]
    starts = [help_text.index(f"\n{title} options:\n") for title in titles]
    assert starts == sorted(starts)
    assert "\nOptions:\n" not in help_text
    sections = dict(zip(titles, [help_text[a:b] for a, b in zip(starts, starts[1:] + [len(help_text)])]))
    assert "--port" in sections["Binding"] and "--threads" in sections["Workers"] and "--reload" in sections["Development"]
    assert "--max-requests" in sections["Supervisor"] and "--limit-request-body" in sections["Timeouts and limits"]
    # Every option has its section: only --version and --help are left for "Other".
    assert re.findall(r"^  (-h, --help|-[-\w]+)", sections["Other"], re.M) == ["--version", "-h, --help"]


def test_help_shows_each_options_variable():
    help_text = " ".join(run_cli("--help").stdout.split())  # undo the wrapping
    for variable in ("FTSERVE_PORT", "FTSERVE_THREADS", "FTSERVE_TIMEOUT_KEEP_ALIVE", "FTSERVE_ACCESS_LOG", "FTSERVE_RELOAD_DIR"):
        assert f"env var: {variable}" in help_text
    assert "WEB_CONCURRENCY" in help_text


@pytest.mark.parametrize(
    ("variable", "value", "hint"),
    [("FTSERVE_THREADS", "abc", "FTSERVE_THREADS (--threads)"), ("FTSERVE_TIMEOUT_IO", "5x", "FTSERVE_TIMEOUT_IO (--timeout-io)"), ("WEB_CONCURRENCY", "many", "WEB_CONCURRENCY (--threads)"), ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY (--threads)")],
)
def test_an_invalid_variable_is_named_in_the_error(variable, value, hint):
    proc = run_cli("tests.apps.basic:hello", env={variable: value})
    assert proc.returncode == 2
    assert f"Error: Invalid value for {hint}: {value!r}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FTSERVE_BACKLOG", "0", "FTSERVE_BACKLOG (--backlog): must be at least 1, got 0"),
        ("FTSERVE_THREADS", "0", "FTSERVE_THREADS (--threads): must be at least 1, got 0"),
        ("FTSERVE_ROOT_PATH", "api", "FTSERVE_ROOT_PATH (--root-path): must start with '/'"),
    ],
)
def test_a_value_config_refuses_names_its_variable(variable, value, message):
    """Config's own checks (not click's) name the variable too, when the value came from one."""
    proc = run_cli("tests.apps.basic:hello", env={variable: value})
    assert proc.returncode == 2
    assert f"Error: {message}" in proc.stderr
    option = variable.removeprefix("FTSERVE_").lower().replace("_", "-")
    proc = run_cli(f"--{option}", value, "tests.apps.basic:hello")
    assert proc.returncode == 2
    assert variable not in proc.stderr  # given on the command line: named as before


@pytest.mark.parametrize(("text", "seconds"), [("30", 30.0), ("0.5", 0.5), ("250ms", 0.25), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), (" 2 s ", 2.0)])
def test_durations_take_units(text, seconds):
    from ftserver.cli import DURATION

    assert DURATION.convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["5x", "m", "-1", "1h30m", ""])
def test_a_bad_duration_is_a_usage_error(text):
    proc = run_cli("--timeout-keep-alive", text, "tests.apps.basic:hello")
    assert proc.returncode == 2
    assert "Invalid value for '--timeout-keep-alive'" in proc.stderr and "is not a duration" in proc.stderr


def test_duration_options_serve_with_units():
    proc, url = start("--timeout-graceful-shutdown", "1m", "--timeout-io", "2m", "tests.apps.basic:hello", env={"FTSERVE_TIMEOUT_KEEP_ALIVE": "500ms"})
    try:
        assert httpx.get(url).text == "Hello, world!"
        assert "up to 60.0s" not in "".join(proc.output)
    finally:
        assert stop(proc) == 0
    assert "(up to 60.0s)" in "".join(proc.output)  # --timeout-graceful-shutdown 1m


@pytest.mark.parametrize(
    ("args", "banner"),
    [
        ((), "| 3 threads (threads: 3, from WEB_CONCURRENCY;"),
        (("--threads", "2"), "| 2 threads (threads: 2, from --threads;"),
        (("--workers", "1"), "| 1 thread (threads: 1, from the default with --workers;"),
    ],
)
def test_web_concurrency_sets_threads_unless_threads_or_workers_given(args, banner):
    """The banner says where the thread count came from."""
    proc, _ = start("--mode", "threads", *args, "tests.apps.basic:hello", env={"WEB_CONCURRENCY": "3"})
    try:
        assert banner in proc.output[0]
    finally:
        assert stop(proc) == 0


def test_web_concurrency_yields_to_ftserve_threads():
    proc, _ = start("--mode", "threads", "tests.apps.basic:hello", env={"WEB_CONCURRENCY": "3", "FTSERVE_THREADS": "2"})
    try:
        assert "| 2 threads (threads: 2, from FTSERVE_THREADS;" in proc.output[0]
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("layout", [["--mode", "threads", "--threads", "8"], ["--mode", "processes", "--workers", "3", "--threads", "2"]])
def test_lifespan_startup_failure_is_reported_once(tmp_path, layout):
    (tmp_path / "failingstart.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        await receive()\n"
        "        raise RuntimeError('no database')\n"
    )
    done = subprocess.run([*FTSERVE, "--port", "0", *layout, "--lifespan", "on", "--app-dir", str(tmp_path), "failingstart:app"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 3
    output = done.stdout + done.stderr
    assert output.count("Traceback") == 1
    assert output.count("RuntimeError: no database") == 1
    assert output.rstrip().splitlines()[-1].endswith("Application startup failed (RuntimeError('no database')). Exiting.")


NOT_ASGI3_APPS = (
    "import functools\n"
    "def sync3(scope, receive, send):\n    pass\n"
    "def asgi2(scope):\n"
    "    async def instance(receive, send):\n"
    "        await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
    "        await send({'type': 'http.response.body', 'body': b'asgi2'})\n"
    "    return instance\n"
    "class AppClass:\n"
    "    async def __call__(self, scope, receive, send):\n        pass\n"
    "class ASGI2Class:\n"
    "    def __init__(self, scope):\n        self.scope = scope\n"
    "    async def __call__(self, receive, send):\n        pass\n"
    "def create_app():\n    return AppClass()\n"
    "async def greet(text, scope, receive, send):\n"
    "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
    "    await send({'type': 'http.response.body', 'body': text})\n"
    "partial = functools.partial(greet, b'partial')\n"
    "callable_object = AppClass()\n"
)


@pytest.mark.parametrize(
    ("attribute", "fix"),
    [
        ("sync3", "async def app(scope, receive, send)"),
        ("asgi2", "--interface asgi2"),
        ("AppClass", "--factory"),
        ("ASGI2Class", "--interface asgi2"),
        ("create_app", "--factory"),
    ],
)
def test_an_app_that_cannot_be_asgi3_is_refused_at_start(tmp_path, attribute, fix):
    (tmp_path / "notasgi3.py").write_text(NOT_ASGI3_APPS)
    done = subprocess.run([*FTSERVE, "--port", "0", "--app-dir", str(tmp_path), f"notasgi3:{attribute}"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f'Error: App "notasgi3:{attribute}"')
    assert fix in done.stderr


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (["--interface", "asgi2", "notasgi3:asgi2"], "asgi2"),
        (["notasgi3:partial"], "partial"),
        (["--interface", "asgi3", "notasgi3:partial"], "partial"),
        (["--factory", "notasgi3:create_app"], ""),
        (["notasgi3:callable_object"], ""),
    ],
)
def test_asgi_apps_of_every_shape_start(tmp_path, args, body):
    (tmp_path / "notasgi3.py").write_text(NOT_ASGI3_APPS)
    proc, url = start("--app-dir", str(tmp_path), *args)
    try:
        if body:
            assert httpx.get(url).text == body
    finally:
        assert stop(proc) == 0


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_an_unsupported_upgrade_is_served_as_http_and_logged_once(http1):
    proc, url = start("--threads", "1", "--http1", http1, "tests.apps.basic:hello")
    try:
        with httpx.Client() as client:  # one connection, then a second one
            for protocol in ("websocket", "h2c", "websocket"):
                response = client.get(url, headers={"Upgrade": protocol, "Connection": "Upgrade"})
                assert response.status_code == 200 and response.text == "Hello, world!"
        assert httpx.get(url, headers={"Upgrade": "websocket", "Connection": "Upgrade"}).status_code == 200
    finally:
        assert stop(proc) == 0
    output = "".join(proc.output)  # type: ignore[attr-defined]
    assert output.count("Unsupported upgrade request") == 1
    assert "Unsupported upgrade request (Upgrade: websocket)" in output


def test_a_missing_app_dir_is_one_line(tmp_path):
    done = subprocess.run([*FTSERVE, "--port", "0", "--app-dir", str(tmp_path / "nowhere"), "app:app"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert f'--app-dir "{tmp_path / "nowhere"}" is not a directory' in done.stderr
