"""``--access-log-format``: access-log lines written with Gunicorn's atoms.

``%(h)s %(t)s "%(r)s" %(s)s %(b)s`` and the rest of Gunicorn's table
(docs/logging.md), ``%({name}i)s`` (a request header), ``%({name}o)s`` (a response header)
and ``%({name}e)s`` (an environment variable). An atom with no value is ``-``.
The default access line does not come through here (``ftserver.threads.host``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ftserver.protocols.events import Request

#: The simple atoms and what each is.
ATOMS = {
    "h": "remote address",
    "l": "'-'",
    "u": "user name (HTTP Basic authorization)",
    "t": "date and time, [04/Dec/2026:18:30:00 +0000]",
    "r": "request line (GET /path?q HTTP/1.1)",
    "m": "request method",
    "U": "URL path without the query string",
    "q": "query string",
    "H": "protocol (HTTP/1.1, HTTP/2)",
    "s": "status",
    "B": "response body bytes",
    "b": "response body bytes, '-' for none",
    "f": "referer",
    "a": "user agent",
    "T": "request time in whole seconds",
    "M": "request time in milliseconds",
    "D": "request time in microseconds",
    "L": "request time in decimal seconds",
    "p": "process id",
}
_ATOM = re.compile(r"%\(([^)]*)\)")
_FIELD = re.compile(r"\{([^}]+)\}([ioe])")


class AccessFormatError(ValueError):
    """The format names an atom that does not exist, or is not a valid ``%`` format."""


class AccessFormat:
    """One worker thread's compiled ``--access-log-format`` (not shared between threads)."""

    def __init__(self, fmt: str) -> None:
        for key in _ATOM.findall(fmt):
            if key not in ATOMS and _FIELD.fullmatch(key) is None:
                raise AccessFormatError(f"unknown atom %({key})s; atoms: {', '.join(ATOMS)}, {{header}}i, {{header}}o, {{variable}}e")
        self.fmt = fmt
        self.pid = str(os.getpid())
        self.second = -1
        self.stamp = ""
        try:
            self.render(None, None, 200, (), 0, 0.0)
        except (TypeError, ValueError, KeyError) as exc:
            raise AccessFormatError(f"not a valid format: {exc}") from None

    def render(
        self,
        client: tuple[str, int] | None,
        request: Request | None,
        status: int,
        response_headers: Sequence[tuple[bytes, bytes]],
        nbytes: int,
        duration: float,
    ) -> str:
        """The line of one response (``request`` is ``None`` when the bytes made no request;
        ``duration`` in seconds)."""
        return self.fmt % _Atoms(self, client, request, status, response_headers, nbytes, duration)

    def timestamp(self) -> str:
        now = time.time()
        if int(now) != self.second:
            self.second = int(now)
            self.stamp = time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now))
        return self.stamp


class _Atoms(dict):  # type: ignore[type-arg]
    """The mapping ``%`` reads: each atom computed when the format asks for it."""

    def __init__(self, owner: AccessFormat, client: Any, request: Any, status: int, headers: Any, nbytes: int, duration: float) -> None:
        super().__init__()
        self.owner = owner
        self.client = client
        self.request = request
        self.status = status
        self.headers = headers
        self.nbytes = nbytes
        self.duration = duration

    def __missing__(self, key: str) -> Any:
        request = self.request
        field = _FIELD.fullmatch(key)
        if field is not None:
            name, kind = field[1].lower(), field[2]
            if kind == "e":
                return os.environ.get(field[1], "-")
            found = _header(self.headers if kind == "o" else request.headers if request is not None else (), name.encode("latin-1"))
            return "-" if found is None else found
        if key == "h":
            return self.client[0] if self.client else "-"
        if key == "s":
            return self.status
        if key == "B":
            return self.nbytes
        if key == "b":
            return self.nbytes or "-"
        if key == "t":
            return self.owner.timestamp()
        if key == "p":
            return self.owner.pid
        if key == "l":
            return "-"
        if key in "TMDL":
            seconds = self.duration
            return {"T": int(seconds), "M": int(seconds * 1000), "D": int(seconds * 1_000_000), "L": f"{seconds:.6f}"}[key]
        if request is None:
            return "-"
        if key == "m":
            return request.method
        if key == "H":
            return f"HTTP/{request.http_version}"
        if key == "r":
            return f"{request.method} {request.target.decode('latin-1')} HTTP/{request.http_version}"
        if key in "Uq":
            path, _, query = request.target.decode("latin-1").partition("?")
            return path if key == "U" else query
        header = {"f": b"referer", "a": b"user-agent", "u": b"authorization"}[key]
        found = _header(request.headers, header)
        if key == "u":
            return _basic_user(found)
        return "-" if found is None else found


def _header(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _basic_user(authorization: str | None) -> str:
    """The user name of a ``Basic`` authorization, else ``-``."""
    if authorization is None:
        return "-"
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        return base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[0] or "-"
    except (binascii.Error, UnicodeDecodeError):
        return "-"
