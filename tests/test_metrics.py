"""``--metrics``: the Prometheus endpoint, parsed with prometheus_client's own parser, in
threads mode and merged across worker processes (kept across a reload)."""

from __future__ import annotations

import re
import signal
import socket
import time

import httpx
import pytest

from tests.ftserve_process import ftserve  # noqa: F401 - the fixture

parser = pytest.importorskip("prometheus_client.parser")


def scrape(url: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def wait_for(url: str, check, timeout: float = 15.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def metrics_url(served) -> str:
    return served.wait_log(r"Metrics on (http://\S+)").group(1)


def bad_request(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"NOT A REQUEST\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 400")


def test_threads_mode(ftserve):  # noqa: F811
    served = ftserve("--threads", "2", "--metrics", "--metrics-port", "0", app="tests.apps.basic:hello")
    url = metrics_url(served)
    with httpx.Client() as client:
        for _ in range(20):
            assert client.get(served.url + "/").status_code == 200
    bad_request(served.port)
    ok = 'ftserver_requests_total{http_version=1.1,status=2xx}'
    samples = wait_for(url, lambda s: s.get(ok) == 20 and s.get('ftserver_requests_total{http_version=1.1,status=4xx}') == 1)
    assert samples[ok] == 20
    assert samples["ftserver_requests_total{http_version=1.1,status=4xx}"] == 1
    assert samples["ftserver_request_duration_seconds_count"] == 20
    assert samples["ftserver_request_duration_seconds_bucket{le=+Inf}"] == 20
    assert 0 < samples["ftserver_request_duration_seconds_sum"] < 60
    assert samples["ftserver_response_body_bytes_total"] == 20 * len(b"Hello, world!")
    assert samples["ftserver_worker_threads"] == 2
    assert samples["ftserver_connections_opened_total"] >= 2
    assert "ftserver_event_loop_lag_seconds" in samples
    assert httpx.get(url.replace("/metrics", "/other")).status_code == 404


def test_worker_processes_are_merged_and_kept_across_a_reload(ftserve):  # noqa: F811
    served = ftserve("--workers", "2", "--metrics", "--metrics-port", "0", app="tests.apps.basic:hello")
    url = metrics_url(served)
    served.wait_workers(2)
    for _ in range(30):
        with httpx.Client() as client:  # a connection each: both processes get some
            assert client.get(served.url + "/").status_code == 200
    ok = "ftserver_requests_total{http_version=1.1,status=2xx}"
    samples = wait_for(url, lambda s: s.get(ok) == 30 and s.get("ftserver_worker_threads") == 2)
    assert samples[ok] == 30 and samples["ftserver_worker_threads"] == 2
    old = served.workers()
    served.signal(signal.SIGHUP)
    served.wait_workers(2, exclude=old, timeout=30)
    restarts = 'ftserver_worker_restarts_total{reason=reload}'
    samples = wait_for(url, lambda s: s.get(restarts) == 2 and s.get("ftserver_worker_threads") == 2)
    assert samples[restarts] == 2
    assert samples[ok] == 30  # the exited processes' counts are kept
    assert samples["ftserver_worker_threads"] == 2


def test_a_busy_metrics_port_is_one_line(ftserve):  # noqa: F811
    import subprocess
    import sys

    from tests.ftserve_process import ROOT

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "ftserver.cli", "--port", "0", "--metrics", "--metrics-port", str(port), "tests.apps.basic:hello"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode != 0
    assert re.search(r"metrics: cannot listen on 127\.0\.0\.1:\d+", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
