"""The shared test routes (see test_frameworks.py) as a Starlette app."""

from __future__ import annotations

import hashlib

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


async def item(request: Request) -> JSONResponse:
    return JSONResponse({"id": int(request.path_params["item_id"]), "q": request.query_params.get("q")})


async def echo_json(request: Request) -> JSONResponse:
    data = await request.json()
    return JSONResponse({"received": data, "framework": "starlette"}, status_code=201)


async def upload(request: Request) -> JSONResponse:
    async with request.form() as form:
        upload = form["file"]
        content = await upload.read()
        return JSONResponse(
            {
                "name": form["name"],
                "filename": upload.filename,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )


async def stream(request: Request) -> StreamingResponse:
    count = int(request.query_params.get("n", "5"))

    async def parts():
        for i in range(count):
            yield f"part {i}\n"

    return StreamingResponse(parts(), media_type="text/plain")


async def set_cookie(request: Request) -> PlainTextResponse:
    response = PlainTextResponse("set")
    response.set_cookie("flavour", request.query_params["value"], httponly=True)
    return response


async def get_cookie(request: Request) -> JSONResponse:
    return JSONResponse({"flavour": request.cookies.get("flavour")})


app = Starlette(
    routes=[
        Route("/items/{item_id:int}", item),
        Route("/json", echo_json, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/cookie/set", set_cookie),
        Route("/cookie/get", get_cookie),
    ]
)
