"""``--proxy-protocol`` and ``--uds-permissions`` as users run them: ftserve subprocesses (threads
and worker processes), FTSERVE_* variables, the access log, one-line errors, and a real nginx
stream proxy sending PROXY headers."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ftserver.config import Config, ConfigError
from tests.interfaces.test_proxy_protocol import REQUEST, V1, V2, exchange, scope_of
from tests.test_cli import FTSERVE, ROOT, run_cli, start, stop


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


@pytest.mark.parametrize("layout", [("--mode", "threads", "--threads", "2"), ("--mode", "processes", "--workers", "2")])
def test_threads_and_worker_processes_with_the_access_log(tmp_path, layout):
    log = tmp_path / "access.log"
    proc, url = start(*layout, "--proxy-protocol", "auto", "--access-log-file", str(log), "tests.apps.basic:scope_json")
    try:
        port = port_of(url)
        for _ in range(4):  # (spread over the workers)
            assert scope_of(exchange(port, V1 + REQUEST))["client"] == ["203.0.113.7", 56324]
            assert scope_of(exchange(port, V2 + REQUEST))["client"] == ["198.51.100.9", 40000]
        assert exchange(port, b"PROXY TCP4 nonsense\r\n" + REQUEST) == b""
        assert httpx.get(url + "/plain").json()["client"][0] == "127.0.0.1"
    finally:
        assert stop(proc) == 0
    text = log.read_text()
    assert ' 203.0.113.7:56324 - "GET /p HTTP/1.1" 200 ' in text
    assert ' 198.51.100.9:40000 - "GET /p HTTP/1.1" 200 ' in text


def test_options_from_ftserve_variables():
    env = {"FTSERVE_PROXY_PROTOCOL": "v2", "FTSERVE_PROXY_PROTOCOL_ALLOW_IPS": "10.0.0.0/8, 127.0.0.0/8"}
    proc, url = start("tests.apps.basic:scope_json", env=env)
    try:
        port = port_of(url)
        assert scope_of(exchange(port, V2 + REQUEST))["client"] == ["198.51.100.9", 40000]
        assert exchange(port, V1 + REQUEST) == b""  # v2 required
    finally:
        stop(proc)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--proxy-protocol", "v3"), {}, "Invalid value for '--proxy-protocol': 'v3' is not one of 'off', 'v1', 'v2', 'auto'"),
        ((), {"FTSERVE_PROXY_PROTOCOL_ALLOW_IPS": "localhost"}, "FTSERVE_PROXY_PROTOCOL_ALLOW_IPS (--proxy-protocol-allow-ips): 'localhost' is not an IP address"),
        (("--uds", "/tmp/x.sock", "--uds-permissions", "rw-rw----"), {}, "uds_permissions: must be an octal file mode such as 660 or 0o660, got 'rw-rw----'"),
        ((), {"FTSERVE_UDS": "/tmp/x.sock", "FTSERVE_UDS_PERMISSIONS": "0o17777"}, "FTSERVE_UDS_PERMISSIONS (--uds-permissions): must be an octal file mode between 0 and 0o7777"),
        (("--uds-permissions", "660"), {}, "uds_permissions: the mode of the --uds socket file; add --uds PATH"),
    ],
)
def test_one_line_errors(args, env, message):
    proc = run_cli(*args, "tests.apps.basic:hello", env=env)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr


def test_uds_permissions_values():
    assert Config(app="a:b", uds="/tmp/s", uds_permissions="660").uds_permissions == 0o660
    assert Config(app="a:b", uds="/tmp/s", uds_permissions="0o600").uds_permissions == 0o600
    assert Config(app="a:b", uds="/tmp/s", uds_permissions="0777").uds_permissions == 0o777
    assert Config(app="a:b", uds="/tmp/s", uds_permissions=0o640).uds_permissions == 0o640
    for bad in ("", "9", "0x1ff", "-1", True):
        with pytest.raises(ConfigError, match="uds_permissions: must be an octal file mode"):
            Config(app="a:b", uds="/tmp/s", uds_permissions=bad)


def serve_uds(path: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([*FTSERVE, "--uds", path, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(path)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
            time.sleep(0.05)
    stop(proc)
    raise AssertionError("the server did not listen")


@pytest.mark.parametrize(("layout", "mode"), [((), "600"), (("--workers", "2", "--mode", "processes"), "0o660"), (("--no-supervisor",), None)])
def test_uds_permissions(tmp_path, layout, mode):
    path = str(tmp_path / "ft.sock")
    args = (*layout, *(("--uds-permissions", mode) if mode else ()))
    proc = serve_uds(path, *args, "tests.apps.basic:hello")
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == (int(mode.removeprefix("0o"), 8) if mode else 0o666)
        with httpx.Client(transport=httpx.HTTPTransport(uds=path)) as client:
            assert client.get("http://x/").text == "Hello, world!"
    finally:
        assert stop(proc) == 0


def test_trusted_unix_peers_send_a_header(tmp_path):
    path = str(tmp_path / "ft.sock")
    proc = serve_uds(path, "--proxy-protocol", "v1", "--proxy-protocol-allow-ips", "unix", "tests.apps.basic:scope_json")
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(V1 + REQUEST)
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert scope_of(response)["client"] == ["203.0.113.7", 56324]
    finally:
        stop(proc)


NGINX_STREAM_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
{load_module}
events {{ worker_connections 64; }}
stream {{
    server {{
        listen 127.0.0.1:{port};
        proxy_pass 127.0.0.1:{upstream};
        proxy_protocol on;
    }}
}}
"""
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")


def nginx_has_stream() -> bool:
    """nginx, with its stream module built in or loadable (Debian: libnginx-mod-stream)."""
    if not os.path.exists(NGINX):
        return False
    built = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=30).stderr
    return "--with-stream " in built + " " or STREAM_MODULE.exists()


@pytest.mark.skipif(not nginx_has_stream(), reason="nginx with its stream module is not installed")
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls-passthrough"])
def test_behind_an_nginx_stream_proxy(tmp_path, tls, request):
    """nginx passes TCP through (TLS included: the handshake is the client's, with ftserve),
    with ``proxy_protocol on``: a v1 header naming the client."""
    from ftserver.testing import serve
    from tests.apps.basic import scope_json

    options = {}
    if tls:
        certs = request.getfixturevalue("certs")
        options = {"ssl_certfile": certs.server, "ssl_keyfile": certs.server_key}
        context = certs.client_context()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    built = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=30).stderr
    load_module = "" if "--with-stream " in built + " " else f"load_module {STREAM_MODULE};"
    with serve(scope_json, proxy_protocol="v1", threads=1, **options) as server:
        conf = NGINX_STREAM_CONF.format(tmp=tmp_path, port=port, upstream=server.port, load_module=load_module)
        (tmp_path / "nginx.conf").write_text(conf)
        proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                        client_port = raw.getsockname()[1]
                        client = context.wrap_socket(raw, server_hostname="localhost") if tls else raw
                        client.sendall(REQUEST)
                        response = b""
                        while chunk := client.recv(65536):
                            response += chunk
                    if response:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    error = (tmp_path / "error.log").read_text() if (tmp_path / "error.log").exists() else ""
                    raise AssertionError(f"nginx did not proxy: {error}")
                time.sleep(0.1)
        finally:
            proc.terminate()
            proc.wait(10)
    scope = scope_of(response)
    # The client's own port (nginx's header), not nginx's connection to ftserve.
    assert scope["client"] == ["127.0.0.1", client_port]
    assert scope["server"] == ["127.0.0.1", port]
    assert scope["scheme"] == ("https" if tls else "http")
