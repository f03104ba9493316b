"""``--limit-concurrency N`` with real clients: N slow requests in progress, the next one is
answered 503 with ``Retry-After`` (HTTP/1.1, HTTP/2 streams, WebSocket handshakes) without
running the app, counted in ``/metrics``; the count goes back to zero however requests end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import h2.events
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from ftserver.testing import serve
from tests.apps import gate
from tests.ftserve_process import ROOT, ftserve, wait_for  # noqa: F401 - the fixture
from tests.threads.h2client import H2Client

parser = pytest.importorskip("prometheus_client.parser")


def started(directory) -> int:
    return sum(name.startswith("started-") for name in os.listdir(directory))


def slow_requests(url: str, count: int) -> tuple[list[threading.Thread], list[int]]:
    """``count`` requests to ``/slow``, each on a connection of its own, from threads."""
    statuses: list[int] = []

    def one() -> None:
        statuses.append(httpx.get(url + "/slow", timeout=40).status_code)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, statuses


def scrape(url: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def assert_refused(response: httpx.Response) -> None:
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.text == "Service Unavailable"


@pytest.mark.parametrize("layout", [("--mode", "threads", "--threads", "2"), ("--workers", "1")], ids=["threads", "process"])
def test_the_request_over_the_limit_gets_503_and_is_counted(ftserve, tmp_path, layout):  # noqa: F811
    served = ftserve(
        *layout, "--limit-concurrency", "2", "--metrics", "--metrics-port", "0",
        env={"FTSERVE_TEST_GATE": str(tmp_path)}, app="tests.apps.gate:app",
    )
    metrics = served.wait_log(r"Metrics on (http://\S+)").group(1)
    threads, statuses = slow_requests(served.url, 2)
    wait_for(lambda: started(tmp_path) == 2, 20, "two slow requests in progress")
    assert_refused(httpx.get(served.url + "/fast"))
    with httpx.Client(http1=False, http2=True) as client:
        response = client.get(served.url + "/fast")
        assert response.http_version == "HTTP/2"
        assert_refused(response)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"ws://127.0.0.1:{served.port}/", open_timeout=10)
    assert refused.value.response.status_code == 503
    assert refused.value.response.headers["retry-after"] == "1"
    assert started(tmp_path) == 2  # the app never saw the refused ones
    served.wait_log(r"WARNING: Exceeded --limit-concurrency 2: 1 request\(s\) answered 503")
    (tmp_path / "open").touch()
    for thread in threads:
        thread.join(40)
    assert statuses == [200, 200]
    assert httpx.get(served.url + "/fast").text == "done"
    with connect(f"ws://127.0.0.1:{served.port}/", open_timeout=10) as ws:
        assert ws.response.status_code == 101

    def counted():
        samples = scrape(metrics)
        return samples if samples.get("ftserver_requests_refused_total") == 3 else None

    samples = wait_for(counted, 15, "3 refusals in /metrics")
    assert samples["ftserver_requests_total{http_version=1.1,status=5xx}"] == 2  # the HTTP/1.1 request and the handshake
    assert samples["ftserver_requests_total{http_version=2,status=5xx}"] == 1


def test_http2_streams_count_one_by_one(tmp_path, monkeypatch):
    monkeypatch.setenv("FTSERVE_TEST_GATE", str(tmp_path))
    with serve(gate.app, limit_concurrency=2) as server:
        client = H2Client(server.port)
        try:
            streams = [client.request("/slow") for _ in range(3)]
            headers, body, _ = client.response(streams[2])
            assert headers[b":status"] == b"503" and headers[b"retry-after"] == b"1"
            assert body == b"Service Unavailable"
            wait_for(lambda: started(tmp_path) == 2, 10, "two slow streams in progress")
            (tmp_path / "open").touch()
            for stream_id in streams[:2]:
                headers, body, last = client.response(stream_id)
                assert headers[b":status"] == b"200" and isinstance(last, h2.events.StreamEnded)
        finally:
            client.sock.close()


def wait_idle(server, timeout: float = 15.0) -> None:
    wait_for(lambda: server.server.in_flight.total() == 0, timeout, "no request in progress")


def test_no_leak_however_requests_end(tmp_path, monkeypatch):
    monkeypatch.setenv("FTSERVE_TEST_GATE", str(tmp_path))
    with serve(gate.app, limit_concurrency=12, threads=2) as server:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(10):
                assert client.get("/fast").status_code == 200
                assert client.get("/crash").status_code == 500  # the app raised: the server's 500
        for _ in range(5):
            with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=10) as ws:
                assert ws.response.status_code == 101  # (the app accepts and closes at once)
        wait_idle(server)
        for _ in range(5):  # clients that leave in the middle (HTTP/1.1 close, HTTP/2 reset)
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                sock.sendall(b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
                wait_for(lambda: started(tmp_path) % 2 == 1, 10, "the request to start")
            client = H2Client(server.port)
            stream_id = client.request("/slow")
            wait_for(lambda: started(tmp_path) % 2 == 0, 10, "the request to start")
            client.conn.reset_stream(stream_id)
            client.flush()
            client.sock.close()
        # Their apps still run: they are still in progress (as Uvicorn counts its tasks).
        assert server.server.in_flight.total() == 10
        (tmp_path / "open").touch()
        wait_idle(server)
        with connect(f"ws://127.0.0.1:{server.port}/", open_timeout=10) as ws:
            assert ws.response.status_code == 101


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def test_wsgi_and_static_responses_end_their_count(tmp_path):
    (tmp_path / "a.txt").write_text("static")
    with serve(wsgi_app, limit_concurrency=1, static_path_mount=(str(tmp_path),)) as server:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(20):
                assert client.get("/").text == "ok"
                assert client.get("/static/a.txt").text == "static"
                assert client.get("/static/missing").status_code == 404
        wait_idle(server)


@pytest.mark.parametrize("option", ["--limit-concurrency", "--limit-max-connections"])
def test_cli_refuses_a_limit_below_one_in_one_line(option):
    result = subprocess.run(
        [sys.executable, "-m", "ftserver", option, "0", "tests.apps.basic:hello"], cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert errors == [f"Error: {option[2:].replace('-', '_')}: must be a whole number of at least 1 (unset: no limit), got 0"]
