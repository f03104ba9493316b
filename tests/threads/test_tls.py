"""TLS through real sockets: httpx, curl and raw ``ssl`` clients against ``--ssl-*``
options, in both accept modes; mTLS and CRLs; what the apps see; handshakes that fail."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import httpx
import pytest

from ftserver.config import Config, ConfigError
from ftserver.testing import serve
from ftserver.tls import rfc4514_name, server_context
from tests.apps import basic
from tests.ftserve_process import FTSERVE, ROOT
from tests.tls_certs import CLIENT_NAME, PASSWORD

ACCEPT = ["queue", "reuseport"]
BIG = 3 * 1024 * 1024 + 17


def tls_options(certs, **more):
    return {"ssl_certfile": certs.server, "ssl_keyfile": certs.server_key, **more}


def mtls_options(certs, reqs="required", **more):
    return tls_options(certs, ssl_ca_certs=certs.ca, ssl_cert_reqs=reqs, **more)


def https(server) -> str:
    assert server.url.startswith("https://127.0.0.1:")
    return server.url


async def big(scope, receive, send):
    """A large response in many parts (keep-alive after it)."""
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    part = bytes(range(256)) * 1024
    sent = 0
    while sent < BIG:
        piece = part[: BIG - sent]
        sent += len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": sent < BIG})


def expected_big() -> bytes:
    part = bytes(range(256)) * 1024
    return (part * (BIG // len(part) + 1))[:BIG]


def wsgi_environ(environ, start_response):
    keys = {key: value for key, value in environ.items() if key.startswith(("SSL_", "HTTPS")) or key == "wsgi.url_scheme"}
    body = json.dumps(keys).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class RSGIApp:
    """``/file``: the file named by the ``x-path`` header (``response_file``); else the scope."""

    async def __rsgi__(self, scope, protocol):
        if scope.path == "/file":
            protocol.response_file(200, [("content-type", "application/octet-stream")], scope.headers["x-path"])
            return
        # (asyncio's own sendfile fallback would read the file on the loop's default executor)
        executor = asyncio.get_running_loop()._default_executor
        body = json.dumps({"scheme": scope.scheme, "client": scope.client, "executor": executor is not None}).encode()
        protocol.response_bytes(200, [("content-type", "application/json")], body)


# -- the basics, both accept modes -----------------------------------------------------------


@pytest.mark.parametrize("accept", ACCEPT)
def test_https_keep_alive_post_and_big_responses(certs, accept):
    with serve(basic.echo, accept=accept, threads=2, **tls_options(certs)) as server:
        with httpx.Client(base_url=https(server), verify=certs.client_context()) as client:
            for size in (0, 5, 200_000):
                body = os.urandom(size)
                r = client.post("/", content=body)
                assert r.status_code == 200 and r.content == body
            r = client.post("/", content=iter([b"a" * 70_000, b"b" * 70_000]))  # chunked upload
            assert r.content == b"a" * 70_000 + b"b" * 70_000
    assert server.stats()["connections"] == 1  # every request on one kept-alive connection


def test_big_streamed_response_and_scope(certs):
    with serve(big, **tls_options(certs)) as server:
        with httpx.Client(base_url=https(server), verify=certs.client_context()) as client:
            for _ in range(2):
                r = client.get("/")
                assert r.content == expected_big()
    with serve(basic.scope_json, **tls_options(certs)) as server:
        scope = httpx.get(https(server) + "/", verify=certs.client_context()).json()
    assert scope["scheme"] == "https"
    tls = scope["extensions"]["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int) and tls["cipher_suite"] > 0
    with open(certs.server) as file:
        assert tls["server_cert"] == file.read()
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None and tls["client_cert_error"] is None


def test_plain_http_has_no_tls_extension():
    with serve(basic.scope_json) as server:
        scope = httpx.get(server.url + "/").json()
    assert scope["scheme"] == "http" and "tls" not in scope["extensions"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
@pytest.mark.parametrize("accept", ACCEPT)
def test_curl_reuses_the_tls_connection(certs, accept, tmp_path):
    with serve(basic.echo, accept=accept, **tls_options(certs)) as server:
        url = https(server).replace("127.0.0.1", "localhost")
        done = subprocess.run(
            ["curl", "-sS", "-v", "--http1.1", "--cacert", certs.ca, "--data-binary", "hello", url + "/a", "--next", "--cacert", certs.ca, url + "/b"],
            capture_output=True, text=True, timeout=30,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello"  # the second request has no body
    assert "ALPN: server accepted http/1.1" in done.stderr
    assert "Re-using existing connection" in done.stderr or "Reusing existing" in done.stderr
    assert server.stats()["connections"] == 1


def test_pipelined_requests(certs):
    with serve(basic.hello, **tls_options(certs)) as server:
        with certs.client_context().wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="localhost") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n" * 3 + b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    assert data.count(b"HTTP/1.1 200 OK") == 4 and data.count(b"Hello, world!") == 4


@pytest.mark.parametrize(("http", "expected"), [("auto", "h2"), ("1", "http/1.1")])
def test_alpn_offers_h2_unless_http1_only(certs, http, expected):
    context = server_context(Config(app="m:app", **tls_options(certs)))
    with serve(basic.hello, http=http, **tls_options(certs)) as server:
        client = certs.client_context()
        client.set_alpn_protocols(["h2", "http/1.1"])
        with client.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="localhost") as sock:
            assert sock.selected_alpn_protocol() == expected
            assert sock.version() == "TLSv1.3"
    assert context is not None and context.options & ssl.OP_NO_COMPRESSION


# -- files: no sendfile over TLS -------------------------------------------------------------


def test_rsgi_response_file_over_tls(certs, tmp_path):
    path = tmp_path / "data.bin"
    data = os.urandom(BIG)
    path.write_bytes(data)
    with serve(RSGIApp(), **tls_options(certs)) as server:
        with httpx.Client(base_url=https(server), verify=certs.client_context()) as client:
            r = client.get("/file", headers={"x-path": str(path)})
            assert r.status_code == 200 and r.headers["content-length"] == str(BIG) and r.content == data
            after = client.get("/").json()  # the connection carries on
            assert after["scheme"] == "https"
            assert not after["executor"]  # the file was read on the loop, a piece at a time, by the driver


def test_file_to_a_slow_reader_is_paced(certs, tmp_path):
    """A client that reads slowly gets the whole file; the server does not race ahead of it."""
    path = tmp_path / "data.bin"
    data = os.urandom(BIG)
    path.write_bytes(data)
    with serve(RSGIApp(), **tls_options(certs)) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        with certs.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(f"GET /file HTTP/1.1\r\nhost: x\r\nx-path: {path}\r\nconnection: close\r\n\r\n".encode())
            received = b""
            time.sleep(0.5)  # the server fills what the socket takes, then waits for the drain
            while chunk := sock.recv(65536):
                received += chunk
    assert received.endswith(data)


def test_wsgi_file_wrapper_over_tls(certs, tmp_path):
    path = tmp_path / "data.bin"
    data = os.urandom(BIG)
    path.write_bytes(data)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Length", str(BIG))])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    with serve(app, interface="wsgi", **tls_options(certs)) as server:
        assert httpx.get(https(server) + "/", verify=certs.client_context()).content == data


# -- mTLS and CRLs ---------------------------------------------------------------------------


def test_mtls_required(certs):
    with serve(basic.scope_json, **mtls_options(certs)) as server:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(https(server) + "/", verify=certs.client_context())  # no certificate
        scope = httpx.get(https(server) + "/", verify=certs.client_context("client")).json()
    tls = scope["extensions"]["tls"]
    assert tls["client_cert_name"] == CLIENT_NAME
    with open(certs.client) as file:
        assert tls["client_cert_chain"][0] == file.read()
    with open(certs.ca) as file:  # OpenSSL's client sends the chain it built: the CA after its own
        assert tls["client_cert_chain"][1:] in ([], [file.read()])
    assert tls["client_cert_error"] is None


def test_mtls_optional(certs):
    with serve(basic.scope_json, **mtls_options(certs, "optional")) as server:
        anonymous = httpx.get(https(server) + "/", verify=certs.client_context()).json()
        named = httpx.get(https(server) + "/", verify=certs.client_context("client")).json()
    assert anonymous["extensions"]["tls"]["client_cert_chain"] == []
    assert named["extensions"]["tls"]["client_cert_name"] == CLIENT_NAME


def test_crl_refuses_a_revoked_certificate(certs):
    with serve(basic.hello, **mtls_options(certs, ssl_crl=[certs.crl])) as server:
        assert httpx.get(https(server) + "/", verify=certs.client_context("client")).text == "Hello, world!"
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(https(server) + "/", verify=certs.client_context("revoked"))
    # Without the CRL the same certificate is accepted: the CRL is what refuses it.
    with serve(basic.hello, **mtls_options(certs)) as server:
        assert httpx.get(https(server) + "/", verify=certs.client_context("revoked")).status_code == 200


def test_wsgi_environ_keys(certs):
    with serve(wsgi_environ, interface="wsgi", **mtls_options(certs, "optional")) as server:
        named = httpx.get(https(server) + "/", verify=certs.client_context("client")).json()
        anonymous = httpx.get(https(server) + "/", verify=certs.client_context()).json()
    assert named["wsgi.url_scheme"] == "https" and named["HTTPS"] == "on"
    assert named["SSL_PROTOCOL"] == "TLSv1.3" and named["SSL_CIPHER"]
    assert named["SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert named["SSL_CLIENT_S_DN"] == CLIENT_NAME and named["SSL_CLIENT_I_DN"] == "CN=ftserver test CA"
    with open(certs.client) as file:
        assert named["SSL_CLIENT_CERT"] == file.read()
    assert anonymous["SSL_CLIENT_VERIFY"] == "NONE" and "SSL_CLIENT_CERT" not in anonymous


def test_rsgi_scope_scheme(certs):
    with serve(RSGIApp(), **tls_options(certs)) as server:
        assert httpx.get(https(server) + "/", verify=certs.client_context()).json()["scheme"] == "https"


def test_rfc4514_names():
    rdns = ((("countryName", "FR"),), (("organizationName", "A+B, \"C\""),), (("commonName", "#x "), ("emailAddress", "a@b")))
    assert rfc4514_name(rdns) == "CN=\\#x\\ +1.2.840.113549.1.9.1=a@b,O=A\\+B\\, \\\"C\\\",C=FR"


# -- handshakes that fail cost their connection only -----------------------------------------


def test_tls12_client_refused_by_a_tls13_server(certs):
    tls12 = certs.client_context(maximum=ssl.TLSVersion.TLSv1_2)
    with serve(basic.hello, **tls_options(certs, ssl_protocol_min="tls1.3")) as server:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(https(server) + "/", verify=tls12)
        assert httpx.get(https(server) + "/", verify=certs.client_context()).status_code == 200
    with serve(basic.scope_json, **tls_options(certs)) as server:  # the default minimum: 1.2 is served
        assert httpx.get(https(server) + "/", verify=tls12).json()["extensions"]["tls"]["tls_version"] == 0x0303


@pytest.mark.parametrize("accept", ACCEPT)
def test_plain_http_and_garbage_do_not_disturb_other_clients(certs, accept):
    # (keep-alive longer than the junk takes, so the client's one connection stays; the random
    # bytes never start with 0x16, a handshake record the server would wait out)
    with serve(basic.hello, accept=accept, timeout_keep_alive=30, **tls_options(certs)) as server:
        with httpx.Client(base_url=https(server), verify=certs.client_context()) as client:
            assert client.get("/").status_code == 200
            for junk in (b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello", b"\x00" + os.urandom(300)):
                with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                    sock.sendall(junk)
                    try:
                        answer = sock.recv(65536)
                    except ConnectionResetError:
                        answer = b""
                    assert answer == b"" or answer[:1] == b"\x15", answer  # closed, or a TLS alert: never HTTP
            assert client.get("/").status_code == 200  # same connection, still served
    assert server.stats()["connections"] == 1


@pytest.mark.parametrize("accept", ACCEPT)
def test_stalled_handshake_is_timed_out(certs, accept):
    with serve(basic.hello, accept=accept, **tls_options(certs, ssl_handshake_timeout=0.5)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as silent, \
             socket.create_connection(("127.0.0.1", server.port), timeout=30) as partial:
            partial.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, never finished
            started = time.monotonic()
            assert httpx.get(https(server) + "/", verify=certs.client_context()).status_code == 200  # served meanwhile
            for sock in (silent, partial):
                try:
                    assert sock.recv(65536) == b""  # closed by the server
                except ConnectionResetError:
                    pass
            assert time.monotonic() - started < 25


def test_graceful_stop_lets_a_request_finish(certs):
    with serve(basic.sleepy, **tls_options(certs)) as server:
        result = {}

        def request():
            result["r"] = httpx.get(https(server) + "/", verify=certs.client_context(), timeout=20)

        thread = threading.Thread(target=request)
        thread.start()
        deadline = time.monotonic() + 10
        while server.stats()["open_connections"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        server.server.stop()
        thread.join(20)
    assert result["r"].status_code == 200


# -- options and start-up --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ssl_keyfile": "k.pem"}, "ssl_keyfile: TLS options need the server's certificate"),
        ({"ssl_cert_reqs": "required"}, "ssl_cert_reqs: TLS options need"),
        ({"ssl_certfile": "c", "ssl_cert_reqs": "required"}, "verifies client certificates against --ssl-ca-certs"),
        ({"ssl_certfile": "c", "ssl_ca_certs": "ca", "ssl_crl": ["crl"]}, "ssl_crl: revocation lists check client certificates"),
        ({"ssl_certfile": "c", "ssl_protocol_min": "tls1.1"}, "ssl_protocol_min: must be one of"),
        ({"ssl_certfile": "c", "ssl_handshake_timeout": 0}, "ssl_handshake_timeout: must be > 0"),
        ({"ssl_certfile": "c", "ssl_keyfile_password": "x"}, "ssl_keyfile_password: the password of --ssl-keyfile"),
    ],
)
def test_config_refuses_bad_combinations(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        Config(app="m:app", **options)


def _startup_cases(certs):
    missing = str(ROOT / "no-such-cert.pem")
    return {
        "missing": (["--ssl-certfile", missing], f"ssl_certfile: cannot read {missing!r}: No such file or directory"),
        "password": (["--ssl-certfile", certs.server, "--ssl-keyfile", certs.encrypted_key, "--ssl-keyfile-password", "wrong"], "ssl_keyfile_password: it does not decrypt"),
        "no password": (["--ssl-certfile", certs.server, "--ssl-keyfile", certs.encrypted_key], "is encrypted: give its password with --ssl-keyfile-password"),
        "mismatch": (["--ssl-certfile", certs.server, "--ssl-keyfile", certs.other_key], "does not match the certificate"),
        "not a key": (["--ssl-certfile", certs.server, "--ssl-keyfile", certs.ca], "must be a PEM certificate (chain) and its private key"),
        "ciphers": (["--ssl-certfile", certs.server, "--ssl-keyfile", certs.server_key, "--ssl-ciphers", "NOPE"], "ssl_ciphers: no cipher suite matches 'NOPE'"),
        "crl": (["--ssl-certfile", certs.server, "--ssl-keyfile", certs.server_key, "--ssl-ca-certs", certs.ca, "--ssl-cert-reqs", "optional", "--ssl-crl", certs.server_key], "ssl_crl:"),
    }


@pytest.mark.parametrize("case", ["missing", "password", "no password", "mismatch", "not a key", "ciphers", "crl"])
def test_startup_errors_are_one_line(certs, case):
    args, message = _startup_cases(certs)[case]
    done = subprocess.run([*FTSERVE, "--port", "0", *args, "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "Listening" not in done.stderr


def test_right_password_and_env_variables(certs):
    """Started as ftserve is, from FTSERVE_* variables: the banner says https://, and the log
    has no asyncio noise after failed handshakes."""
    env = {
        **os.environ,
        "FTSERVE_SSL_CERTFILE": certs.server,
        "FTSERVE_SSL_KEYFILE": certs.encrypted_key,
        "FTSERVE_SSL_KEYFILE_PASSWORD": PASSWORD,
        "FTSERVE_SSL_HANDSHAKE_TIMEOUT": "1s",
    }
    proc = subprocess.Popen([*FTSERVE, "--port", "0", "--threads", "1", "--mode", "threads", "tests.apps.basic:hello"], cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "Listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "ftserve exited"
        assert "Listening on https://127.0.0.1:" in line
        port = int(line.split("Listening on https://127.0.0.1:")[1].split()[0])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            sock.recv(100)
        socket.create_connection(("127.0.0.1", port), timeout=10).close()  # went before its handshake
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # stalled: timed out
            assert sock.recv(100) == b""
        assert httpx.get(f"https://127.0.0.1:{port}/", verify=certs.client_context()).text == "Hello, world!"
    finally:
        proc.terminate()
        _, rest = proc.communicate(timeout=30)
    assert "Traceback" not in rest and "Error" not in rest and "asyncio" not in rest, rest


@pytest.mark.skipif(sys.platform != "linux", reason="Linux only")
def test_worker_processes_serve_tls(certs, ftserve):
    """Worker processes (the GIL builds' layout) build their own context after the fork."""
    served = ftserve("--mode", "processes", "--threads", "2", "--ssl-certfile", certs.server, "--ssl-keyfile", certs.server_key, app="tests.apps.basic:hello")
    assert served.url.startswith("https://")
    with httpx.Client(verify=certs.client_context()) as client:
        for _ in range(4):
            with httpx.Client(verify=certs.client_context()) as fresh:  # new connections: both workers take some
                assert fresh.get(served.url + "/").text == "Hello, world!"
        assert client.get(served.url + "/").status_code == 200


def test_reloader_child_gets_the_password_in_its_environment(certs):
    from ftserver.reloader import Reloader, server_command

    config = Config(app="m:app", reload=True, ssl_certfile=certs.server, ssl_keyfile=certs.encrypted_key, ssl_keyfile_password=PASSWORD, ssl_crl=(certs.crl,), ssl_ca_certs=certs.ca, ssl_cert_reqs="optional")
    command = server_command(config)
    assert command[command.index("--ssl-keyfile") + 1] == certs.encrypted_key
    assert command[command.index("--ssl-crl") + 1] == certs.crl
    assert PASSWORD not in command and "--ssl-keyfile-password" not in command
    assert Reloader(config).env["FTSERVE_SSL_KEYFILE_PASSWORD"] == PASSWORD


def test_the_driver_is_chosen_after_the_handshake_with_alpns_answer(certs, monkeypatch):
    from ftserver.threads import worker

    seen = []
    chosen = worker.new_driver

    def recording(host, alpn=None):
        seen.append(alpn)
        return chosen(host, alpn)

    monkeypatch.setattr(worker, "new_driver", recording)
    with serve(basic.hello, **tls_options(certs)) as server:
        for offer in (["http/1.1"], None):  # (httpx always offers http/1.1: a plain ssl client)
            context = certs.client_context()
            if offer:
                context.set_alpn_protocols(offer)
            with context.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="localhost") as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
    assert seen == ["http/1.1", None]


