"""WSGI (PEP 3333) over real sockets: environ, streaming input, responses, errors, threads."""

from __future__ import annotations

import http.client
import io
import json
import logging
import socket
import sys
import threading
import time
from wsgiref.validate import validator

import httpx
import pytest

from ftserver.testing import serve
from tests.conftest import RawClient


def wsgi(app, **options):
    """Serve a WSGI app (interface given explicitly: validator-wrapped apps take *args)."""
    options.setdefault("interface", "wsgi")
    return serve(app, **options)


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def error_log():
    logger = logging.getLogger("ftserver.error")
    handler = LogRecords()
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def wait_for(predicate, limit: float = 5.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- environ ---------------------------------------------------------------------------


def environ_app(environ, start_response):
    """Answer with the str values of the environ and facts about the rest."""
    body = b"".join(environ["wsgi.input"])
    data = {k: v for k, v in environ.items() if type(v) is str}
    data["body_length"] = len(body)
    data["wsgi.version"] = list(environ["wsgi.version"])
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.input_terminated"):
        data[key] = environ[key]
    data["has_file_wrapper"] = callable(environ["wsgi.file_wrapper"])
    out = json.dumps(data).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))])
    return [out]


def test_environ_fields():
    with wsgi(validator(environ_app), root_path="/mount") as server:
        response = httpx.post(
            server.url + "/caf%C3%A9/x%2Fy?q=%C3%A9&b=2",
            content=b"0123456789",
            headers=[
                ("Content-Type", "text/plain"),
                ("X-Multi", "a"),
                ("X-Multi", "b"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
                ("X_Spoofed", "no"),
            ],
        )
    assert response.status_code == 200
    env = response.json()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/mount"
    # Percent-decoded bytes as latin-1 native strings (PEP 3333 "Unicode Issues").
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/x/y"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/x/y"
    assert env["QUERY_STRING"] == "q=%C3%A9&b=2"
    assert env["REQUEST_URI"] == "/caf%C3%A9/x%2Fy?q=%C3%A9&b=2"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "10"
    assert env["body_length"] == 10
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["HTTP_HOST"] == f"127.0.0.1:{server.port}"
    assert env["HTTP_X_MULTI"] == "a, b"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert "HTTP_X_SPOOFED" not in env  # names with "_" are dropped
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["has_file_wrapper"] is True


def test_environ_http10_and_absolute_form(raw_client):
    with wsgi(environ_app) as server:
        client = raw_client(server.port)
        client.send(b"GET http://example.com/p/q?x=1 HTTP/1.0\r\nHost: example.com\r\n\r\n")
        status, headers, body = client.read_response()
    env = json.loads(body)
    assert status == 200
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["PATH_INFO"] == "/p/q" and env["QUERY_STRING"] == "x=1"
    assert env["SCRIPT_NAME"] == ""
    assert "CONTENT_LENGTH" not in env


def test_environ_over_unix_socket(tmp_path):
    path = str(tmp_path / "s.sock")
    with wsgi(environ_app, uds=path):
        transport = httpx.HTTPTransport(uds=path)
        with httpx.Client(transport=transport) as client:
            env = client.get("http://example.org:8080/").json()
    assert env["SERVER_NAME"] == "example.org" and env["SERVER_PORT"] == "8080"
    assert "REMOTE_ADDR" not in env


def test_auto_detection_serves_a_plain_callable():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"auto"]

    with serve(app) as server:
        assert httpx.get(server.url).text == "auto"
        assert server.server.interface == "wsgi"


# -- request body ----------------------------------------------------------------------


def test_input_streams_while_the_client_is_still_sending(raw_client):
    """The handler gets the first part of the body before the client sent the rest
    (with the loop-side body buffer off; see the buffer's own tests below)."""
    first_part_read = threading.Event()
    seen = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        seen.append(stream.read(5))
        first_part_read.set()
        seen.append(stream.read(5))
        seen.append(stream.read(5))  # past the end: short, never blocks
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"|".join(seen)]

    with wsgi(validator(app), wsgi_body_buffer=0) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        assert first_part_read.wait(5), "the handler did not get the first bytes before the rest were sent"
        client.send(b"world")
        status, _, body = client.read_response()
    assert status == 200
    assert body == b"hello|world|"


