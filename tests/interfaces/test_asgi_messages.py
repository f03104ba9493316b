"""ASGI HTTP messages an application sends, checked by the server (ASGI HTTP spec 2.4): what
each misuse raises, the optional keys' defaults, and that every request on a keep-alive
connection starts from a fresh exchange (a real server and client)."""

from __future__ import annotations

import time

import httpx
import pytest

from ftserver.testing import serve

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
errors: list[str] = []


def error_of(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path.startswith("/status/"):
        value = path.removeprefix("/status/")
        status = {"true": True, "str": "200"}.get(value) or int(value)
        try:
            await send({"type": "http.response.start", "status": status, "headers": []})
        except (TypeError, RuntimeError) as exc:
            await send(START)
            await send({"type": "http.response.body", "body": error_of(exc).encode()})
            return
        await send({"type": "http.response.body", "body": b"sent"})
    elif path == "/body-first":
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except RuntimeError as exc:
            await send(START)
            await send({"type": "http.response.body", "body": error_of(exc).encode()})
    elif path == "/twice":
        await send(START)
        for message in (START, {"type": "http.response.body", "body": b"late"}):
            try:
                await send(message)
            except RuntimeError as exc:
                errors.append(error_of(exc))
        # (the first body message answers; the second start and this one were refused)
    elif path == "/after-body":
        await send(START)
        await send({"type": "http.response.body", "body": b"done"})
        try:
            await send({"type": "http.response.body", "body": b"late"})
        except RuntimeError as exc:
            errors.append(error_of(exc))
    elif path == "/str-body":
        await send(START)
        try:
            await send({"type": "http.response.body", "body": "text"})
        except TypeError as exc:
            await send({"type": "http.response.body", "body": error_of(exc).encode()})
    elif path == "/bytes-like":
        await send({"type": "http.response.start", "status": 200, "headers": ((b"x-kind", b"tuple"),)})
        await send({"type": "http.response.body", "body": bytearray(b"ab"), "more_body": True})
        await send({"type": "http.response.body", "body": memoryview(b"cd"), "more_body": False})
    elif path == "/defaults":
        await send({"type": "http.response.start", "status": 204})  # no headers key
        await send({"type": "http.response.body"})  # no body, no more_body
    elif path == "/generator-headers":
        await send({"type": "http.response.start", "status": 200, "headers": ((n, v) for n, v in [(b"x-gen", b"1")])})
        await send({"type": "http.response.body", "body": b"gen"})
    elif path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await send(START)
        await send({"type": "http.response.body", "body": b"got:" + body})


@pytest.fixture(scope="module")
def client():
    with serve(app, threads=1, interface="asgi") as server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("999", "sent"),
        ("200", "sent"),
        ("1000", "TypeError: ASGI: 'status' must be an int in 100..999, got 1000"),
        ("1023", "TypeError: ASGI: 'status' must be an int in 100..999, got 1023"),
        ("1024", "TypeError: ASGI: 'status' must be an int in 100..999, got 1024"),
        ("99", "TypeError: ASGI: 'status' must be an int in 100..999, got 99"),
        ("-200", "TypeError: ASGI: 'status' must be an int in 100..999, got -200"),
        ("true", "TypeError: ASGI: 'status' must be an int in 100..999, got True"),
        ("str", "TypeError: ASGI: 'status' must be an int in 100..999, got '200'"),
        ("103", "RuntimeError: ASGI: informational (1xx) responses cannot be sent with 'http.response.start'"),
        ("199", "RuntimeError: ASGI: informational (1xx) responses cannot be sent with 'http.response.start'"),
    ],
)
def test_status_range(client, status, expected):
    response = client.get(f"/status/{status}")
    assert response.text == expected
    assert response.status_code == (int(status) if expected == "sent" else 200)


def test_body_before_start(client):
    response = client.get("/body-first")
    assert response.text == "RuntimeError: ASGI: 'http.response.body' sent before 'http.response.start'"


def test_start_twice_and_body_after_the_end(client):
    errors.clear()
    assert client.get("/twice").text == "late"
    assert client.get("/after-body").text == "done"
    deadline = time.monotonic() + 10  # (the app records its error after the client has the response)
    while len(errors) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert errors == [
        "RuntimeError: ASGI: 'http.response.start' sent twice",
        "RuntimeError: ASGI: 'http.response.body' sent after the response body was complete",
    ]


def test_body_must_be_bytes(client):
    assert client.get("/str-body").text == "TypeError: ASGI: 'body' must be bytes, got str"


def test_bytes_like_bodies_and_tuple_headers(client):
    response = client.get("/bytes-like")
    assert response.content == b"abcd"
    assert response.headers["x-kind"] == "tuple"


def test_optional_keys_default(client):
    response = client.get("/defaults")
    assert response.status_code == 204 and response.content == b""


def test_headers_from_a_generator(client):
    response = client.get("/generator-headers")
    assert response.headers["x-gen"] == "1" and response.text == "gen"


def test_each_request_on_a_connection_starts_afresh(client):
    """An exchange's state (body parts, response flags) does not carry to the next request
    on the same connection."""
    for _ in range(2):
        assert client.post("/echo", content=b"first body").text == "got:first body"
        assert client.get("/echo").text == "got:"
        assert client.post("/echo", content=iter([b"a", b"b", b"c"])).text == "got:abc"
        assert client.get("/status/200").text == "sent"
