"""FastAPI: routing, a typed path parameter and a JSON response validated by a pydantic model."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel


class Item(BaseModel):
    item_id: int
    name: str
    tags: list[str]


async def users() -> list[str]:
    return []


async def user(name: str) -> dict[str, str]:
    return {"user": name}


async def order(order_id: int) -> dict[str, int]:
    return {"order": order_id}


async def item(item_id: int) -> Item:
    return Item(item_id=item_id, name="widget", tags=["a", "b"])


def create_app() -> FastAPI:
    """A new app (``--factory``: ``bench.frameworks.fastapi_app:create_app``)."""
    app = FastAPI()
    app.get("/users")(users)
    app.get("/users/{name}")(user)
    app.get("/orders/{order_id}")(order)
    app.get("/items/{item_id}")(item)
    return app


app = create_app()
