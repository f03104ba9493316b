"""WSGI (PEP 3333) on the stream contract: applications run on a pool of blocking handler
threads next to the worker's event loop (docs/architecture.md, "WSGI").
"""

from ftserver.interfaces.wsgi.adapter import WSGIAdapter
from ftserver.interfaces.wsgi.bridge import JobQueue, LoopInbox
from ftserver.interfaces.wsgi.environ import (
    Environ,
    HandlerContext,
    StartResponse,
    Status,
    WSGIApp,
)
from ftserver.interfaces.wsgi.exchange import Handler, WSGIExchange
from ftserver.interfaces.wsgi.io import ErrorStream, FileWrapper, WSGIInput

__all__ = [
    "Environ",
    "ErrorStream",
    "FileWrapper",
    "Handler",
    "HandlerContext",
    "JobQueue",
    "LoopInbox",
    "StartResponse",
    "Status",
    "WSGIAdapter",
    "WSGIApp",
    "WSGIExchange",
    "WSGIInput",
]
