"""Static files served by the server itself (``--static-path-route``/``--static-path-mount``).

``StaticFiles`` wraps a worker thread's interface adapter: a request whose path is under a
route is answered from the mounted directory without calling the application, on every
protocol (it is an exchange of the stream layer). GET and HEAD, one byte range (206/416),
``ETag``/``Last-Modified`` validators (304), ``Cache-Control: max-age``; a directory with
the index file named without its trailing slash is a 301 to the same path with one. No
path leaves its mount: dot segments, encoded slashes, backslashes, NUL and symlinks out are 404.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from collections.abc import Sequence
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from ftserver.interfaces.stream import (
    AdapterWrapper,
    Exchange,
    end_response,
    send_file_body,
    split_target,
)

if TYPE_CHECKING:

    from ftserver.interfaces.stream import (
        AppHost,
        ConnectionInfo,
        HTTPStream,
        InterfaceAdapter,
    )
    from ftserver.protocols.events import Request

#: What ``resolve`` gives for a directory with the index file named without its trailing
#: slash: a redirect to the path with one (no real path is empty).
ADD_SLASH = ""

_TEXT_TYPES = ("application/javascript", "application/json", "application/xml", "image/svg+xml")


class StaticFiles(AdapterWrapper):
    """A worker thread's adapter with static routes in front of the application's adapter."""

    def __init__(self, inner: InterfaceAdapter, host: AppHost, routes: Sequence[tuple[str, str]], index: str | None, expires: float | None) -> None:
        super().__init__(inner, host)
        #: (route as bytes without a trailing slash, the mount's real path), longest route first.
        self.routes = sorted(((route.rstrip("/").encode(), os.path.realpath(mount)) for route, mount in routes), key=lambda r: -len(r[0]))
        self.index = index
        self.cache_control = b"max-age=%d" % int(expires) if expires else None

    def open(self, stream: HTTPStream, request: Request, info: ConnectionInfo, body_done: bool) -> Exchange:
        target = request.target
        if target[:1] != b"/":
            target = b"?".join(split_target(target))  # (absolute form: its path and query)
        for route, mount in self.routes:
            if target.startswith(route):
                rest = target[len(route) :]
                if not rest or rest[:1] in (b"/", b"?"):
                    return StaticExchange(stream, request, self, mount, rest.partition(b"?")[0])
        return self.inner_open(stream, request, info, body_done)

    def start(self, exchange: Any) -> None:
        if type(exchange) is StaticExchange:
            self.host.step(exchange.respond(), exchange)
        else:
            self.inner.start(exchange)



def resolve(mount: str, raw_path: bytes, index: str | None) -> str | None:
    """The regular file ``raw_path`` (the part of the path after the route, still
    percent-encoded) names under ``mount``, ``ADD_SLASH`` (a directory with the index file
    named without its trailing slash), or ``None`` (404)."""
    if b"%2f" in raw_path.lower() or b"%5c" in raw_path.lower():
        return None  # an encoded slash or backslash names no file
    decoded = unquote_to_bytes(raw_path)
    if b"\\" in decoded or b"\x00" in decoded:
        return None
    try:
        relative = decoded.decode("utf-8")
    except UnicodeDecodeError:
        return None
    parts = [part for part in relative.split("/") if part]
    if any(part in (".", "..") for part in parts):
        return None
    path = os.path.realpath(os.path.join(mount, *parts))
    if path != mount and not path.startswith(mount + os.sep):
        return None  # a symlink out of the mount
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    if stat.S_ISDIR(info.st_mode) and index:
        found = resolve(mount, raw_path.rstrip(b"/") + b"/" + index.encode(), None)
        return ADD_SLASH if found is not None and raw_path[-1:] != b"/" else found
    return path if stat.S_ISREG(info.st_mode) else None


class StaticExchange(Exchange):
    """One request answered from a file."""

    __slots__ = ("files", "mount", "raw_path", "file")

    def __init__(self, stream: HTTPStream, request: Request, files: StaticFiles, mount: str, raw_path: bytes) -> None:
        self.stream = stream
        self.request = request
        self.files = files
        self.mount = mount
        self.raw_path = raw_path
        self.file: Any = None
        self.complete = self.disconnected = self.started = self.body_sent = False
        self.status = 0
        self.headers: Sequence[tuple[bytes, bytes]] = ()
        self.response_bytes = 0

    def on_disconnect(self) -> None:
        self.disconnected = True

    def app_done(self, exc: BaseException | None) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.stream.app_finished(self, exc)

    async def respond(self) -> None:
        method = self.request.method
        if method != "GET" and method != "HEAD":
            self._whole(405, b"Method Not Allowed", [(b"allow", b"GET, HEAD")])
            return
        path = resolve(self.mount, self.raw_path, self.files.index)
        if path == ADD_SLASH:
            self._add_slash()
            return
        try:
            file = open(path, "rb") if path is not None else None  # noqa: SIM115 - closed by done()
        except OSError:
            file = None
        if file is None:
            self._whole(404, b"Not Found")
            return
        self.file = file
        info = os.fstat(file.fileno())
        size = info.st_size
        etag = b'"%x-%x"' % (info.st_mtime_ns, size)
        modified = formatdate(info.st_mtime, usegmt=True).encode()
        headers = [(b"etag", etag), (b"last-modified", modified), (b"accept-ranges", b"bytes")]
        if self.files.cache_control is not None:
            headers.append((b"cache-control", self.files.cache_control))
        fields = _fields(self.request.headers)
        if _not_modified(fields, etag, int(info.st_mtime)):
            self._whole(304, b"", headers)
            return
        start, count, status = 0, size, 200
        ranges = fields.get(b"range")
        if ranges is not None and _if_range_holds(fields.get(b"if-range"), etag, modified):
            span = parse_range(ranges, size)
            if span is False:
                headers.append((b"content-range", b"bytes */%d" % size))
                self._whole(416, b"Range Not Satisfiable", headers)
                return
            if span is not None:
                start, stop = span
                count, status = stop - start, 206
                headers.append((b"content-range", b"bytes %d-%d/%d" % (start, stop - 1, size)))
        # (after the 416: its body is text/plain, and a message has one Content-Type)
        headers += [(b"content-type", _content_type(path)), (b"content-length", b"%d" % count)]  # type: ignore[arg-type]
        self.status, self.headers, self.started = status, headers, True
        await send_file_body(self.stream, self, file, start, count, method == "HEAD")

    def _add_slash(self) -> None:
        """``301`` to the request's own path (as received, percent-encoding kept) with a
        trailing slash, and its query: relative links in the index file then resolve under
        the directory (as nginx and Starlette's ``StaticFiles(html=True)`` do). Leading
        slashes are merged: ``//host/dir`` would be another host's URL."""
        path, query = split_target(self.request.target)
        location = b"/" + path.lstrip(b"/") + b"/"
        if query:
            location += b"?" + query
        self._whole(301, b"Moved Permanently", [(b"location", location)])

    def _whole(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = list(headers or ())
        if status != 304:
            headers += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
            if self.request.method == "HEAD":
                body = b""
        self.status, self.headers, self.started = status, headers, True
        end_response(self.stream, self, body)



def _fields(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The request fields this module reads (repeated ones joined by commas)."""
    found: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in (b"if-none-match", b"if-modified-since", b"range", b"if-range"):
            found[name] = found[name] + b", " + value if name in found else value
    return found


def _not_modified(fields: dict[bytes, bytes], etag: bytes, mtime: int) -> bool:
    """RFC 9110 §13.1.2/§13.1.3: If-None-Match (weak comparison) wins over If-Modified-Since."""
    match = fields.get(b"if-none-match")
    if match is not None:
        tags = [tag.strip().removeprefix(b"W/") for tag in match.split(b",")]
        return b"*" in tags or etag in tags
    since = fields.get(b"if-modified-since")
    if since is not None:
        try:
            return mtime <= int(parsedate_to_datetime(since.decode("latin-1")).timestamp())
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


def _if_range_holds(if_range: bytes | None, etag: bytes, modified: bytes) -> bool:
    """RFC 9110 §13.1.5: the range applies when If-Range is absent or matches exactly."""
    return if_range is None or if_range.strip() in (etag, modified)


def parse_range(value: bytes, size: int) -> tuple[int, int] | None | bool:
    """One ``bytes=`` range as (start, stop); ``None``: ignore the field (malformed, or
    several ranges: the whole file is sent); ``False``: unsatisfiable (416)."""
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash or not (first.isdigit() or (not first and last.isdigit())) or (last and not last.isdigit()):
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return False
        return max(0, size - suffix), size
    start = int(first)
    stop = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, stop


def _content_type(path: str) -> bytes:
    kind, encoding = mimetypes.guess_type(path)
    if kind is None or encoding is not None:
        return b"application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        return f"{kind}; charset=utf-8".encode()
    return kind.encode()
