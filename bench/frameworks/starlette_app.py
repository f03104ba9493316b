"""Starlette hello: a plain-text route among ten others, as a small real app has them."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

HELLO = "Hello, world!"


async def hello(request: Request) -> Response:
    return PlainTextResponse(HELLO)


async def user(request: Request) -> Response:
    return JSONResponse({"user": request.path_params["name"]})


async def listing(request: Request) -> Response:
    return JSONResponse([])


def create_app() -> Starlette:
    """A new app (``--factory``: ``bench.frameworks.starlette_app:create_app``).

    The hello route is matched last, so each request walks the route table as a real app's would."""
    names = ("users", "groups", "orders", "invoices", "items")
    return Starlette(
        routes=[
            *(Route(f"/api/v1/{name}", listing) for name in names),
            *(Route(f"/api/v1/{name}/{{name}}", user) for name in names),
            Route("/hello", hello),
        ]
    )


app = create_app()
