"""The environ of each request (PEP 3333 "environ Variables") and the caches behind it.

A ``HandlerContext`` belongs to one handler thread: the environ template, header-name keys
and the status and header names ``start_response`` has validated, kept per thread so that
no dict is shared between threads on the request path.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from ftserver.interfaces.stream import split_target
from ftserver.interfaces.wsgi.bridge import LoopInbox
from ftserver.interfaces.wsgi.io import EmptyInput, ErrorStream, FileWrapper, WSGIInput
from ftserver.protocols.http1 import reason_phrase
from ftserver.version import __version__

if TYPE_CHECKING:
    from ftserver.interfaces.stream import ConnectionInfo
    from ftserver.protocols.events import Request

Environ = dict[str, Any]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
#: A response status as the driver takes it: the code, and the app's reason phrase
#: (``None`` when it is the standard one, or absent).
Status = tuple[int, bytes | None]

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_STATUS_RE = re.compile(r"([0-9]{3})(?: (.*))?", re.DOTALL)
# reason-phrase = *( HTAB / SP / VCHAR / obs-text ) (RFC 9112 §4), in a latin-1 str.
_REASON_PHRASE_RE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class HandlerSettings(Protocol):
    """What a ``HandlerContext`` takes from its ``WSGIAdapter``."""

    app: WSGIApp
    inbox: LoopInbox | None
    timeout_io: float
    multiprocess: bool
    root_path: str


class HandlerContext:
    """What one handler thread needs; created in that thread, used only by it."""

    __slots__ = (
        "app",
        "inbox",
        "base",
        "header_keys",
        "response_names",
        "statuses",
        "errors",
        "empty_input",
        "timeout",
        "context",
    )

    def __init__(self, adapter: HandlerSettings) -> None:
        self.app = adapter.app
        self.inbox = adapter.inbox
        self.timeout = adapter.timeout_io
        self.errors = ErrorStream()
        self.empty_input = EmptyInput()
        self.base: Environ = {
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": adapter.multiprocess,
            "wsgi.run_once": False,
            "wsgi.errors": self.errors,
            "wsgi.file_wrapper": FileWrapper,
            # Reading wsgi.input to its end is safe (it stops at the end of the body), so
            # chunked uploads work in frameworks that honour this (Werkzeug/Flask; Django
            # reads CONTENT_LENGTH bytes only).
            "wsgi.input_terminated": True,
            "SCRIPT_NAME": adapter.root_path,
            "SERVER_SOFTWARE": f"ftserver/{__version__}",
        }
        self.header_keys: dict[bytes, str] = {}  # b"user-agent" -> "HTTP_USER_AGENT"
        # What start_response has validated before: "Content-Type" -> b"Content-Type",
        # "200 OK" -> (200, None), "200 Fine" -> (200, b"Fine") (an app uses few names and
        # statuses; caches stay small).
        self.response_names: dict[str, bytes] = {}
        self.statuses: dict[str, Status] = {}
        self.context = contextvars.copy_context()

    def header_key(self, name: bytes) -> str:
        """The environ key for header ``name`` (lower-case bytes); ``""`` to leave it out.

        A name with ``_`` is left out: it would share its key with the ``-`` spelling and
        could pass for a header a proxy in front vouches for (as nginx and Gunicorn do).
        """
        if name == b"content-type":
            key = "CONTENT_TYPE"
        elif name == b"content-length":
            key = "CONTENT_LENGTH"
        elif b"_" in name:
            key = ""
        else:
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        if len(self.header_keys) < 512:
            self.header_keys[name] = key
        return key

    def response_name(self, name: Any) -> bytes:
        """A response header name from the app, checked (a str holding a token) and encoded."""
        if type(name) is not str:
            raise TypeError(f"WSGI: header names must be str, got {name!r}")
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"WSGI: header name {name!r} is not a token")
        encoded = name.encode("latin-1")
        if len(self.response_names) < 512:
            self.response_names[name] = encoded
        return encoded

    def parse_status(self, status: Any) -> Status:
        """The code (200-999) and reason phrase of a PEP 3333 status string ("200 OK").

        The reason goes to the client as the app wrote it, as other PEP 3333 servers do
        (``None`` when it is the standard phrase, or absent: the writer's own then). It may
        not hold CR, LF or other control characters (RFC 9112 §4; PEP 3333 "The
        start_response() Callable"): a status that does is the app's error, like a
        malformed one.
        """
        if type(status) is not str:
            raise TypeError(f"WSGI: status must be a str, got {type(status).__name__}")
        match = _STATUS_RE.fullmatch(status)
        if match is None:
            raise ValueError(f"WSGI: status must be 'NNN reason', got {status!r}")
        code = int(match.group(1))
        if code < 200:
            raise ValueError(f"WSGI: an informational (1xx) status cannot be the response status: {status!r}")
        text = match.group(2)
        reason = None
        if text is not None:
            if _REASON_PHRASE_RE.fullmatch(text) is None:
                raise ValueError(
                    "WSGI: a reason phrase holds tabs, spaces, visible characters and latin-1"
                    f" obs-text, no CR, LF or other control characters (RFC 9112 §4): {status!r}"
                )
            reason = text.encode("latin-1")
            if reason == reason_phrase(code):
                reason = None
        parsed = (code, reason)
        if len(self.statuses) < 256:
            self.statuses[status] = parsed
        return parsed

    def environ(self, request: Request, info: ConnectionInfo, wsgi_input: WSGIInput | EmptyInput) -> Environ:
        """The environ of PEP 3333 "environ Variables" for this request."""
        environ = self.base.copy()
        raw_path, query = split_target(request.target)
        if b"%" in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        # Native strings hold the bytes as latin-1 (PEP 3333 "Unicode Issues"): a UTF-8
        # path arrives as its bytes, which the app decodes (as Werkzeug and Django do).
        environ["PATH_INFO"] = raw_path.decode("latin-1")
        environ["QUERY_STRING"] = query.decode("latin-1")
        environ["REQUEST_URI"] = request.target.decode("latin-1")
        environ["REQUEST_METHOD"] = request.method
        environ["SERVER_PROTOCOL"] = "HTTP/1.1" if request.http_version == "1.1" else "HTTP/" + request.http_version
        environ["wsgi.url_scheme"] = scheme = info.scheme
        environ["wsgi.input"] = wsgi_input
        keys = self.header_keys
        for name, value in request.headers:
            key = keys.get(name)
            if key is None:
                key = self.header_key(name)
            if not key:
                continue
            text = value.decode("latin-1")
            if key in environ:
                # Repeated fields combine as one comma-separated list (RFC 9110 §5.3);
                # cookies with "; " (RFC 6265 §5.4).
                environ[key] += ("; " if key == "HTTP_COOKIE" else ", ") + text
            else:
                environ[key] = text
        server = info.server
        if server is not None and server[1] is not None:
            environ["SERVER_NAME"] = server[0]
            environ["SERVER_PORT"] = str(server[1])
        else:  # a Unix socket: the Host header is the best name there is
            name = environ.get("HTTP_HOST") or "localhost"
            head, sep, port = name.rpartition(":")
            if sep and port.isdigit():
                name = head
            else:
                port = "443" if scheme == "https" else "80"
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port
        client = info.client
        if client is not None:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        if info.tls is not None:  # HTTPS=on and mod_ssl's SSL_* keys
            environ.update(info.tls.environ)
        return environ
