"""The in-test server: the serve() context manager and the pytest fixture."""

from __future__ import annotations

import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic


def test_serve_context_manager_starts_and_stops():
    with serve(basic.hello) as server:
        assert server.port != 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert httpx.get(server.url).status_code == 200
        url = server.url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url, timeout=2)


def test_serve_accepts_import_string():
    with serve("tests.apps.basic:hello") as server:
        assert httpx.get(server.url).text == "Hello, world!"


@pytest.mark.parametrize("threads", [1, 2])
def test_fixture(ftserver, threads):
    server = ftserver(basic.echo, threads=threads)
    assert httpx.post(server.url, content=b"abc").content == b"abc"
    other = ftserver(basic.hello)
    assert other.port != server.port
