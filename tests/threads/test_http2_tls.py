"""HTTP/2 over TLS: the driver chosen by ALPN (``h2`` or ``http/1.1``) on one port.

The certificate is made at test time with the ``openssl`` CLI; the worker thread is given
an ``ssl.SSLContext`` built here (the server's ``--ssl-*`` options build the same one).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import httpx
import pytest

from ftserver.config import Config
from ftserver.threads.worker import WorkerThread
from tests.apps import basic

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def serve_tls(app, certificate, **options):
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["h2", "http/1.1"])
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.setblocking(False)
    config = Config(app=app, interface="asgi", log_level="warning", threads=1, timeout_graceful_shutdown=5, **options)
    worker = WorkerThread(0, app, config, listener, ssl_context=context)
    worker.start()
    assert worker.ready.wait(10) and worker.startup_error is None
    return worker, f"https://127.0.0.1:{listener.getsockname()[1]}"


def stop(worker):
    worker.stop()
    worker.join(10)
    worker.listener.close()


def test_alpn_chooses_the_driver(certificate):
    worker, url = serve_tls(basic.scope_json, certificate)
    try:
        verify = ssl.create_default_context(cafile=str(certificate[0]))
        with httpx.Client(http2=True, verify=verify, timeout=10) as client:
            r = client.get(url + "/two")
            assert r.http_version == "HTTP/2"
            assert r.json()["http_version"] == "2" and r.json()["scheme"] == "https"
        with httpx.Client(verify=verify, timeout=10) as client:  # ALPN http/1.1
            r = client.get(url + "/one")
            assert r.http_version == "HTTP/1.1"
            assert r.json()["http_version"] == "1.1" and r.json()["scheme"] == "https"
    finally:
        stop(worker)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_over_tls_no_alpn_is_http1(certificate):
    worker, url = serve_tls(basic.hello, certificate)
    try:
        out = subprocess.run(["curl", "-sS", "--cacert", str(certificate[0]), "-w", " %{http_version}", url + "/"], capture_output=True, timeout=30)
        assert out.stdout == b"Hello, world! 2", out
        out = subprocess.run(["curl", "-sS", "--no-alpn", "--cacert", str(certificate[0]), "-w", " %{http_version}", url + "/"], capture_output=True, timeout=30)
        assert out.stdout == b"Hello, world! 1.1", out
    finally:
        stop(worker)


def test_http_1_mode_over_tls_ignores_h2_alpn(certificate):
    worker, url = serve_tls(basic.hello, certificate, http="1")
    try:
        # (the context offers h2 here; the server's own context would not with --http 1)
        verify = ssl.create_default_context(cafile=str(certificate[0]))
        verify.set_alpn_protocols(["http/1.1"])
        with httpx.Client(verify=verify, timeout=10) as client:
            assert client.get(url + "/").text == "Hello, world!"
    finally:
        stop(worker)