def test_large_body_is_not_buffered_whole():
    """A 32 MiB upload read slowly at first: the server reads the socket only as the
    handler consumes (the driver's window), so the client is held back meanwhile."""
    size = 32 * 1024 * 1024
    block = b"z" * 65536
    progress = {"max_ahead": 0}
    sent = {"n": 0}

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        total = 0
        while True:
            data = stream.read(65536)
            if not data:
                break
            total += len(data)
            progress["max_ahead"] = max(progress["max_ahead"], sent["n"] - total)
            if total < 4 * 1024 * 1024:
                time.sleep(0.005)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(total).encode()]

    with wsgi(validator(app)) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        client = RawClient.__new__(RawClient)
        client.sock, client.buf = sock, b""
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // len(block)):
            sent["n"] += len(block)
            client.send(block)
        status, _, body = client.read_response()
        client.close()
    assert (status, body) == (200, str(size).encode())
    # What the client got ahead of the handler is bounded by socket buffers plus the
    # driver's read window (a few MiB), far below the body size.
    assert progress["max_ahead"] < size // 2


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_chunked_request_body(raw_client, http1):
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        parts = []
        while True:
            data = stream.read(3)
            if not data:
                break
            parts.append(data)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b",".join(parts) + b";" + environ.get("CONTENT_LENGTH", "none").encode()]

    with wsgi(validator(app), http1=http1) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
        time.sleep(0.05)
        client.send(b"3\r\nefg\r\n0\r\n\r\n")
        status, _, body = client.read_response()
    assert status == 200
    assert body == b"abc,def,g;none"


def test_readline_readlines_and_iteration():
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        first = stream.readline()
        limited = stream.readline(3)
        rest_of_line = stream.readline()
        hinted = stream.readlines(1)
        remaining = list(stream)
        start_response("200 OK", [("Content-Type", "application/json")])
        out = {"first": first, "limited": limited, "rest": rest_of_line, "hinted": hinted, "remaining": remaining}
        return [json.dumps(out, default=lambda b: b.decode()).encode()]

    def body():
        yield b"line one\nline"
        yield b" two\nthree\n"
        yield b"four\nfive"

    with wsgi(validator(app)) as server:
        data = httpx.post(server.url, content=body()).json()
    assert data == {
        "first": "line one\n",
        "limited": "lin",
        "rest": "e two\n",
        "hinted": ["three\n"],
        "remaining": ["four\n", "five"],
    }


def test_read_all_and_long_line_across_chunks():
    def app(environ, start_response):
        stream = environ["wsgi.input"]
        line = stream.readline()
        rest = stream.read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d %d" % (len(line), len(rest))]

    def body():
        for _ in range(40):
            yield b"a" * 10000
        yield b"\n"
        for _ in range(10):
            yield b"b" * 10000

    with wsgi(app) as server:
        assert httpx.post(server.url, content=body()).text == "400001 100000"


def test_expect_continue_only_when_the_body_is_read(raw_client):
    """Without the loop-side buffer (or for a body larger than it), 100 Continue waits
    until the app reads the body."""

    def app(environ, start_response):
        body = environ["wsgi.input"].read(4) if environ["PATH_INFO"] == "/read" else b"unread"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    with wsgi(app, wsgi_body_buffer=0) as server:
        client = raw_client(server.port)
        client.send(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert client._read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        client.send(b"data")
        assert client.read_response()[2] == b"data"
        other = raw_client(server.port)
        other.send(b"POST /skip HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        status, _, body = other.read_response()
        assert (status, body) == (200, b"unread")  # no 100 Continue before the final response


def test_unread_body_does_not_break_keep_alive(raw_client):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    with wsgi(app) as server:
        client = raw_client(server.port)
        client.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.read_response()[2] == b"/a"
        assert client.read_response()[2] == b"/b"


def test_client_disconnect_mid_body_raises_oserror_in_the_handler(raw_client):
    outcome = {}
    done = threading.Event()

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read(100)
        except OSError as exc:
            outcome["error"] = type(exc).__name__
            done.set()
            raise
        start_response("200 OK", [])
        return [b""]

    with wsgi(app, wsgi_body_buffer=0) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        client.close()
        assert done.wait(5)
        assert httpx.get(server.url).status_code == 200  # the worker lives on
    assert outcome["error"] == "ClientDisconnected"


def test_stalled_request_body_times_out_with_408(raw_client):
    outcome = {}

    def app(environ, start_response):
        try:
            environ["wsgi.input"].read(100)
        except TimeoutError as exc:
            outcome["error"] = exc
            raise
        start_response("200 OK", [])
        return [b""]

    with wsgi(app, timeout_io=0.5, wsgi_body_buffer=0) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        status, headers, _ = client.read_response()
        assert status == 408
        assert headers["connection"] == "close"
        assert client.read_until_closed() == b""
    assert isinstance(outcome["error"], OSError)


@pytest.mark.parametrize("streamed", [False, True])
def test_app_that_survives_a_body_timeout_still_closes_the_connection(raw_client, streamed):
    def app(environ, start_response):
        try:
            environ["wsgi.input"].read(100)
        except TimeoutError:
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"partial ", b"body read"]) if streamed else [b"partial body read"]

    with wsgi(app, timeout_io=0.3, wsgi_body_buffer=0) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        status, headers, body = client.read_response()
        assert (status, body) == (200, b"partial body read")
        assert headers["connection"] == "close"
        assert client.read_until_closed() == b""


