"""HTTP/2 (RFC 9113), sans-I/O, on the ``h2`` library: ``HTTP2Connection`` (``connection.py``),
h2's connection as it uses it (``h2core.py``), the request rules (``request.py``) and the
settings and flood limits (``settings.py``)."""

from .connection import (
    GoingAway,
    H2ConnectionError,
    HTTP2Connection,
    StreamBody,
    StreamEnd,
    StreamGone,
    WindowOpened,
)
from .request import ExtendedConnect, MalformedRequest, check_trailers, request_from_fields, upgraded_request
from .settings import PREFACE, H2Settings

__all__ = [
    "ExtendedConnect",
    "GoingAway",
    "H2ConnectionError",
    "H2Settings",
    "HTTP2Connection",
    "MalformedRequest",
    "PREFACE",
    "StreamBody",
    "StreamEnd",
    "StreamGone",
    "WindowOpened",
    "check_trailers",
    "request_from_fields",
    "upgraded_request",
]
