"""The shared test routes (see test_frameworks.py) as a Flask app."""

from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, request

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def item(item_id: int):
    return jsonify({"id": item_id, "q": request.args.get("q")})


@app.post("/json")
def echo_json():
    return jsonify({"received": request.get_json(), "framework": "flask"}), 201


@app.post("/upload")
def upload():
    upload = request.files["file"]
    content = upload.read()
    return jsonify(
        {
            "name": request.form["name"],
            "filename": upload.filename,
            "size": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
        }
    )


@app.get("/stream")
def stream():
    count = request.args.get("n", 5, type=int)

    def parts():
        for i in range(count):
            yield f"part {i}\n"

    return Response(parts(), mimetype="text/plain")


@app.get("/cookie/set")
def set_cookie():
    response = Response("set", mimetype="text/plain")
    response.set_cookie("flavour", request.args["value"], httponly=True)
    return response


@app.get("/cookie/get")
def get_cookie():
    return jsonify({"flavour": request.cookies.get("flavour")})
