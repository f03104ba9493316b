"""The access log: one whole line per request, through our own batched writer when the
access logger is ours alone, through ``logging`` records when the application configured it."""

from __future__ import annotations

import concurrent.futures
import logging
import re
import time

import httpx

from ftserver.testing import serve
from tests.apps.basic import hello
from tests.test_cli import start, stop

LINE = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d 127\.0\.0\.1:\d+ - "GET /n/(\d+) HTTP/1\.1" 200 13 \d+\.\d\dms')


def test_every_request_gets_one_whole_line_from_several_threads(tmp_path):
    log = tmp_path / "access.log"
    proc, url = start("--threads", "2", "--no-supervisor", "--access-log-file", str(log), "tests.apps.basic:hello")
    try:

        def fetch(index: int) -> int:
            with httpx.Client() as client:  # a connection per task: both threads get some
                return sum(client.get(f"{url}/n/{index * 50 + i}").status_code == 200 for i in range(50))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert sum(pool.map(fetch, range(8))) == 400
    finally:
        assert stop(proc) == 0  # the last batch is written before the worker exits
    lines = log.read_text().splitlines()
    numbers = sorted(int(LINE.fullmatch(text).group(1)) for text in lines)  # AttributeError: a torn line
    assert numbers == list(range(400))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_an_application_handler_gets_records_with_their_fields():
    """A handler the application added to ``ftserver.access`` gets ordinary records
    (message and args), not our preformatted lines."""
    access = logging.getLogger("ftserver.access")
    records = Records()
    saved = access.handlers[:], access.propagate, access.level
    access.handlers[:] = [records]
    access.propagate = False
    try:
        with serve(hello, access_log=True) as server:
            assert httpx.get(server.url + "/n/7").status_code == 200
            deadline = time.monotonic() + 5
            while not records.records and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        access.handlers[:], access.propagate, _ = saved
        access.setLevel(saved[2])
    (record,) = records.records
    assert record.args[1:6] == ("GET", "/n/7", "1.1", 200, 13)
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET /n/7 HTTP/1\.1" 200 13 \d+\.\d\dms', record.getMessage())


def test_responses_the_server_makes_are_logged_too(tmp_path):
    """A 400 for a malformed head (no request: ``"-"``) and a 400 for a broken body of a
    parsed request get their lines, as the application's responses do."""
    import socket

    log = tmp_path / "access.log"
    proc, url = start("--no-supervisor", "--access-log-file", str(log), "tests.apps.basic:echo")
    port = int(url.rsplit(":", 1)[1])
    try:
        for raw in (b"NOT A REQUEST\r\n\r\n", b"POST /chunks HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    finally:
        assert stop(proc) == 0
    # (in either order: each worker thread writes its own lines, the two connections may
    # have gone to two threads)
    lines = sorted(log.read_text().splitlines(), key=lambda line: '"-"' not in line)
    assert len(lines) == 2, lines
    assert re.search(r'127\.0\.0\.1:\d+ - "-" 400 \d+ 0\.00ms$', lines[0]), lines[0]
    assert re.search(r'127\.0\.0\.1:\d+ - "POST /chunks HTTP/1\.1" 400 \d+ \d+\.\d\dms$', lines[1]), lines[1]