# -- the loop-side body buffer (--wsgi-body-buffer) ---------------------------------------


def _echo_body(calls):
    def app(environ, start_response):
        calls.append(environ["PATH_INFO"])
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def test_slow_uploads_hold_no_handler_thread(raw_client):
    """Clients trickling their bodies ("slow POST") wait on the loop, not in the one
    handler thread: a plain GET is answered meanwhile, and each upload reaches the app
    whole once it is complete."""
    calls = []
    with wsgi(_echo_body(calls), blocking_threads=1, timeout_io=30) as server:
        uploads = []
        for index in range(3):
            client = raw_client(server.port, timeout=10)
            client.send(b"POST /up%d HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello" % index)
            uploads.append(client)
        # With the body read in a handler thread this waits for --timeout-io (30 s),
        # past the client's own 10 s timeout.
        assert httpx.get(server.url + "/get", timeout=10).text == ""
        assert calls == ["/get"]  # no upload has reached the app yet
        for client in uploads:
            client.send(b"world")
        assert [client.read_response()[2] for client in uploads] == [b"helloworld"] * 3
    assert sorted(calls) == ["/get", "/up0", "/up1", "/up2"]


def test_a_stalled_upload_gets_408_without_reaching_the_app(raw_client):
    calls = []
    with wsgi(_echo_body(calls), timeout_io=0.5) as server:
        client = raw_client(server.port)
        client.send(b"POST /stalled HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        status, headers, body = client.read_response()
        assert (status, body) == (408, b"request body not received in time\n")
        assert headers["connection"] == "close"
        assert client.read_until_closed() == b""
        assert httpx.get(server.url).status_code == 200  # the worker lives on
    assert calls == ["/"]  # only the GET


def test_an_upload_that_keeps_coming_is_not_timed_out(raw_client):
    """The timeout counts from the last bytes received, not from the start."""
    with wsgi(_echo_body([]), timeout_io=0.6) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        for part in (b"ab", b"cd", b"ef"):
            time.sleep(0.4)
            client.send(part)
        assert client.read_response()[::2] == (200, b"abcdef")


def test_a_buffered_body_answers_expect_continue_at_once(raw_client):
    calls = []
    with wsgi(_echo_body(calls)) as server:
        client = raw_client(server.port)
        client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        assert client._read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        assert calls == []  # the app runs once the body is here
        client.send(b"data")
        assert client.read_response()[::2] == (200, b"data")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_larger_than_the_buffer_is_handed_over_after_it(raw_client, framing):
    """Past --wsgi-body-buffer bytes the app starts and reads the rest as it comes."""
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    first, rest = b"x" * 20, b"y" * 20
    with wsgi(app, wsgi_body_buffer=16) as server:
        client = raw_client(server.port)
        if framing == "chunked":
            client.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n" + first + b"\r\n")
        else:
            client.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\n" + first)
        assert started.wait(5), "the app did not start after the buffer was full"
        client.send(b"14\r\n" + rest + b"\r\n0\r\n\r\n" if framing == "chunked" else rest)
        assert client.read_response()[::2] == (200, first + rest)


def test_a_client_gone_during_a_buffered_upload_never_reaches_the_app(raw_client):
    calls = []
    with wsgi(_echo_body(calls)) as server:
        client = raw_client(server.port)
        client.send(b"POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial")
        time.sleep(0.1)
        client.close()
        assert httpx.get(server.url).status_code == 200
        time.sleep(0.2)
    assert calls == ["/"]


# -- responses -------------------------------------------------------------------------


def test_single_element_list_gets_content_length_and_generators_are_chunked(raw_client):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/list":
            return [b"whole body"]

        def gen():
            yield b"part one, "
            yield b""
            yield b"part two"

        return gen()

    with wsgi(app) as server:
        client = raw_client(server.port)
        client.send(b"GET /list HTTP/1.1\r\nHost: x\r\n\r\nGET /gen HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = client.read_response()
        assert headers["content-length"] == "10" and body == b"whole body"
        status, headers, body = client.read_response()
        assert headers["transfer-encoding"] == "chunked" and body == b"part one, part two"
        # HTTP/1.0 cannot take chunked: delimited by closing.
        old = raw_client(server.port)
        old.send(b"GET /gen HTTP/1.0\r\n\r\n")
        data = old.read_until_closed()
        assert b"transfer-encoding" not in data.lower() and data.endswith(b"\r\n\r\npart one, part two")


def test_write_callable_and_iterable_together():
    def app(environ, start_response):
        write = start_response("201 Created", [("Content-Type", "text/plain"), ("X-App", "yes")])
        write(b"written ")
        write(b"then ")
        return iter([b"iterated"])

    with wsgi(validator(app)) as server:
        response = httpx.get(server.url)
    assert response.status_code == 201
    assert response.headers["x-app"] == "yes"
    assert response.text == "written then iterated"


# (status the app gives, reason http.client reads). http.client decodes the status line as
# latin-1, so obs-text arrives as the app wrote it.
REASONS = [
    ("200 Fine", "Fine"),
    ("404 Nowhere To Be Found", "Nowhere To Be Found"),
    ("201 Caf\xe9 cr\xe8me", "Caf\xe9 cr\xe8me"),
    ("299 Custom", "Custom"),  # a code without a standard phrase
    ("202 tab\there", "tab\there"),
    ("503 ", ""),  # an empty reason phrase is allowed (RFC 9112 §4)
    ("200 OK", "OK"),
    ("200", "OK"),  # no reason phrase: the standard one
]


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_the_apps_reason_phrase_reaches_the_client(tmp_path, http1):
    path = tmp_path / "body.txt"
    path.write_bytes(b"from a file")

    def app(environ, start_response):
        status = REASONS[int(environ["QUERY_STRING"])][0]
        start_response(status, [("Content-Type", "text/plain")])
        kind = environ["PATH_INFO"]
        if kind == "/list":  # head and body in one piece (send_complete)
            return [b"one piece"]
        if kind == "/stream":  # the head goes before the body (send_response)
            return iter([b"streamed", b" body"])
        return environ["wsgi.file_wrapper"](open(path, "rb"))  # noqa: SIM115 - sent with sendfile

    bodies = {"/list": b"one piece", "/stream": b"streamed body", "/file": b"from a file"}
    with wsgi(app, http1=http1) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        for kind, body in bodies.items():
            for index, (status, reason) in enumerate(REASONS):
                connection.request("GET", f"{kind}?{index}")  # one keep-alive connection throughout
                response = connection.getresponse()
                assert (response.status, response.reason, response.read()) == (int(status[:3]), reason, body)
        connection.close()


@pytest.mark.parametrize("http1", ["fast", "h11"])
@pytest.mark.parametrize(
    "status",
    [
        "200 OK\r\nInjected: yes",
        "200 OK\nInjected: yes",
        "200 a\rb",
        "200 nul\x00",
        "200 bell\x07",
        "200 del\x7f",
        "200 snow\u2603man",  # not latin-1: no octet for it
    ],
)
def test_a_reason_phrase_with_control_characters_gives_500(error_log, http1, status):
    def app(environ, start_response):
        start_response(status if environ["PATH_INFO"] == "/bad" else "200 Fine", [("Content-Type", "text/plain")])
        return [b"body"]

    with wsgi(app, http1=http1) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/bad")
        response = connection.getresponse()
        assert (response.status, response.reason) == (500, "Internal Server Error")
        assert response.getheader("Injected") is None
        assert response.read() == b"Internal Server Error"
        connection.request("GET", "/good")  # the same connection carries on
        response = connection.getresponse()
        assert (response.status, response.reason, response.read()) == (200, "Fine", b"body")
        connection.close()
    errors = [r for r in error_log.records if r.getMessage() == "Exception in application"]
    assert errors and isinstance(errors[0].exc_info[1], ValueError)
    assert "RFC 9112 §4" in str(errors[0].exc_info[1])


def test_exc_info_before_headers_sent_replaces_the_response():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"sorry"]

    with wsgi(validator(app)) as server:
        response = httpx.get(server.url)
    assert response.status_code == 503 and response.text == "sorry"


def test_exc_info_after_headers_sent_is_raised_again(error_log):
    outcome = {}
    closed = threading.Event()

    class Body:
        def __iter__(self):
            yield b"first part"
            try:
                raise KeyError("late")
            except KeyError:
                try:
                    self.start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
                except KeyError as exc:
                    outcome["reraised"] = exc
                    raise

        def close(self):
            closed.set()

    def app(environ, start_response):
        body = Body()
        body.start_response = start_response
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    with wsgi(app) as server:
        with pytest.raises(httpx.HTTPError):  # the response was cut: the connection closes
            httpx.get(server.url)
        assert closed.wait(5)
    assert isinstance(outcome["reraised"], KeyError)
    assert "Exception in application" in error_log.messages()


def test_start_response_twice_without_exc_info_is_an_error(error_log):
    def app(environ, start_response):
        start_response("200 OK", [])
        start_response("200 OK", [])
        return [b""]

    with wsgi(app) as server:
        assert httpx.get(server.url).status_code == 500
    errors = [r for r in error_log.records if r.getMessage() == "Exception in application"]
    assert errors and isinstance(errors[0].exc_info[1], AssertionError)


@pytest.mark.parametrize(
    "status, headers",
    [
        ("200", [("Content-Type", "text/plain")]),  # no reason phrase is fine
        ("OK", []),
        ("200 OK", [("Bad Name", "x")]),
        ("200 OK", [("X-Split", "a\r\nInjected: yes")]),
        ("200 OK", [(b"X-Bytes", b"x")]),
        ("102 Processing", []),
    ],
)
def test_invalid_status_or_headers_give_500(status, headers):
    def app(environ, start_response):
        start_response(status, headers)
        return [b"body"]

    with wsgi(app) as server:
        response = httpx.get(server.url)
        expected = 200 if status == "200" else 500
        assert response.status_code == expected
        assert "injected" not in response.headers
        assert httpx.get(server.url).status_code == expected  # the connection pool and worker are fine


def test_body_longer_than_content_length_closes_the_connection(error_log):
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return iter([b"abc", b"def"])

    with wsgi(app) as server:
        client = RawClient(server.port)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = client.read_response()
        assert (status, body) == (200, b"abc")
        assert client.read_until_closed() == b""  # closed, and the excess never sent
        client.close()
        assert wait_for(lambda: "Exception in application" in error_log.messages())


def test_non_bytes_body_is_an_error():
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["text, not bytes"]

    with wsgi(app) as server:
        assert httpx.get(server.url).status_code == 500


def test_head_sends_no_body_but_consumes_and_closes_the_iterable(raw_client):
    consumed = []
    closed = threading.Event()

    class Body:
        def __iter__(self):
            for part in (b"12345", b"67890"):
                consumed.append(part)
                yield part

        def close(self):
            closed.set()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/list":
            return [b"0123456789"]
        return Body()

    with wsgi(app) as server:
        client = raw_client(server.port)
        client.send(b"HEAD /list HTTP/1.1\r\nHost: x\r\n\r\nHEAD /iter HTTP/1.1\r\nHost: x\r\n\r\nGET /list HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = client.read_response(head=True)
        assert status == 200 and headers["content-length"] == "10" and body == b""
        status, headers, body = client.read_response(head=True)
        assert status == 200 and body == b""
        status, headers, body = client.read_response()
        assert body == b"0123456789"  # the stream was in step: no stray HEAD body bytes
        assert closed.wait(5)
    assert consumed == [b"12345", b"67890"]


def test_handler_exception_gives_500_and_the_worker_lives_on(error_log):
    def app(environ, start_response):
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("app bug")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"fine"]

    with wsgi(app, blocking_threads=1) as server:
        with httpx.Client() as client:
            for _ in range(3):
                response = client.get(server.url + "/fail")
                assert response.status_code == 500
                assert client.get(server.url + "/ok").text == "fine"
    assert error_log.messages().count("Exception in application") == 3


def test_close_is_always_called():
    closed = []
    started = threading.Event()

    class Body:
        def __init__(self, name, fail=False, slow=False):
            self.name, self.fail, self.slow = name, fail, slow

        def __iter__(self):
            yield b"x" * 1000
            if self.fail:
                raise RuntimeError("mid-iteration")
            if self.slow:
                started.set()
                for _ in range(500):
                    time.sleep(0.01)
                    yield b"y" * 65536
            yield b"end"

        def close(self):
            closed.append(self.name)

    def app(environ, start_response):
        name = environ["PATH_INFO"][1:]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body(name, fail=name == "fail", slow=name == "slow")

    with wsgi(validator(app)) as server:
        assert httpx.get(server.url + "/ok").status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(server.url + "/fail")
        client = RawClient(server.port)
        client.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert started.wait(5)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # reset mid-stream
        assert wait_for(lambda: len(closed) == 3)
    assert sorted(closed) == ["fail", "ok", "slow"]


def test_errors_stream_goes_to_the_error_log(error_log):
    def app(environ, start_response):
        errors = environ["wsgi.errors"]
        errors.write("first line\nsecond ")
        errors.writelines(["line\n", "unterminated"])
        errors.flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with wsgi(validator(app)) as server:
        assert httpx.get(server.url).text == "ok"
    messages = error_log.messages()
    assert ["first line", "second line", "unterminated"] == [m for m in messages if m in ("first line", "second line", "unterminated")]


# -- file_wrapper ----------------------------------------------------------------------


class CountingFile:
    """A real file whose Python-level reads are counted (sendfile does not read in Python)."""

    def __init__(self, path):
        self.file = open(path, "rb")  # noqa: SIM115
        self.mode = self.file.mode
        self.reads = 0
        self.closed = False

    def fileno(self):
        return self.file.fileno()

    def tell(self):
        return self.file.tell()

    def seek(self, *args):
        return self.file.seek(*args)

    def read(self, size=-1):
        self.reads += 1
        return self.file.read(size)

    def close(self):
        self.closed = True
        self.file.close()


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "data.bin"
    content = bytes(range(256)) * (3 * 1024 * 1024 // 256 + 7)  # ~3 MiB, more than one sendfile segment
    path.write_bytes(content)
    return path, content


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_file_wrapper_uses_sendfile(data_file, http1):
    path, content = data_file
    files = []

    def app(environ, start_response):
        f = CountingFile(path)
        files.append(f)
        if environ["PATH_INFO"] == "/offset":
            f.seek(1000)
            start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", "5000")])
        else:
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 65536)

    with wsgi(app, http1=http1) as server:
        with httpx.Client() as client:
            response = client.get(server.url + "/whole")
            assert response.headers["content-length"] == str(len(content))
            assert response.content == content
            response = client.get(server.url + "/offset")
            assert response.content == content[1000:6000]
            head = client.head(server.url + "/whole")
            assert head.headers["content-length"] == str(len(content)) and head.content == b""
        assert wait_for(lambda: all(f.closed for f in files))
    assert [f.reads for f in files] == [0, 0, 0]


def test_file_wrapper_falls_back_to_reading_blocks(data_file):
    path, content = data_file

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if environ["PATH_INFO"] == "/memory":
            return environ["wsgi.file_wrapper"](io.BytesIO(content[:100000]), 8192)
        return environ["wsgi.file_wrapper"](open(path, "rb"))  # noqa: SIM115 - closed by the wrapper

    with wsgi(validator(app)) as server:  # the validator hides the wrapper: plain iteration
        assert httpx.get(server.url + "/file").content == content
    with wsgi(app) as server:
        response = httpx.get(server.url + "/memory")
        assert response.content == content[:100000]
        assert response.headers["transfer-encoding"] == "chunked"


def test_sendfile_to_a_client_that_disconnects(data_file):
    path, _ = data_file
    files = []

    def app(environ, start_response):
        f = CountingFile(path)
        files.append(f)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f)

    with wsgi(app) as server:
        client = RawClient(server.port)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.sock.recv(100)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()
        assert wait_for(lambda: files and files[0].closed)
        assert httpx.get(server.url).status_code == 200


