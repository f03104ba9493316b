"""A WSGI app answering with what its environ says about the server's layout."""

from __future__ import annotations

import json
import os


def app(environ, start_response):
    body = json.dumps(
        {"multiprocess": environ["wsgi.multiprocess"], "multithread": environ["wsgi.multithread"], "pid": os.getpid()}
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
