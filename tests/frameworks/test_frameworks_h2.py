"""The framework apps (Starlette, FastAPI, Flask, Django) over HTTP/2 (prior knowledge):
routing, JSON, a multipart upload larger than the windows, streaming, cookies."""

from __future__ import annotations

import hashlib
import importlib
import os

import httpx
import pytest

from ftserver.testing import serve
from tests.frameworks.test_frameworks import FRAMEWORKS


@pytest.mark.parametrize("name", sorted(FRAMEWORKS))
def test_framework_over_h2(name):
    package, interface = FRAMEWORKS[name]
    pytest.importorskip(package)
    module = importlib.import_module(f"tests.frameworks.{name}_app")
    with serve(module.app, threads=1) as server:
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=30) as client:
            response = client.get("/items/42", params={"q": "caf\u00e9"})
            assert response.http_version == "HTTP/2"
            assert response.json() == {"id": 42, "q": "caf\u00e9"}
            assert client.get("/no/such/route").status_code == 404
            payload = {"name": "x", "values": [1, 2], "nested": {"a": None}}
            response = client.post("/json", json=payload)
            assert response.status_code == 201 and response.json() == {"received": payload, "framework": name}
            content = os.urandom(300_000)
            response = client.post("/upload", data={"name": "r"}, files={"file": ("d.bin", content, "application/octet-stream")})
            assert response.status_code == 200, response.text
            assert response.json()["sha256"] == hashlib.sha256(content).hexdigest()
            with client.stream("GET", "/stream", params={"n": 50}) as streamed:
                assert list(streamed.iter_lines()) == [f"part {i}" for i in range(50)]
            assert client.get("/cookie/set", params={"value": "vanilla"}).status_code == 200
            assert client.get("/cookie/get").json() == {"flavour": "vanilla"}
            # two cookie fields (HTTP/2 crumbs) reach the app as one header
            response = client.get("/cookie/get", headers=[("cookie", "other=1"), ("cookie", "flavour=chocolate")])
            assert response.json() == {"flavour": "chocolate"}