async def slow_echo(scope, receive, send):
    """Reads its body slowly: the driver pauses and resumes reading many times."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        await asyncio.sleep(0.001)
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": str(size).encode()})


def test_large_upload_read_slowly(certs):
    """A large TLS upload while reading is paused and resumed many times: every byte arrives."""
    body = os.urandom(4 * 1024 * 1024 + 3)
    with serve(slow_echo, **tls_options(certs)) as server:
        with httpx.Client(base_url=https(server), verify=certs.client_context(), timeout=60) as client:
            assert client.post("/", content=body).text == str(len(body))
            assert client.post("/", content=iter([body[:100_000]] * 5)).text == "500000"


def test_client_that_reads_nothing_is_dropped(certs):
    """The send timeout (--timeout-io) over TLS: a client that takes none of a large response."""
    with serve(big, timeout_io=1, **tls_options(certs)) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with certs.client_context().wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            deadline = time.monotonic() + 25
            while not server.stats()["open_connections"] and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.stats()["open_connections"] == 1
            while server.stats()["open_connections"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert server.stats()["open_connections"] == 0
            assert sock.recv(100).startswith(b"HTTP/1.1 200")  # it had begun, then was cut


def test_websocket_over_tls(certs):
    """wss://: the WebSocket hand-off works on the TLS transport, with scheme wss."""
    from websockets.sync.client import connect

    async def app(scope, receive, send):
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": f"{message['text']} {scope['scheme']}"})
            await send({"type": "websocket.close"})

    with serve(app, **tls_options(certs)) as server:
        with connect(f"wss://localhost:{server.port}/", ssl=certs.client_context()) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi wss"
