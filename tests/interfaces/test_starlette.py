"""A real framework on the fast path: Starlette relies on current_task() via anyio."""

from __future__ import annotations

import asyncio

import anyio
import httpx
import pytest

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from ftserver.testing import serve  # noqa: E402


async def home(request: Request):
    return PlainTextResponse("home")


async def data(request: Request):
    body = await request.json()
    return JSONResponse({"got": body, "query": dict(request.query_params)})


async def slow_stream(request: Request):
    async def gen():
        for i in range(3):
            await anyio.sleep(0.01)
            yield f"{i},"
    return StreamingResponse(gen(), media_type="text/plain")


async def threadpool(request: Request):
    value = await anyio.to_thread.run_sync(lambda: 6 * 7)
    with anyio.fail_after(5):
        await asyncio.sleep(0)
    return PlainTextResponse(str(value))


class Tag(BaseHTTPMiddleware):
    async def dispatch(self, request, call_next):
        response = await call_next(request)
        response.headers["x-tag"] = "mw"
        return response


app = Starlette(
    routes=[Route("/", home), Route("/data", data, methods=["POST"]), Route("/stream", slow_stream), Route("/thread", threadpool)],
    middleware=[Middleware(Tag)],
)


@pytest.mark.parametrize("threads", [1, 2])
def test_starlette_app(threads):
    with serve(app, threads=threads) as server:
        with httpx.Client(base_url=server.url) as client:
            for _ in range(3):
                r = client.get("/")
                assert (r.status_code, r.text, r.headers["x-tag"]) == (200, "home", "mw")
            r = client.post("/data?a=1", json={"k": [1, 2]})
            assert r.json() == {"got": {"k": [1, 2]}, "query": {"a": "1"}}
            assert client.get("/stream").text == "0,1,2,"
            assert client.get("/thread").text == "42"
            assert client.get("/missing").status_code == 404
