"""What the server hands the app must satisfy the ASGI spec, as checked by asgion."""

from __future__ import annotations

import sys

import httpx
import pytest

from ftserver.testing import serve
from tests.apps import basic

asgion = pytest.importorskip("asgion", reason="asgion needs Python >= 3.12") if sys.version_info >= (3, 12) else None
pytestmark = pytest.mark.skipif(asgion is None, reason="asgion needs Python >= 3.12")


async def lifespan_app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        await basic.echo(scope, receive, send)


@pytest.mark.parametrize("http1", ["fast", "h11"])
def test_asgion_finds_no_violations(http1):
    inspector = asgion.Inspector(lifespan_app)
    with serve(inspector, http1=http1, lifespan="on", root_path="/r") as server:
        with httpx.Client(base_url=server.url) as client:
            assert client.get("/plain?q=1").status_code == 200
            assert client.post("/echo", content=b"x" * 100_000).content == b"x" * 100_000
            assert client.post("/chunked", content=iter([b"a", b"b"])).content == b"ab"
            assert client.head("/").status_code == 200
    # INFO-level notes (e.g. "state dict is available") are advice, not violations.
    problems = [v for v in inspector.violations if v.severity != asgion.Severity.INFO]
    assert problems == [], problems
