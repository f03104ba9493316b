"""Starlette's and FastAPI's WebSocket routes on ftserve."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ftserver.testing import serve

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.routing import WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket, WebSocketDisconnect  # noqa: E402

try:
    import fastapi
except ImportError:  # pragma: no cover - the FastAPI test skips
    fastapi = None

DISCONNECTS: list[int] = []


async def echo(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="json" if "json" in websocket.scope["subprotocols"] else None)
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"echo": data, "path": websocket.url.path, "q": websocket.query_params.get("q")})
    except WebSocketDisconnect as exc:
        DISCONNECTS.append(exc.code)


async def refuse(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def goodbye(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("bye")
    await websocket.close(code=4321, reason="done")


starlette_app = Starlette(routes=[WebSocketRoute("/ws", echo), WebSocketRoute("/refuse", refuse), WebSocketRoute("/bye", goodbye)])


def test_starlette_websocket_routes():
    with serve(starlette_app) as server:
        base = server.url.replace("http://", "ws://")
        with connect(base + "/ws?q=1", subprotocols=["json"]) as ws:
            assert ws.subprotocol == "json"
            ws.send('{"a": [1, 2]}')
            assert ws.recv(timeout=10) == '{"echo":{"a":[1,2]},"path":"/ws","q":"1"}'
        with pytest.raises(InvalidStatus) as info:
            connect(base + "/refuse")
        assert info.value.response.status_code == 403
        with connect(base + "/bye") as ws:
            assert ws.recv(timeout=10) == "bye"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4321, "done")
        with pytest.raises(InvalidStatus) as info:  # no such route: Starlette denies
            connect(base + "/nowhere")
        assert info.value.response.status_code == 403


@pytest.mark.skipif(fastapi is None, reason="fastapi is not installed")
def test_fastapi_websocket_route():
    app = fastapi.FastAPI()

    @app.websocket("/items/{item_id}")
    async def items(websocket: fastapi.WebSocket, item_id: int, token: str | None = None) -> None:
        if token != "secret":
            await websocket.close(code=fastapi.status.WS_1008_POLICY_VIOLATION)
            return
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(f"{item_id}: {text}")

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"ok": "yes"}

    with serve(app) as server:
        base = server.url.replace("http://", "ws://")
        with connect(base + "/items/7?token=secret") as ws:
            for word in ("a", "b"):
                ws.send(word)
                assert ws.recv(timeout=10) == f"7: {word}"
        with pytest.raises(InvalidStatus) as info:
            connect(base + "/items/7")
        assert info.value.response.status_code == 403