# -- backpressure, timeouts, threads ---------------------------------------------------


def test_large_response_with_backpressure():
    """A client that does not read holds the handler back (it is not buffered whole)."""
    chunk = b"r" * 65536
    total_chunks = 400  # 25 MiB
    produced = {"n": 0}

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body():
            for _ in range(total_chunks):
                produced["n"] += 1
                yield chunk

        return body()

    with wsgi(app) as server:
        client = RawClient(server.port, timeout=30)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)  # not reading: the handler must block
        stalled_at = produced["n"]
        status, headers, body = client.read_response()
        client.close()
    assert stalled_at < total_chunks // 2
    assert status == 200 and len(body) == total_chunks * len(chunk)


def test_client_that_stops_reading_times_out():
    closed = threading.Event()
    outcome = {}

    class Body:
        def __iter__(self):
            try:
                while True:
                    yield b"s" * 65536
            except GeneratorExit:
                raise

        def close(self):
            closed.set()

    def app(environ, start_response):
        def write_forever():
            write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
            try:
                while True:
                    write(b"w" * 65536)
            except OSError as exc:
                outcome["error"] = exc
                raise

        if environ["PATH_INFO"] == "/write":
            write_forever()
        if environ["PATH_INFO"] == "/ok":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok"]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Body()

    with wsgi(app, timeout_io=0.5) as server:
        first = RawClient(server.port)
        first.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        first.send(b"GET /iter HTTP/1.1\r\nHost: x\r\n\r\n")
        second = RawClient(server.port)
        second.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        second.send(b"GET /write HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closed.wait(10)
        assert wait_for(lambda: "error" in outcome, 10)
        assert httpx.get(server.url + "/ok", timeout=5).text == "ok"
        first.close()
        second.close()
    assert isinstance(outcome["error"], TimeoutError)


def test_handlers_run_in_parallel_on_the_blocking_pool():
    """Four requests are inside the app at the same time on one worker thread."""
    barrier = threading.Barrier(4, timeout=10)

    def app(environ, start_response):
        barrier.wait()  # raises BrokenBarrierError unless 4 handlers run at once
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]

    with wsgi(app, threads=1, blocking_threads=4) as server:
        results: list[httpx.Response] = []

        def fetch():
            results.append(httpx.get(server.url, timeout=20))

        clients = [threading.Thread(target=fetch) for _ in range(4)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(20)
    assert [r.status_code for r in results] == [200] * 4
    assert len({r.text for r in results}) == 4  # four different handler threads


def test_blocking_threads_bound_concurrency():
    lock = threading.Lock()
    state = {"inside": 0, "max": 0}

    def app(environ, start_response):
        with lock:
            state["inside"] += 1
            state["max"] = max(state["max"], state["inside"])
        time.sleep(0.05)
        with lock:
            state["inside"] -= 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with wsgi(app, threads=1, blocking_threads=2) as server:
        results = []

        def fetch():
            results.append(httpx.get(server.url, timeout=20).status_code)

        clients = [threading.Thread(target=fetch) for _ in range(6)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(20)
    assert results == [200] * 6
    assert state["max"] == 2


def test_many_requests_on_two_workers_with_keep_alive():
    def app(environ, start_response):
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode() + b":" + body]

    with wsgi(app, threads=2, blocking_threads=3) as server:
        errors = []

        def run(n):
            with httpx.Client() as client:
                for i in range(50):
                    r = client.post(f"{server.url}/{n}/{i}", content=b"b" * i)
                    if r.text != f"/{n}/{i}:" + "b" * i:
                        errors.append(r.text)

        threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # (a response is counted once the loop has taken its end, which the client may
        # read before: the count is waited for)
        assert wait_for(lambda: server.stats()["requests"] == 200), server.stats()["requests"]
    assert errors == []


def test_graceful_shutdown_lets_a_running_handler_finish():
    started = threading.Event()

    def app(environ, start_response):
        started.set()
        time.sleep(0.3)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"finished"]

    result = {}
    with wsgi(app) as server:
        def fetch():
            result["r"] = httpx.get(server.url, timeout=10)

        t = threading.Thread(target=fetch)
        t.start()
        assert started.wait(5)
    t.join(10)
    assert result["r"].text == "finished"


