"""A WSGI demo: ``ftserve --threads 2 examples.hello_wsgi:app`` (the interface is detected).

Each request runs on one of the worker's blocking handler threads (``--blocking-threads``);
the response names it, so parallel requests show different threads.
"""

import sys
import threading


def app(environ, start_response):
    gil = "on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "off"
    body = (
        f"Hello from ftserver over WSGI! (Python {sys.version.split()[0]}, GIL {gil}, "
        f"path {environ['PATH_INFO']}, thread {threading.current_thread().name})\n"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
