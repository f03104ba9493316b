"""Flask hello (WSGI): one route among a few."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/users")
def users() -> list[str]:
    return []


@app.get("/users/<name>")
def user(name: str) -> dict[str, str]:
    return {"user": name}


@app.get("/hello")
def hello() -> str:
    return "Hello, world!"