def test_blocking_threads_must_be_positive():
    from ftserver.config import Config, ConfigError

    with pytest.raises(ConfigError, match="blocking_threads: must be at least 1"):
        Config(app="a:b", blocking_threads=0)
    with pytest.raises(ConfigError, match="timeout_io: must be > 0"):
        Config(app="a:b", timeout_io=0)


def test_multiprocess_flag_comes_from_the_worker():
    """Process mode marks its workers; wsgi.multiprocess then says so."""
    import asyncio

    from ftserver.config import Config
    from ftserver.interfaces.wsgi import WSGIAdapter
    from ftserver.interfaces.wsgi.environ import HandlerContext

    class Host:
        def __init__(self, multiprocess):
            self.multiprocess = multiprocess

    async def start_and_stop(host):
        adapter = WSGIAdapter(environ_app, Config(app=environ_app, blocking_threads=1), host, "")
        await adapter.startup()
        flag = HandlerContext(adapter).base["wsgi.multiprocess"]
        await adapter.shutdown()
        assert not any(t.is_alive() for t in adapter.threads)
        return flag

    assert asyncio.run(start_and_stop(Host(True))) is True
    assert asyncio.run(start_and_stop(Host(False))) is False


def _consumers(jobs, count, handle):
    """Handler-like threads taking jobs from a JobQueue until a None job."""
    import queue as queue_module

    def consume():
        parker = threading.Lock()
        parker.acquire()
        while True:
            try:
                job = jobs.get(parker, 5.0)
            except queue_module.Empty:
                continue
            if job is None:
                return
            handle(job)

    threads = [threading.Thread(target=consume, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    return threads


def test_job_queue_loses_no_job_and_spreads_slow_ones():
    from ftserver.interfaces.wsgi.bridge import JobQueue

    jobs = JobQueue()
    done = []
    barrier = threading.Barrier(4, timeout=10)

    def handle(job):
        if job == "slow":
            barrier.wait()  # four slow jobs at once need four woken handlers
        done.append(job)

    threads = _consumers(jobs, 4, handle)
    for n in range(2000):  # quick jobs in bursts, from a producer thread like the loop
        jobs.put(n)
        if n % 100 == 0:
            time.sleep(0.001)
    assert wait_for(lambda: len(done) == 2000, 20)
    for _ in range(4):
        jobs.put("slow")
    assert wait_for(lambda: len(done) == 2004, 20)
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join(10)
    assert sorted(d for d in done if d != "slow") == list(range(2000))
    assert not any(t.is_alive() for t in threads)


def test_job_queue_get_times_out():
    import queue as queue_module

    from ftserver.interfaces.wsgi.bridge import JobQueue

    jobs = JobQueue()
    parker = threading.Lock()
    parker.acquire()
    with pytest.raises(queue_module.Empty):
        jobs.get(parker, 0.05)
    jobs.put("after")
    assert jobs.get(parker, 0.05) == "after"


@pytest.mark.parametrize(
    "options, multiprocess",
    [
        (("--mode", "processes", "--threads", "2"), True),
        (("--mode", "processes", "--workers", "1"), False),
        (("--mode", "threads", "--threads", "2"), False),
    ],
)
def test_multiprocess_is_true_only_with_several_worker_processes(options, multiprocess):
    from tests.ftserve_process import get, start_ftserve

    served = start_ftserve(*options, app="tests.apps.wsgi_info:app")
    try:
        status, body = get(served.port)
        assert status == 200
        info = json.loads(body)
        assert info["multiprocess"] is multiprocess
        assert info["multithread"] is True
    finally:
        served.stop()
