"""A Flask app whose errors and log records must reach ftserve's log (test_error_output.py)."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.get("/err")
def err():
    return str(1 / 0)


@app.get("/log")
def log():
    app.logger.error("marker from app.logger")
    return "logged"
