"""Real frameworks through ftserve: Starlette and FastAPI (ASGI), Flask and Django (WSGI).

Each app (one module per framework, same routes) is served by ``ftserver.testing.serve``
with the interface auto-detected, and checked with httpx: routing, JSON, multipart form
upload (also with a chunked request body), streaming responses and cookies.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading

import httpx
import pytest

from ftserver.testing import serve

FRAMEWORKS = {
    "starlette": ("starlette", "asgi"),
    "fastapi": ("fastapi", "asgi"),
    "flask": ("flask", "wsgi"),
    "django": ("django", "wsgi"),
}


@pytest.fixture(params=sorted(FRAMEWORKS), scope="module")
def served(request):
    package, interface = FRAMEWORKS[request.param]
    pytest.importorskip(package)
    module = importlib.import_module(f"tests.frameworks.{request.param}_app")
    with serve(module.app, threads=2) as server:
        assert server.server.interface == interface  # auto-detected
        yield request.param, server


def test_routing_and_query(served):
    _, server = served
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/items/42", params={"q": "caf\u00e9 & more"})
        assert response.status_code == 200
        assert response.json() == {"id": 42, "q": "caf\u00e9 & more"}
        assert client.get("/items/7").json() == {"id": 7, "q": None}
        assert client.get("/no/such/route").status_code == 404


def test_json_round_trip(served):
    name, server = served
    payload = {"name": "\u00fcnic\u00f8de \u2603", "values": [1, 2, 3], "nested": {"a": None, "b": [True, 1.5]}}
    response = httpx.post(server.url + "/json", json=payload)
    assert response.status_code == 201
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"received": payload, "framework": name}


def _multipart(name: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = "ftserver-test-boundary-" + os.urandom(8).hex()
    body = b"".join(
        [
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: application/octet-stream\r\n\r\n",
            content,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("size", [10, 3 * 1024 * 1024])
def test_form_upload(served, size):
    _, server = served
    content = os.urandom(size)
    response = httpx.post(
        server.url + "/upload",
        data={"name": "report"},
        files={"file": ("data.bin", content, "application/octet-stream")},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "report",
        "filename": "data.bin",
        "size": size,
        "sha256": hashlib.sha256(content).hexdigest(),
    }


def test_form_upload_with_a_chunked_request_body(served):
    """No Content-Length: Flask (Werkzeug) reads wsgi.input to its end (wsgi.input_terminated)."""
    name, server = served
    if name == "django":
        pytest.skip("Django reads CONTENT_LENGTH bytes only: a chunked body reaches it empty (under any server)")
    content = os.urandom(300_000)
    body, content_type = _multipart("chunked", "c.bin", content)

    def pieces():
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    response = httpx.post(server.url + "/upload", content=pieces(), headers={"content-type": content_type}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()


def test_streaming_response(served):
    _, server = served
    with httpx.stream("GET", server.url + "/stream", params={"n": 200}) as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"
        lines = list(response.iter_lines())
    assert lines == [f"part {i}" for i in range(200)]


def test_cookies(served):
    _, server = served
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/cookie/get").json() == {"flavour": None}
        response = client.get("/cookie/set", params={"value": "vanilla"})
        assert response.status_code == 200
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith("flavour=vanilla") and "httponly" in set_cookie.lower()
        assert client.get("/cookie/get").json() == {"flavour": "vanilla"}
    response = httpx.get(server.url + "/cookie/get", headers={"cookie": "other=1; flavour=chocolate"})
    assert response.json() == {"flavour": "chocolate"}


def test_concurrent_clients(served):
    _, server = served
    errors: list[str] = []

    def run(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(25):
                got = client.get(f"/items/{n * 100 + i}").json()
                if got != {"id": n * 100 + i, "q": None}:
                    errors.append(repr(got))
                if client.post("/json", json={"name": "x", "values": [i], "nested": {}}).status_code != 201:
                    errors.append("json")

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
