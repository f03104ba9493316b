"""The shared test routes (see test_frameworks.py) as a FastAPI app."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Cookie, FastAPI, File, Form, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

app = FastAPI()


class Payload(BaseModel):
    name: str
    values: list[int]
    nested: dict[str, Any]


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"id": item_id, "q": q}


@app.post("/json", status_code=201)
async def echo_json(payload: Payload) -> dict[str, Any]:
    return {"received": payload.model_dump(), "framework": "fastapi"}


@app.post("/upload")
async def upload(name: str = Form(...), file: UploadFile = File(...)) -> dict[str, Any]:
    content = await file.read()
    return {"name": name, "filename": file.filename, "size": len(content), "sha256": hashlib.sha256(content).hexdigest()}


@app.get("/stream")
async def stream(n: int = 5) -> StreamingResponse:
    async def parts():
        for i in range(n):
            yield f"part {i}\n"

    return StreamingResponse(parts(), media_type="text/plain")


@app.get("/cookie/set")
def set_cookie(value: str, response: Response) -> str:  # a sync endpoint: runs in the thread pool
    response.set_cookie("flavour", value, httponly=True)
    return "set"


@app.get("/cookie/get")
async def get_cookie(flavour: str | None = Cookie(default=None)) -> dict[str, Any]:
    return {"flavour": flavour}
