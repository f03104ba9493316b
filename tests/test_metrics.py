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



# --- the counting itself (ThreadMetrics), against the obvious way ------------------------

from bisect import bisect_left  # noqa: E402

from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ftserver import metrics  # noqa: E402


class _Request:
    def __init__(self, http_version: str) -> None:
        self.http_version = http_version


class _Exchange:
    def __init__(self, http_version: str, status: int, response_bytes: int) -> None:
        self.request = _Request(http_version)
        self.status = status
        self.response_bytes = response_bytes


def expected_samples(responses: list[tuple[str, int, int, float]]) -> dict[str, float]:
    """The exposition's request counts, buckets, count and bytes, one response at a time."""
    samples: dict[str, float] = {}
    for version in metrics.VERSIONS:
        for klass in metrics.CLASSES:
            samples[f"ftserver_requests_total{{http_version={version},status={klass}}}"] = 0
    buckets = [0] * (len(metrics.BUCKETS) + 1)
    for version, status, _, duration in responses:
        version = version if version in metrics.VERSIONS else "1.1"
        klass = metrics.CLASSES[min(max(status // 100 - 1, 0), 4)]
        samples[f"ftserver_requests_total{{http_version={version},status={klass}}}"] += 1
        buckets[bisect_left(metrics.BUCKETS, duration)] += 1
    total = 0
    for bound, count in zip([*map(repr, metrics.BUCKETS), "+Inf"], buckets):
        total += count
        samples[f"ftserver_request_duration_seconds_bucket{{le={bound}}}"] = total
    samples["ftserver_request_duration_seconds_count"] = total
    samples["ftserver_response_body_bytes_total"] = sum(nbytes for _, _, nbytes, _ in responses)
    return samples


def exposition(directory: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for family in parser.text_string_to_metric_families(metrics.Totals(directory).render()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


_response = st.tuples(
    st.sampled_from(["1.1", "1.1", "1.0", "2", "3"]),
    st.sampled_from([101, 200, 200, 204, 302, 404, 500, 599, 600, 999]),
    st.integers(0, 10_000),
    st.one_of(
        st.sampled_from([*metrics.BUCKETS, 0.0001, 0.007, 0.03]),
        st.floats(0, 0.02),
        st.floats(0, 20),
    ),
)


@settings(max_examples=100, deadline=None)
@given(batches=st.lists(st.lists(_response, max_size=30), max_size=4))
@example(batches=[[("1.1", 200, 5, 0.007)]])  # above the first bound only
@example(batches=[[("1.1", 200, 5, bound) for bound in metrics.BUCKETS]])  # on each bound: le
@example(batches=[[("1.1", 200, 5, 0.001), ("1.0", 404, 0, 0.001)], [("2", 999, 1, 11.0)]])
def test_counts_and_buckets_are_exact(tmp_path_factory: pytest.TempPathFactory, batches: list[list[tuple[str, int, int, float]]]) -> None:
    """Counted in batches (the once-a-second fold) as one at a time: every bucket, a
    duration on a bucket's bound in that bucket (le), every version and status class."""
    directory = str(tmp_path_factory.mktemp("board"))
    counters = metrics.ThreadMetrics(metrics.MetricsBoard(directory, 1), 0)
    for batch in batches:
        for version, status, nbytes, duration in batch:
            counters.observe(_Request(version), status, nbytes, duration)
        counters.tick(0.0, 0, 0)
    samples = exposition(directory)
    responses = [response for batch in batches for response in batch]
    for name, value in expected_samples(responses).items():
        assert samples[name] == value, name
    assert samples["ftserver_request_duration_seconds_sum"] == pytest.approx(sum(r[3] for r in responses))


def test_a_report_measures_from_its_start(tmp_path: pytest.TempPathFactory) -> None:
    counters = metrics.ThreadMetrics(metrics.MetricsBoard(str(tmp_path), 1), 0)
    counters.report(_Exchange("1.1", 200, 13), None, metrics.perf_counter())
    counters.report(_Exchange("2", 503, 7), None, metrics.perf_counter() - 3.0)
    counters.stop()  # (folds what is left)
    samples = exposition(str(tmp_path))
    assert samples["ftserver_requests_total{http_version=1.1,status=2xx}"] == 1
    assert samples["ftserver_requests_total{http_version=2,status=5xx}"] == 1
    assert samples["ftserver_request_duration_seconds_bucket{le=2.5}"] == 1
    assert samples["ftserver_request_duration_seconds_bucket{le=5.0}"] == 2
    assert 3.0 <= samples["ftserver_request_duration_seconds_sum"] < 4.0
    assert samples["ftserver_response_body_bytes_total"] == 20
