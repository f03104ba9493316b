"""Before a measurement: is the server up, and does it answer the scenario's request right?

wrk, h2load and wsload count any answer as a success; one sample exchange per start catches a
server that answers fast but wrong (or over the wrong protocol). HTTP/1.1 through ``http.client``,
HTTP/2 through ``curl`` (which reports the protocol it spoke), WebSocket through ``wsload``'s
own client. Also the run's TLS certificate, made with the ``openssl`` command.
"""

from __future__ import annotations

import atexit
import functools
import http.client
import shutil
import subprocess
import tempfile
from pathlib import Path

import procs
import wsload
from scenarios import Scenario

CURL_TIMEOUT_S = 5


@functools.cache
def tls_files(host: str) -> tuple[str, str]:
    """A self-signed certificate for ``host`` and its key (PKCS#8, as Granian wants), made once
    per run with the ``openssl`` command in a temporary folder removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", f"subjectAltName=DNS:localhost,IP:{host}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return str(cert), str(key)


def _expected(scenario: Scenario, status: int, size: int) -> str | None:
    if status != 200 or size != scenario.response_bytes:
        return f"wrong sample response: {status} with {size} body bytes (expected 200 with {scenario.response_bytes})"
    return None


def check_http1(host: str, port: int, scenario: Scenario) -> str | None:
    """One HTTP/1.1 request: None if the answer is a 200 with the expected body size."""
    conn = procs.connection(host, port, scenario.tls, timeout=5)
    try:
        conn.request(scenario.method, scenario.path, body=b"x" * scenario.request_bytes or None)
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"sample request failed: {exc!r}"
    finally:
        conn.close()
    return _expected(scenario, response.status, len(body))


def _curl_h2(host: str, port: int, scenario: Scenario) -> tuple[int, int, str] | str:
    """(status, body bytes, HTTP version) of one curl request over HTTP/2, or why it failed."""
    if shutil.which("curl") is None:
        return "curl not installed (the HTTP/2 sample request needs it)"
    url = f"{'https' if scenario.tls else 'http'}://{host}:{port}{scenario.path}"
    mode = ["-k", "--http2"] if scenario.tls else ["--http2-prior-knowledge"]
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", str(CURL_TIMEOUT_S), *mode, "-X", scenario.method,
            "-w", "%{http_code} %{size_download} %{http_version}", url]  # fmt: skip
    if scenario.request_bytes:
        argv += ["--data-binary", "x" * scenario.request_bytes]
    try:
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=CURL_TIMEOUT_S + 5)
    except subprocess.TimeoutExpired:
        return "curl timed out"
    fields = done.stdout.split()
    if done.returncode != 0 or len(fields) != 3:
        return f"curl failed ({done.returncode}): {done.stderr.strip()[:120]}"
    return int(fields[0]), int(fields[1]), fields[2]


def h2_probe(host: str, port: int, scenario: Scenario) -> bool:
    """Whether the server answers an HTTP/2 request at all (start-up poll)."""
    answer = _curl_h2(host, port, scenario)
    return not isinstance(answer, str) and answer[0] != 0


def check_h2(host: str, port: int, scenario: Scenario) -> str | None:
    """One HTTP/2 request: None if it was HTTP/2 and a 200 with the expected body size."""
    answer = _curl_h2(host, port, scenario)
    if isinstance(answer, str):
        return f"sample request failed: {answer}"
    status, size, version = answer
    if version != "2":
        return f"answered over HTTP/{version}, not HTTP/2"
    return _expected(scenario, status, size)


def check_websocket(host: str, port: int, scenario: Scenario) -> str | None:
    """One WebSocket connection and message: None if the echo came back whole."""
    return wsload.echo_once(host, port, scenario.path, scenario.message_bytes)


def check(host: str, port: int, scenario: Scenario) -> str | None:
    """The scenario's sample exchange, by its protocol."""
    if scenario.protocol == "h2":
        return check_h2(host, port, scenario)
    if scenario.protocol == "websocket":
        return check_websocket(host, port, scenario)
    return check_http1(host, port, scenario)


def check_metrics(host: str, port: int) -> str | None:
    """The metrics listener answers ``/metrics`` in Prometheus' format (ftserve-metrics)."""
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"metrics listener: {exc!r}"
    finally:
        conn.close()
    if response.status != 200 or b"ftserver_requests_total" not in body:
        return f"metrics listener answered {response.status} without ftserver_requests_total"
    return None
