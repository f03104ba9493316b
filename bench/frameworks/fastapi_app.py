"""FastAPI: routing, a typed path parameter and a JSON response validated by a pydantic model."""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    item_id: int
    name: str
    tags: list[str]


@app.get("/users")
async def users() -> list[str]:
    return []


@app.get("/users/{name}")
async def user(name: str) -> dict[str, str]:
    return {"user": name}


@app.get("/orders/{order_id}")
async def order(order_id: int) -> dict[str, int]:
    return {"order": order_id}


@app.get("/items/{item_id}")
async def item(item_id: int) -> Item:
    return Item(item_id=item_id, name="widget", tags=["a", "b"])
